"""Pictures in, labels out: the library behind `fashion-cnn predict` and the web app.

A `Classifier` holds one loaded model and the preprocessing saved with it. `classify` takes
pictures (bytes, paths or Pillow images) and returns one `Prediction` per picture, in order; a
picture that cannot be read gets a Prediction with `error` set instead of failing the batch.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image

from .data import CLASS_NAMES
from .errors import FashionCNNError
from .models import load_checkpoint
from .preprocess import ImageError, PreprocessConfig, Preprocessed, preprocess

BATCH = 256  # pictures decoded per forward pass: bounds memory, amortises the model call
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

    def __init__(self, model: str | Path | None = None):
        self.net, self.meta = load_checkpoint(model)
        self.config = PreprocessConfig.from_dict(self.meta.get("image_preprocessing"))
        self.class_names = list(self.meta.get("class_names", CLASS_NAMES))

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [N, 28, 28] model inputs -> class probabilities float [N, 10]."""
        x = torch.as_tensor(np.asarray(images))
        return self.net(x).softmax(1)

    def classify(self, sources: list[Source], names: list[str] | None = None,
                 top_k: int = 3, keep_inputs: bool = True) -> list[Prediction]:
        """Classify pictures in order; unreadable ones get `error` and no label."""
        return list(self.iter_classify(sources, names, top_k, keep_inputs))

    def iter_classify(self, sources: Iterable[Source], names: Iterable[str] | None = None,
                      top_k: int = 3, keep_inputs: bool = False,
                      batch_size: int = BATCH) -> Iterator[Prediction]:
        """Yield one Prediction per picture, in order, decoding `batch_size` at a time.

        With `keep_inputs=False` the decoded pictures are dropped once classified, so memory
        stays flat however many pictures there are.
        """
        names_it = iter(names) if names is not None else None
        batch: list[Prediction] = []
        for i, source in enumerate(sources):
            name = next(names_it) if names_it is not None else _name(source, i)
            result = Prediction(path=name)
            try:
                result.input = preprocess(source, self.config)
            except ImageError as err:
                result.error = str(err)
            batch.append(result)
            if len(batch) == batch_size:
                yield from self._finish(batch, top_k, keep_inputs)
                batch = []
        yield from self._finish(batch, top_k, keep_inputs)

    def _finish(self, batch: list[Prediction], top_k: int,
                keep_inputs: bool) -> list[Prediction]:
        ready = [r for r in batch if r.error is None]
        if ready:
            probs = self.probabilities(np.stack([r.input.image for r in ready]))
            for r, p in zip(ready, probs, strict=True):
                self._fill(r, p, top_k)
        if not keep_inputs:
            for r in batch:
                r.input = None
        return batch

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


# ---------------------------------------------------------------------------------------------
# Command-line input and output

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
RECORD_KEYS = ("path", "label", "index", "confidence", "top_k", "error")


def collect_pictures(paths: list[str], recursive: bool = False,
                     stdin: BinaryIO | None = None) -> tuple[list[str], list[Source]]:
    """Expand files, folders (their image files, sorted) and '-' (stdin) into names+sources.

    A path that does not exist stays in the list: it gets an error record, like a bad file.
    """
    if paths.count("-") > 1:
        raise FashionCNNError("'-' (standard input) can be given only once.")
    names: list[str] = []
    sources: list[Source] = []
    for p in paths:
        path = Path(p)
        if p == "-":
            names.append("-")
            sources.append(stdin.read() if stdin is not None else b"")
        elif path.is_dir():
            files = sorted(f for f in (path.rglob("*") if recursive else path.iterdir())
                           if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                hint = "" if recursive else " (add --recursive to look in subfolders)"
                raise FashionCNNError(f"No pictures in folder {p}{hint}; looked for "
                                      f"{', '.join(sorted(IMAGE_SUFFIXES))} files.")
            names += [str(f) for f in files]
            sources += files
        else:
            names.append(p)
            sources.append(path)
    return names, sources


def format_predictions(predictions: Iterable[Prediction], fmt: str, names: list[str],
                       failed: list[str]) -> Iterator[str]:
    """Lines of output as table, json or csv, streamed; appends failed paths to `failed`."""
    def tracked() -> Iterator[Prediction]:
        for p in predictions:
            if p.error:
                failed.append(p.path)
            yield p

    if fmt == "json":
        yield "["
        previous = None
        for p in tracked():
            if previous is not None:
                yield f"  {previous},"
            previous = json.dumps(_record(p))
        if previous is not None:
            yield f"  {previous}"
        yield "]"
    elif fmt == "csv":
        yield _csv_line(RECORD_KEYS)
        for p in tracked():
            r = _record(p)
            top = ";".join(f"{t['label']}:{t['confidence']:.4f}" for t in r["top_k"])
            yield _csv_line([r["path"], r["label"] or "", "" if r["index"] is None else r["index"],
                             "" if r["confidence"] is None else f"{r['confidence']:.4f}", top,
                             r["error"] or ""])
    else:
        width = min(max([len(n) for n in names] + [4]), 60)
        yield f"{'path':<{width}}  {'label':<12} {'conf':>6}  top-k"
        for p in tracked():
            path = p.path if len(p.path) <= width else "..." + p.path[-(width - 3):]
            if p.error:
                yield f"{path:<{width}}  error: {p.error}"
                continue
            top = ", ".join(f"{t['label']} {100 * t['confidence']:.1f}%" for t in p.top_k)
            yield f"{path:<{width}}  {p.label:<12} {100 * p.confidence:>5.1f}%  {top}"


def _record(p: Prediction) -> dict[str, Any]:
    r = p.record()
    return {k: r[k] for k in RECORD_KEYS}


def _csv_line(values: Iterable[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()
