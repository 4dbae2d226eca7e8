"""Pictures in, labels out: the library behind `fashion-cnn predict` and the web app.

A `Classifier` holds one loaded model and the preprocessing saved with it. `classify` takes
pictures (bytes, paths or Pillow images) and returns one `Prediction` per picture, in order; a
picture that cannot be read gets a Prediction with `error` set instead of failing the batch.

Every Prediction also says whether to trust it (issue 15): `in_class` scores "is this one of the
10 classes" (`in_class_scores`), and `unsure`/`unsure_reason` flag a blank picture ("no
garment found"), a picture of something else ("not one of the 10 classes", below the threshold
saved with the model) or a model torn between two classes ("low confidence").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image

from .data import CLASS_NAMES, IMAGE_SIZE
from .errors import FashionCNNError
from .formats import missing_note
from .models import load_checkpoint
from .orientation import Upright, load_upright, turned
from .preprocess import (
    WHOLE_FRAME,
    ImageError,
    PreprocessConfig,
    Preprocessed,
    colour_spread,
    cores,
    nothing_to_find,
    preprocess,
)

BATCH = 256  # pictures decoded per forward pass: bounds memory, amortises the model call
PREPARE_THREADS = 2  # speed flag: a batch's pictures are decoded and cut out this many at a
# time (Pillow, OpenCV and numpy release the GIL); 1: one after another. predict_speed.json's
# `flags` compares the two on folders.
THREADS_FROM_SECONDS = 0.005  # ... when its first picture took this long to prepare: a photo
# takes 10-40 ms, a 28x28 PNG well under 1 ms, mostly Python holding the GIL (threads: slower)
LOW_CONFIDENCE = 0.6  # models without an in-class threshold: below this top-class
# probability the answer is flagged "low confidence"
MARGIN = 0.2  # models with a threshold: top-1 minus top-2 below this is "low confidence"

# The three unsure reasons, exactly as records carry them.
NO_GARMENT = "no garment found"
NOT_A_CLASS = "not one of the 10 classes"
LOW = "low confidence"

# "No garment": the model input holds fewer than GARMENT_PIXELS pixels brighter than
# GARMENT_LEVEL (of 255). Every Fashion-MNIST test image has at least 23 such pixels (one
# training image in 60,000 has fewer) and the bundled sample photos at least 92, while a blank
# picture has none left after preprocessing.
GARMENT_LEVEL = 40
GARMENT_PIXELS = 20

# "No garment" for a bare surface (`bare_surface`): an empty floor, wall or bed. Nothing stood
# out from its edges, its colour spread (`preprocess.colour_spread`) is under BARE_SPREAD and
# its in_class score under BARE_IN_CLASS. Chosen on the train split's in-class pictures
# (benchmarks/results/empty_surfaces.json, `spread_rule`): of the bars that take the label
# from at most 0.2% of them, these leave the fewest empty surfaces answered with a class and
# answer the most of them "no garment found".
BARE_SURFACES = True  # the rule on; benchmarks/empty_surfaces.py reads every picture's
# score with it off, to weigh other bars
BARE_SPREAD = 8.0
BARE_IN_CLASS = 0.7

Source = bytes | str | Path | BinaryIO | Image.Image

# The warning for a picture turned back before it was classified, by how many quarters
# counter-clockwise it lay turned (orientation.TURNS).
TURNED_BACK = {k: f"The garment seemed to lie {how}: classified turned upright."
               for k, how in ((1, "on its side, its top to the left"), (2, "upside down"),
                              (3, "on its side, its top to the right"))}


def was_turned_back(warnings: Iterable[str]) -> bool:
    """Whether a prediction's warnings (`Prediction.warnings`, or a JSON record's) say that its
    picture was turned upright before it was classified."""
    return not set(warnings).isdisjoint(TURNED_BACK.values())


@dataclass
class Prediction:
    """One picture's result. `label`/`index`/`confidence` are None when `error` is set or no
    garment was found (then `unsure_reason` says so)."""

    path: str
    label: str | None = None
    index: int | None = None
    confidence: float | None = None
    top_k: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    in_class: float | None = None  # in [0, 1]: "is this one of the 10 classes" (`in_class_scores`)
    unsure: bool = False
    unsure_reason: str | None = None  # NO_GARMENT, NOT_A_CLASS or LOW when unsure
    probabilities: list[float] = field(default_factory=list, repr=False)
    input: Preprocessed | None = field(default=None, repr=False)  # what the model saw

    def verdict(self) -> tuple[str | None, list[str]]:
        """(the unsure verdict's sentence or None, the warnings about the picture itself):
        `fill` adds the verdict's sentence last, where a headline or a table row that already
        says "unsure" wants only its details."""
        return (self.warnings[-1], self.warnings[:-1]) if self.unsure else (None, self.warnings)

    def record(self) -> dict[str, Any]:
        """The JSON/CSV record: every field but the probabilities and the model input."""
        d = asdict(self)
        for key in ("probabilities", "input"):
            d.pop(key)
        return d


SCORES = ("max_softmax", "energy")  # the in-class scores a checkpoint's unsure rule may name


def in_class_scores(logits: torch.Tensor, score: str = "max_softmax",
                    offset: float = 0.0) -> torch.Tensor:
    """"Is this one of the 10 classes", in [0, 1], from logits float [..., 10] -> [...].

    "max_softmax": the top class's probability. "energy": sigmoid(logsumexp(logits) - offset),
    the probability of "one of the 10" against an implicit eleventh class, "none of these",
    whose logit is `offset` (the energy score of Liu et al., 2020, "Energy-based
    Out-of-distribution Detection"). Softmax throws away how large the logits are, which is
    where a picture unlike anything trained on shows: on the real validation photos (hats,
    shorts, skirts against the rest) and on photos of other things the energy sets more of
    them apart (docs/design.md, "The in-class score is the logits' energy").
    """
    if score == "energy":
        return torch.sigmoid(energy(logits) - offset)
    return logits.softmax(-1).amax(-1)


def energy(logits: torch.Tensor) -> torch.Tensor:
    """logsumexp of logits float [..., 10] -> [...]: how strongly the model answers at all.
    The "energy" in-class score is its sigmoid less an offset, which training/run.py chooses
    on these values."""
    return torch.logsumexp(logits, -1)


@dataclass(frozen=True)
class UnsurePolicy:
    """When a classified picture is flagged unsure, and the sentence that says why.

    `threshold` comes with the model (chosen on a validation split) with the in-class score it
    applies to (`score`, `offset`: `in_class_scores`); models without one only get the older
    rule: "low confidence" below LOW_CONFIDENCE.
    """

    threshold: float | None = None  # in_class below this: not one of the 10 classes
    margin: float = MARGIN
    low_confidence: float = LOW_CONFIDENCE
    score: str = "max_softmax"
    offset: float = 0.0

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> UnsurePolicy:
        """Read the checkpoint's `unsure` entry: {"score": "energy", "offset": B,
        "threshold": T, ...} or {"score": "max_softmax", "threshold": T, ...}."""
        spec = meta.get("unsure")
        if not spec:
            return cls()
        score = spec.get("score", "max_softmax")
        if score not in SCORES:
            raise FashionCNNError(
                f"{meta.get('path', 'The checkpoint')} scores unsure pictures with "
                f"{score!r}, which this version of fashion-cnn cannot compute; "
                "upgrade fashion-cnn or use another model.")
        return cls(threshold=float(spec["threshold"]), score=score,
                   offset=float(spec.get("offset", 0.0)))

    def in_class(self, logits: torch.Tensor) -> float:
        """The in-class score of one picture's logits float [10]."""
        return float(in_class_scores(logits, self.score, self.offset))

    def score_spec(self) -> dict[str, Any]:
        """How `in_class` is computed from the logits, for those who read it elsewhere (the
        HTTP API's model description): the score's name and, for "energy", its offset."""
        return {"score": self.score, **({"offset": self.offset} if self.score == "energy"
                                          else {})}

    def judge(self, in_class: float, probs: torch.Tensor,
              names: list[str]) -> tuple[str, str] | None:
        """(reason, sentence) when a classified picture is unsure, else None."""
        (p1, p2), (i1, i2) = probs.topk(2)
        p1, p2, first, second = float(p1), float(p2), names[int(i1)], names[int(i2)]
        if self.threshold is None:
            if p1 < self.low_confidence:
                return LOW, (f"Low confidence ({p1:.0%}): the model is unsure between "
                             f"{first} and {second}.")
            return None
        if in_class < self.threshold:
            return NOT_A_CLASS, ("Not sure: this does not look like one of the 10 kinds of "
                                 f"clothing (score {in_class:.0%}, this model's threshold "
                                 f"{self.threshold:.0%}).")
        if p1 - p2 < self.margin:
            return LOW, f"Not sure: between {first} and {second} ({p1:.0%} and {p2:.0%})."
        return None


def holds_no_garment(pre: Preprocessed) -> bool:
    """True for a picture with nothing to classify: blank, one colour, a dot, a thin strip or
    random noise (`nothing_to_find`), or whose model input holds next to no garment."""
    # Checked on the model input, where the background is already black: catches near-blank
    # photos (JPEG noise on white) whatever the original looked like.
    return (nothing_to_find(pre.original, pre.dataset_form)
            or int((pre.image > GARMENT_LEVEL).sum()) < GARMENT_PIXELS)


NO_GARMENT_SENTENCE = ("No garment found in this picture: it is blank, one colour, noise or too "
                       "small. Use a photo of one article on a plain background.")
BARE_SURFACE_SENTENCE = ("No garment found in this picture: nothing stands out from its edges and "
                         "its colours hardly vary, like an empty floor, wall or bed. Use a photo "
                         "of one garment, whole, against a floor, bed, wall or plain "
                         "background.")


def bare_surface(pre: Preprocessed, in_class: float, config: PreprocessConfig) -> bool:
    """True for a picture that looks like an empty floor, wall or bed: classified whole
    (nothing stood out from its edges), its colours hardly varying, and its in_class score
    low. A garment filling the frame is classified whole too, but varies more in colour or
    scores higher."""
    return (BARE_SURFACES and WHOLE_FRAME in pre.warnings and in_class < BARE_IN_CLASS
            and colour_spread(pre.original, config) < BARE_SPREAD)


def surest(logits: torch.Tensor) -> float:
    """The top-class probability of one picture's logits float [10]: how sure the model is of
    one model input against another of the same picture."""
    return float(logits.softmax(-1).max())


BACKENDS = ("auto", "torch", "onnxruntime", "onnxruntime-int8")  # what runs the model;
# "auto": FASTER_BACKEND; "onnxruntime-int8": the int8 graph (export.quantize)
# The fastest backend per architecture, as benchmarks/backend_speed.py measured it on 2 cores
# (benchmarks/results/backend_speed.json; tests/test_export.py checks the two agree); int8
# only where it keeps the test accuracy (backend_speed.INT8_MAX_DROP). Architectures not
# listed, and any machine without onnxruntime, use torch.
FASTER_BACKEND = {"seed": "onnxruntime", "best": "onnxruntime-int8"}


def choose_backend(backend: str, arch: str, int8_ready: bool = False) -> str:
    """"torch", "onnxruntime" or "onnxruntime-int8" for a `backend` option and a model
    architecture.

    "auto" takes FASTER_BACKEND's choice, falling back to torch silently when onnxruntime is
    not installed, and from int8 to float32 onnxruntime for a checkpoint that carries no
    calibration images (`int8_ready` False: one you trained; the int8 graph would need the
    dataset). An explicit onnxruntime backend without onnxruntime is an error saying what to
    install.
    """
    from .export import onnxruntime_available, require_onnx

    if backend not in BACKENDS:
        raise FashionCNNError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if backend == "auto":
        faster = FASTER_BACKEND.get(arch, "torch")
        if faster == "onnxruntime-int8" and not int8_ready:
            faster = "onnxruntime"
        return faster if faster == "torch" or onnxruntime_available() else "torch"
    if backend.startswith("onnxruntime"):
        require_onnx()
    return backend


class Classifier:
    """A loaded model plus its preprocessing; reuse one for many pictures.

    `backend` runs the model: "torch", "onnxruntime" (the checked ONNX export of the same
    checkpoint, `export.onnx_session`), "onnxruntime-int8" (that graph quantized to int8,
    calibrated on training images the shipped checkpoints carry; its top class checked against
    PyTorch's) or "auto" (`choose_backend`). `tta` overrides the test-time augmentation of
    models that have one (None: as the model ships). `net` is always the PyTorch model
    (saliency needs gradients). `upright` turns garments lying on their side back before they
    are classified (orientation.py; False: every picture as it comes).
    """

    def __init__(self, model: str | Path | None = None, backend: str = "auto",
                 tta: bool | None = None, upright: bool = True):
        self.net, self.meta = load_checkpoint(model)
        self.upright: Upright | None = load_upright() if upright else None
        if tta is not None:
            if not hasattr(self.net, "tta"):
                raise FashionCNNError(f"The {self.meta['arch']} model has no test-time "
                                      "augmentation.")
            self.net.tta = tta
        self.config = PreprocessConfig.from_dict(self.meta.get("image_preprocessing"))
        self.class_names = list(self.meta.get("class_names", CLASS_NAMES))
        self.policy = UnsurePolicy.from_meta(self.meta)
        self.backend = choose_backend(backend, self.meta["arch"],
                                      int8_ready=self.meta.get("calibration") is not None)
        self.session = None
        if self.backend.startswith("onnxruntime"):
            from .export import onnx_session

            try:
                self.session = onnx_session(self.net, self.meta,
                                            int8=self.backend == "onnxruntime-int8")
            except FashionCNNError:
                if backend != "auto" or self.backend != "onnxruntime-int8":
                    raise
                # auto's int8 graph failed its check: run the exact float32 graph instead
                self.backend = "onnxruntime"
                self.session = onnx_session(self.net, self.meta)
            if self.upright is not None:  # one runtime's threads, not two taking turns
                self.upright.on_onnxruntime()

    @torch.inference_mode()
    def logits(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [N, 28, 28] model inputs -> logits float [N, 10], on the chosen backend."""
        check_model_inputs(images)
        if self.session is not None:
            from .export import session_logits

            return session_logits(self.session, images)
        return self.net(torch.as_tensor(np.asarray(images)))

    def probabilities(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [N, 28, 28] model inputs -> class probabilities float [N, 10]."""
        return self.logits(images).softmax(1)

    @torch.inference_mode()
    def input_logits(self, inputs: list[Preprocessed],
                     pad: Callable[[np.ndarray], np.ndarray] | None = None) -> torch.Tensor:
        """Logits float [N, 10] of preprocessed pictures: of each one's model input or, where
        the model is surer of a picture's second cut-out (`Preprocessed.edge_image`: its top
        probability higher by more than `fg_edge_margin`), of that cut-out, which then becomes
        its model input; then each one turned upright where it lies turned (`turned_back`).
        `pad`, if given, pads the uint8 [n, 28, 28] inputs of a forward pass (rows past n are
        dropped)."""
        pad = pad or (lambda images: images)
        logits = self.logits(pad(np.stack([p.image for p in inputs])))[:len(inputs)]
        rows = [i for i, p in enumerate(inputs) if p.edge_image is not None]
        if rows:
            second = self.logits(pad(np.stack([inputs[i].edge_image for i in rows])))
            for i, row in zip(rows, second[:len(rows)], strict=True):
                if surest(row) > surest(logits[i]) + self.config.fg_edge_margin:
                    logits[i], inputs[i].image = row, inputs[i].edge_image
        return self.turned_back(inputs, logits, pad)

    def turned_back(self, inputs: list[Preprocessed], logits: torch.Tensor,
                    pad: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
        """`logits` [N, 10] with, for each picture the orientation network is sure lies turned
        (`Upright.turns`), the logits of it turned back wherever the classifier is at least as
        sure of that: the turned-back picture becomes its model input, with a warning saying
        so. Dataset-form images are upright by the dataset's making: skipped (their
        one-picture latency stays the model's alone)."""
        photos = [i for i, p in enumerate(inputs) if not p.dataset_form]
        if self.upright is None or not photos:
            return logits
        images = torch.from_numpy(np.stack([inputs[i].image for i in photos]))
        turns = self.upright.turns(images)
        sure = turns.nonzero().flatten()
        if not len(sure):
            return logits
        rows = torch.tensor(photos)[sure]
        back = turned(images[sure], -turns[sure])
        second = self.logits(pad(back.numpy()))[:len(rows)]
        for i, row, image, k in zip(rows.tolist(), second, back, turns[sure].tolist(),
                                    strict=True):
            if surest(row) >= surest(logits[i]):
                logits[i], inputs[i].image = row, image.numpy()
                inputs[i].warnings.append(TURNED_BACK[k])
        return logits

    def classify(self, sources: list[Source], names: list[str] | None = None,
                 top_k: int = 3, keep_inputs: bool = True) -> list[Prediction]:
        """Classify pictures in order; unreadable ones get `error` and no label."""
        return list(self.iter_classify(sources, names, top_k, keep_inputs))  # checks them

    def iter_classify(self, sources: Iterable[Source], names: Iterable[str] | None = None,
                      top_k: int = 3, keep_inputs: bool = False,
                      batch_size: int = BATCH) -> Iterator[Prediction]:
        """Yield one Prediction per picture, in order, decoding `batch_size` at a time.

        With `keep_inputs=False` the decoded pictures are dropped once classified, so memory
        stays flat however many pictures there are.
        """
        check_many(sources)
        names_it = iter(names) if names is not None else None
        pending: list[tuple[Source, str]] = []
        for i, source in enumerate(sources):
            pending.append((source, next(names_it) if names_it is not None else _name(source, i)))
            if len(pending) == batch_size:
                yield from self._finish(self.prepare_all(pending), top_k, keep_inputs)
                pending = []
        yield from self._finish(self.prepare_all(pending), top_k, keep_inputs)

    def prepare_all(self, pending: list[tuple[Source, str]]) -> list[Prediction]:
        """`prepare` each (source, name), in order: the first alone, the rest PREPARE_THREADS
        at a time if the first took at least THREADS_FROM_SECONDS."""
        if not pending:
            return []
        start = time.perf_counter()
        first, rest = self.prepare(*pending[0]), pending[1:]
        if (PREPARE_THREADS < 2 or len(rest) < 2 or cores() < 2
                or time.perf_counter() - start < THREADS_FROM_SECONDS):
            return [first, *(self.prepare(source, name) for source, name in rest)]
        with ThreadPoolExecutor(PREPARE_THREADS, thread_name_prefix="fashion-cnn-prepare") as pool:
            return [first, *pool.map(self.prepare, *zip(*rest, strict=True))]

    def prepare(self, source: Source, name: str) -> Prediction:
        """Decode and preprocess one picture: a Prediction holding the model input, awaiting
        `fill`, or with `error` set when the picture cannot be read."""
        result = Prediction(path=name)
        try:
            result.input = preprocess(source, self.config)
        except ImageError as err:
            result.error = " ".join(filter(None, [str(err), missing_note(name)]))
        return result

    def _finish(self, batch: list[Prediction], top_k: int,
                keep_inputs: bool) -> list[Prediction]:
        ready = [r for r in batch if r.error is None]
        if ready:
            logits = self.input_logits([r.input for r in ready])
            for r, row in zip(ready, logits, strict=True):
                self.fill(r, row, top_k)
        if not keep_inputs:
            for r in batch:
                r.input = None
        return batch

    def classify_one(self, source: Source, name: str | None = None, top_k: int = 3) -> Prediction:
        return self.classify([source], [name or _name(source, 0)], top_k)[0]

    def no_garment_sentence(self, pre: Preprocessed, in_class: float) -> str | None:
        """Why a prepared picture holds no garment to classify (`holds_no_garment`,
        `bare_surface`), or None when it may."""
        if holds_no_garment(pre):
            return NO_GARMENT_SENTENCE
        if bare_surface(pre, in_class, self.config):
            return BARE_SURFACE_SENTENCE
        return None

    def fill(self, result: Prediction, logits: torch.Tensor, top_k: int) -> None:
        """Set a prepared picture's label, top-k and unsure verdict from its logits (float
        [10], `input_logits` of its model input)."""
        result.warnings = list(result.input.warnings)
        in_class = self.policy.in_class(logits)
        nothing = self.no_garment_sentence(result.input, in_class)
        if nothing is not None:  # no label at all: any class would be a guess
            result.unsure, result.unsure_reason = True, NO_GARMENT
            result.warnings.append(nothing)
            return
        probs = logits.softmax(0)
        conf, idx = probs.topk(min(max(top_k, 1), len(probs)))
        result.index = int(idx[0])
        result.label = self.class_names[result.index]
        result.confidence = float(conf[0])
        result.top_k = [{"label": self.class_names[int(j)], "index": int(j),
                         "confidence": float(c)} for c, j in zip(conf, idx, strict=True)]
        result.probabilities = probs.tolist()
        result.in_class = in_class
        verdict = self.policy.judge(result.in_class, probs, self.class_names)
        if verdict is not None:
            result.unsure_reason, sentence = verdict
            result.unsure = True
            result.warnings.append(sentence)


def check_many(sources: object) -> None:
    """A TypeError for one picture given where a list of them is expected: a path string would
    otherwise be classified character by character."""
    if isinstance(sources, (str, Path, bytes, bytearray, Image.Image, np.ndarray)):
        raise TypeError(f"classify and iter_classify take a list of pictures, not one "
                        f"{type(sources).__name__}; for one picture use classify_one.")


def check_model_inputs(images: np.ndarray | torch.Tensor) -> None:
    """A TypeError or ValueError unless `images` are uint8 [N, 28, 28] model inputs: a float
    image in 0..1, or a lone [28, 28] one, would otherwise give wrong answers or torch's
    shape errors."""
    dtype = images.dtype if isinstance(images, (np.ndarray, torch.Tensor)) else None
    if dtype not in (np.uint8, torch.uint8):
        raise TypeError(f"Model inputs are uint8 images [N, {IMAGE_SIZE}, {IMAGE_SIZE}] "
                        f"(0..255, as preprocess makes them), not {dtype or type(images).__name__}"
                        "; scale a 0..1 image with (x * 255).round().astype(np.uint8).")
    if tuple(images.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE) or images.ndim != 3:
        hint = "; one image is image[None]" if images.ndim == 2 else ""
        raise ValueError(f"Model inputs are uint8 images [N, {IMAGE_SIZE}, {IMAGE_SIZE}], not "
                         f"shape {tuple(images.shape)}{hint}.")


def _name(source: Source, i: int) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return getattr(source, "name", None) or f"image {i + 1}"
