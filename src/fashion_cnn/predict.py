"""Pictures in, labels out: the library behind `fashion-cnn predict` and the web app.

A `Classifier` holds one loaded model and the preprocessing saved with it. `classify` takes
pictures (bytes, paths or Pillow images) and returns one `Prediction` per picture, in order; a
picture that cannot be read gets a Prediction with `error` set instead of failing the batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image

from .data import CLASS_NAMES
from .models import load_checkpoint
from .preprocess import ImageError, PreprocessConfig, Preprocessed, preprocess

LOW_CONFIDENCE = 0.6  # below this top-class probability the answer comes with a warning

Source = bytes | str | Path | BinaryIO | Image.Image


@dataclass
class Prediction:
    """One picture's result. `label`/`index`/`confidence` are None when `error` is set."""

    path: str
    label: str | None = None
    index: int | None = None
    confidence: float | None = None
    top_k: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list, repr=False)
    input: Preprocessed | None = field(default=None, repr=False)  # what the model saw

    def record(self) -> dict[str, Any]:
        """The JSON/CSV record: path, label, index, confidence, top_k, error, warnings."""
        d = asdict(self)
        for key in ("probabilities", "input"):
            d.pop(key)
        return d


class Classifier:
    """A loaded model plus its preprocessing; reuse one for many pictures."""

    def __init__(self, model: str | Path | None = None, threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.net, self.meta = load_checkpoint(model)
        self.config = PreprocessConfig.from_dict(self.meta.get("image_preprocessing"))
        self.class_names = list(self.meta.get("class_names", CLASS_NAMES))

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [N, 28, 28] model inputs -> class probabilities float [N, 10]."""
        x = torch.as_tensor(np.asarray(images))
        return self.net(x).softmax(1)

    def classify(self, sources: list[Source], names: list[str] | None = None,
                 top_k: int = 3) -> list[Prediction]:
        """Classify pictures in order; unreadable ones get `error` and no label."""
        names = names or [_name(s, i) for i, s in enumerate(sources)]
        results = [Prediction(path=n) for n in names]
        ready: list[int] = []
        for i, (source, result) in enumerate(zip(sources, results, strict=True)):
            try:
                result.input = preprocess(source, result.path, self.config)
            except ImageError as err:
                result.error = str(err)
                continue
            ready.append(i)
        if ready:
            probs = self.probabilities(np.stack([results[i].input.image for i in ready]))
            for i, p in zip(ready, probs, strict=True):
                self._fill(results[i], p, top_k)
        return results

    def classify_one(self, source: Source, name: str | None = None, top_k: int = 3) -> Prediction:
        return self.classify([source], [name or _name(source, 0)], top_k)[0]

    def _fill(self, result: Prediction, probs: torch.Tensor, top_k: int) -> None:
        conf, idx = probs.topk(min(max(top_k, 1), len(probs)))
        result.index = int(idx[0])
        result.label = self.class_names[result.index]
        result.confidence = float(conf[0])
        result.top_k = [{"label": self.class_names[int(j)], "index": int(j),
                         "confidence": float(c)} for c, j in zip(conf, idx, strict=True)]
        result.probabilities = probs.tolist()
        result.warnings = list(result.input.warnings)
        if result.confidence < LOW_CONFIDENCE:
            result.warnings.append(
                f"Low confidence ({100 * result.confidence:.0f}%): the model is unsure between "
                f"{' and '.join(t['label'] for t in result.top_k[:2])}.")


def _name(source: Source, i: int) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return getattr(source, "name", None) or f"image {i + 1}"
