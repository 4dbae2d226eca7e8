"""ONNX export (issue 16): a checkpoint -> an .onnx file that has been checked against PyTorch.

The graph takes what the PyTorch model takes, uint8 images [N, 28, 28] with N free, and returns
logits float32 [N, 10]. The pixel scaling (`Normalize`) and `best`'s test-time views are inside
the graph, so a runtime feeds the same 28x28 model inputs `preprocess` makes and redoes nothing.
The file's metadata_props say what a user of the bare file needs (`metadata`).

Every export is checked before anyone gets it: onnxruntime against the PyTorch model on real
test images, max |logit difference| <= MAX_LOGIT_DIFF. `export_onnx` writes a temporary file
next to the target, checks it and only then renames it, so a failed check leaves no file.
`onnx_session` builds the same checked graph in memory for `Classifier(backend="onnxruntime")`,
cached on disk by the checkpoint's SHA-256.

Both can also give an int8 graph (`export --int8`, `Classifier(backend="onnxruntime-int8")`):
onnxruntime's static quantization (`quantize`) of the same graph, its activation ranges
calibrated on CALIBRATION_IMAGES training images of the checkpoint's own training part (never
its validation split or the test set). Its logits differ from PyTorch's by up to about 1, so
its check counts top classes instead: at least INT8_MIN_AGREEMENT of the check images must get
PyTorch's, else nothing is kept.

The exporter is torch's TorchScript-based one (`dynamo=False`): it needs no onnxscript, exports
in well under a second and gives the same graph every time; torch.onnx's dynamo exporter also
works on both models but takes seconds (docs/design.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .data import (
    CACHE_DIR,
    CACHE_ROOT,
    CLASS_NAMES,
    ENV_DIR,
    IMAGE_SIZE,
    SYSTEM_DIR,
    load_test_images,
)
from .errors import FashionCNNError
from .evaluate import EVAL_BATCH
from .files import atomic_path, file_in_the_way, file_sha256

OPSET = 17  # ONNX operator set: onnxruntime >= 1.12 and most other runtimes run it
INPUT, OUTPUT = "images", "logits"  # the graph's input and output names
MAX_LOGIT_DIFF = 1e-3  # the check: onnxruntime against PyTorch, largest |logit difference|
CHECK_IMAGES = 1000  # how many test images `export` checks the file on
INT8_MIN_AGREEMENT = 0.99  # the int8 graph's check: share of images with PyTorch's top class
CALIBRATION_IMAGES = 1000  # training images the int8 graph's activation ranges come from
CALIBRATION_BATCH = 100  # images per calibration run (bounds the calibrator's memory)
SESSION_CHECK_IMAGES = EVAL_BATCH  # Classifier's in-memory graph: one batch, so the first
# use of the onnxruntime backend (before the cache) waits seconds less
ONNX_PACKAGES = ("onnx", "onnxruntime")  # the `[onnx]` extra
INSTALL_HINT = "pip install -e '.[onnx]' in fashion-cnn's checkout"
ONNX_CACHE_DIR = CACHE_ROOT / "onnx"


@dataclass
class ExportResult:
    """What `export_onnx` wrote and how well it matched PyTorch."""

    path: Path
    arch: str
    checkpoint: str
    checkpoint_sha256: str
    opset: int
    n_checked: int
    max_logit_diff: float
    same_argmax: int  # of n_checked images, how many got the same top class
    bytes: int
    int8: bool = False  # quantized (`quantize`), checked by top-class agreement


# ---------------------------------------------------------------------------------------------
# The optional packages


def missing_packages() -> list[str]:
    """Which of the `[onnx]` extra's packages cannot be imported (found without importing:
    `import onnx` alone takes a second, so each is imported only where it is used)."""
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


def onnxruntime_available() -> bool:
    """True when the `[onnx]` extra is installed."""
    return not missing_packages()


def require_onnx() -> None:
    """A FashionCNNError saying how to install the `[onnx]` extra when it is missing."""
    if missing := missing_packages():
        raise FashionCNNError(f"ONNX export and the onnxruntime backend need the onnx and "
                              f"onnxruntime packages ({' and '.join(missing)} missing): "
                              f"{INSTALL_HINT}")


# ---------------------------------------------------------------------------------------------
# Building the graph


def metadata(net: nn.Module, meta: dict[str, Any], checkpoint_sha256: str) -> dict[str, str]:
    """The file's metadata_props (all strings; the structured ones are JSON)."""
    return {
        "arch": meta["arch"],
        "class_names": json.dumps(list(meta.get("class_names", CLASS_NAMES))),
        "image_preprocessing": json.dumps(meta.get("image_preprocessing") or {}),  # the
        # PreprocessConfig: fashion_cnn.preprocess.PreprocessConfig.from_dict(json.loads(...))
        "unsure": json.dumps(meta.get("unsure")),  # {"score", "threshold", ...} or null
        "tta": json.dumps(bool(getattr(net, "tta", False))),
        "tta_shift": json.dumps(getattr(net, "tta_shift", 0)),  # pixels; 0: the mirror only
        "checkpoint_sha256": checkpoint_sha256,
        "opset": str(OPSET),
        "input": f"{INPUT}: uint8 [N, {IMAGE_SIZE}, {IMAGE_SIZE}], 0..255, white article on "
                 "black (fashion_cnn.preprocess.preprocess makes it from any picture)",
        "output": f"{OUTPUT}: float32 [N, {len(CLASS_NAMES)}]; softmax gives probabilities",
        "fashion_cnn_version": __version__,
    }


def onnx_bytes(net: nn.Module, meta: dict[str, Any], checkpoint_sha256: str) -> bytes:
    """The eval-mode model as a serialized ONNX model with its metadata (not yet checked)."""
    require_onnx()
    import onnx

    example = torch.zeros(2, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
    buf = io.BytesIO()
    was_training = net.training
    net.eval()
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter says it is deprecated (module docstring: why it is used).
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (example,), buf, dynamo=False, opset_version=OPSET,
                              input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    finally:
        net.train(was_training)
    model = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(model, metadata(net, meta, checkpoint_sha256))
    model.producer_name, model.producer_version = "fashion-cnn", __version__
    return model.SerializeToString()


def calibration_images(meta: dict[str, Any], data_dir: str | Path | None = None,
                       offline: bool = False, progress: bool = False) -> torch.Tensor:
    """CALIBRATION_IMAGES training images for `quantize`, uint8 [N, 28, 28]: the checkpoint's
    own (`save_checkpoint(calibration=...)`) if it carries them, else `calibration_sample` of
    the dataset (a FashionCNNError when it is not found)."""
    from .data import load_fashion_mnist

    if meta.get("calibration") is not None:
        return meta["calibration"]
    data = load_fashion_mnist(data_dir, offline=offline, progress=progress)
    return calibration_sample(meta, data.train_images)


def calibration_sample(meta: dict[str, Any], train_images: torch.Tensor) -> torch.Tensor:
    """A seeded sample of CALIBRATION_IMAGES from the checkpoint's training part of the
    training images uint8 [60000, 28, 28] (its config's validation split left out, as
    training.run.run_split made it)."""
    from .training.run import run_split

    train_idx, _ = run_split(len(train_images), meta.get("config") or {})
    g = torch.Generator().manual_seed(0)
    chosen = train_idx[torch.randperm(len(train_idx), generator=g)[:CALIBRATION_IMAGES]]
    return train_images[chosen.sort().values]


def quantize(data: bytes, calibration: np.ndarray | torch.Tensor) -> bytes:
    """A float32 graph (`onnx_bytes`) as int8, metadata kept plus "weights": "int8".

    onnxruntime's static quantization in QDQ form: int8 weights with one scale per output
    channel, uint8 activations whose ranges are the min/max seen on `calibration` (uint8 images
    [N, 28, 28], training images: `calibration_images`). onnxruntime then runs the convolutions
    and the linear layer on 8-bit integers (VNNI where the CPU has it).
    """
    require_onnx()
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    images = np.ascontiguousarray(np.asarray(calibration, dtype=np.uint8))
    if not len(images):
        raise FashionCNNError("int8 quantization needs calibration images; none were given.")

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(range(0, len(images), CALIBRATION_BATCH))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self.left, None)
            return None if i is None else {INPUT: images[i:i + CALIBRATION_BATCH]}

    # Its advice to pre-process the graph first goes to the root logger: silenced (the same
    # answers and speed here, and its symbolic shape inference fails on the flip average).
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="fashion-cnn-int8-") as tmp:
            source, target = Path(tmp) / "float32.onnx", Path(tmp) / "int8.onnx"
            source.write_bytes(data)
            # Without VNNI, onnxruntime's u8 x s8 products add pairs in int16, which 8-bit
            # weights can overflow (98.1% agreement with PyTorch on an AVX2 CPU): 7-bit there
            quantize_static(source, target, Batches(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            reduce_range=not torch.cpu._is_vnni_supported())
            model = onnx.load(target)
    finally:
        logging.disable(before)
    props = {p.key: p.value for p in model.metadata_props}
    onnx.helper.set_model_props(model, {**props, "weights": "int8",
                                        "calibration_images": str(len(images))})
    model.producer_name, model.producer_version = "fashion-cnn", __version__
    return model.SerializeToString()


# ---------------------------------------------------------------------------------------------
# Running and checking it


ORT_SPINNING = False  # speed flag. onnxruntime's default (True) keeps its worker threads
# spinning between runs: they then hold a core while `predict` cuts out the next photo, and
# the side thread's cut-out (preprocess.SIDE_THREAD) has none to run on. predict_speed.json's
# `flags` compares the two; batch and one-picture runs measured no slower without spinning.


def new_session(model: bytes | str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session on a model (bytes or file), with the project's thread policy:
    `threads` intra-op threads (None: as many as torch uses, its default one per core), one
    inter-op thread."""
    require_onnx()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", str(int(ORT_SPINNING)))
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def session_logits(session: Any, images: np.ndarray | torch.Tensor,
                   batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """uint8 [N, 28, 28] -> logits float32 [N, 10] through an onnxruntime session."""
    x = np.ascontiguousarray(np.asarray(images, dtype=np.uint8))
    out = [session.run([OUTPUT], {INPUT: x[i:i + batch_size]})[0]
           for i in range(0, len(x), batch_size)]
    return torch.from_numpy(np.concatenate(out)) if out else torch.zeros(0, len(CLASS_NAMES))


@torch.inference_mode()
def torch_logits(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The PyTorch model's plain forward pass (what the graph was traced from), eval mode,
    EVAL_BATCH images at a time: uint8 [N, 28, 28] -> logits [N, 10]."""
    was_training = net.training
    net.eval()
    try:
        return torch.cat([net(images[i:i + EVAL_BATCH])
                          for i in range(0, len(images), EVAL_BATCH)])
    finally:
        net.train(was_training)


def check(net: nn.Module, session: Any, images: torch.Tensor, what: str,
          int8: bool = False) -> tuple[float, int]:
    """(max |logit difference|, images with the same top class) of the ONNX graph against the
    PyTorch model on uint8 images [N, 28, 28]; a FashionCNNError when the graph does not run
    or is not the model (the callers then keep nothing). The limit: MAX_LOGIT_DIFF, or for an
    int8 graph (`quantize`) the same top class on INT8_MIN_AGREEMENT of the images."""
    reference = torch_logits(net, images)
    kind = "int8 ONNX export" if int8 else "ONNX export"
    try:
        ours = session_logits(session, images)
    except Exception as err:  # noqa: BLE001 - onnxruntime's own errors (e.g. a frozen shape)
        raise FashionCNNError(f"The {kind} of {what} does not run in onnxruntime "
                              f"({str(err).strip().splitlines()[0][:200]}); nothing was "
                              "written. Please report this with your torch and onnxruntime "
                              "versions.") from None
    diff = float((ours - reference).abs().max())
    same = int((ours.argmax(1) == reference.argmax(1)).sum())
    if int8 and not (same >= INT8_MIN_AGREEMENT * len(images) and np.isfinite(diff)):
        problem = (f"PyTorch's top class on only {same:,} of {len(images):,} test images "
                   f"(at least {INT8_MIN_AGREEMENT:.0%} needed)")
    elif not int8 and not diff <= MAX_LOGIT_DIFF:  # also catches NaN
        problem = (f"max |logit difference| {diff:.3g} on {len(images):,} test images "
                   f"(limit {MAX_LOGIT_DIFF:g})")
    else:
        return diff, same
    raise FashionCNNError(f"The {kind} of {what} does not match the PyTorch model: {problem}; "
                          "nothing was written. Please report this with your torch and "
                          "onnxruntime versions.")


def seeded_images(n: int = CHECK_IMAGES) -> torch.Tensor:
    """n reproducible random uint8 images: the check's inputs where the data is absent."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, IMAGE_SIZE, IMAGE_SIZE), generator=g, dtype=torch.uint8)


# ---------------------------------------------------------------------------------------------
# The two uses: a file for anyone, a session for Classifier


def check_target(out: str | Path, checkpoint: str | Path) -> Path:
    """`out` as a Path, or a FashionCNNError when no file can be written there or it would
    replace a PyTorch file (`checkpoint`, the one exported, above all); its folder is created
    if missing."""
    from .models import not_a_torch_file

    out = Path(out)
    if out.is_dir():
        raise FashionCNNError(f"{out} is a folder; give a file name such as "
                              f"{out / 'model.onnx'}.")
    if out.exists() and not out.is_file():  # /dev/null, a pipe: the check reads it back
        raise FashionCNNError(f"{out} is a device or pipe, not a file; the export is read "
                              "back to check it. Give a file name such as model.onnx.")
    if out.is_file():
        same = out.samefile(checkpoint)
        if same or not_a_torch_file(out) is None:
            what = "the checkpoint being exported" if same else "a PyTorch file"
            raise FashionCNNError(f"{out} is {what}: the export would overwrite it. Give "
                                  f"another file name, such as {out.with_suffix('.onnx')}.")
    blocking = file_in_the_way(out.parent)
    if blocking is not None:
        raise FashionCNNError(f"Cannot write {out}: {blocking} is a file, not a folder.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FashionCNNError(f"Cannot write {out}: {err.strerror or err}. Choose a folder "
                              "you can write to.") from None
    if not os.access(out.parent, os.W_OK):
        raise FashionCNNError(f"Cannot write {out}: its folder is not writable. Choose a folder "
                              "you can write to.")
    return out


def export_onnx(model: str | Path | None, out: str | Path, images: torch.Tensor,
                calibration: np.ndarray | torch.Tensor | None = None) -> ExportResult:
    """Export a checkpoint (path or shipped name) to `out`, checked on `images` (uint8
    [N, 28, 28], CHECK_IMAGES real test images) before `out` appears: a temp file next to it
    is written, loaded by onnxruntime, compared with PyTorch, then renamed onto `out`.
    With `calibration` (training images, `calibration_images`) the file is int8 (`quantize`)."""
    from .models import load_checkpoint

    net, meta = load_checkpoint(model)
    out = check_target(out, meta["path"])
    sha = file_sha256(meta["path"])
    data = onnx_bytes(net, meta, sha)
    int8 = calibration is not None
    if int8:
        data = quantize(data, calibration)
    try:
        with atomic_path(out) as tmp:
            tmp.write_bytes(data)
            diff, same = check(net, new_session(tmp), images, meta["path"], int8=int8)
    except OSError as err:
        raise FashionCNNError(f"Cannot write {out}: {err.strerror or err}. Choose a folder "
                              "you can write to.") from None
    return ExportResult(path=out, arch=meta["arch"], checkpoint=meta["path"],
                        checkpoint_sha256=sha, opset=OPSET, n_checked=len(images),
                        max_logit_diff=diff, same_argmax=same, bytes=len(data), int8=int8)


def onnx_session(net: nn.Module, meta: dict[str, Any], cache_dir: Path | None = None,
                 int8: bool = False, threads: int | None = None,
                 name: str = "this model's") -> Any:
    """A checked onnxruntime session for a loaded checkpoint (`load_checkpoint`'s pair).

    Built in memory and checked on the first SESSION_CHECK_IMAGES test images (seeded random
    images where the data is not found offline), then kept in `cache_dir` (None:
    ONNX_CACHE_DIR) under the checkpoint's SHA-256 plus what the graph depends on, written
    atomically; the same checkpoint's graphs of older builds go. A cache that cannot be
    written or read is skipped. `int8`: the quantized graph (`quantize`), calibrated
    on training images found offline (a FashionCNNError saying how to get them otherwise).
    `threads`: the session's (`new_session`). `name`: what the one-time "building" line calls
    the network.
    """
    require_onnx()
    import onnxruntime as ort

    sha = file_sha256(meta["path"])
    # What else the graph depends on: the exporter, the runtime that checked it, the flip,
    # the quantization.
    build = hashlib.sha256(json.dumps(
        [OPSET, torch.__version__, ort.__version__, __version__, getattr(net, "tta", None)]
        + ([CALIBRATION_IMAGES, INT8_MIN_AGREEMENT] if int8 else [])).encode()).hexdigest()[:12]
    cached = (cache_dir or ONNX_CACHE_DIR) / f"{sha}-{build}{'-int8' if int8 else ''}.onnx"
    if cached.is_file():
        try:
            return new_session(cached, threads)
        except Exception:  # noqa: BLE001 - a damaged cache entry: rebuild it below
            pass
    # seconds, once per model and version: say so, or the first `predict` just seems slow
    print(f"fashion-cnn: building {name} {'int8 ' if int8 else ''}onnxruntime graph once "
          f"(kept in {cached.parent})", file=sys.stderr)
    data = onnx_bytes(net, meta, sha)
    if int8:
        data = quantize(data, session_calibration(meta))
    session = new_session(data, threads)
    check(net, session, session_check_images(meta), meta["path"], int8=int8)
    try:
        with atomic_path(cached) as tmp:
            tmp.write_bytes(data)
    except (OSError, FashionCNNError):  # a read-only home or a full disk: run without the cache
        return session
    for stale in cached.parent.glob(f"{sha}-*.onnx"):  # this model's graphs of older builds
        if stale != cached and stale.name.endswith("-int8.onnx") == int8:
            stale.unlink(missing_ok=True)
    return session


def session_check_images(meta: dict[str, Any]) -> torch.Tensor:
    """What a new session is checked on: the first SESSION_CHECK_IMAGES test images, or where
    the data is not found offline the checkpoint's calibration images (real garments: an int8
    graph is only meant to agree on pictures like these), else seeded random images."""
    try:
        return load_test_images(offline=True, progress=False)[:SESSION_CHECK_IMAGES]
    except FashionCNNError:
        if meta.get("calibration") is not None:
            return meta["calibration"][:SESSION_CHECK_IMAGES]
        return seeded_images(SESSION_CHECK_IMAGES)


def session_calibration(meta: dict[str, Any]) -> torch.Tensor:
    """`calibration_images` found offline, or a FashionCNNError saying how to get them."""
    try:
        return calibration_images(meta, offline=True)
    except FashionCNNError:
        raise FashionCNNError(f"The onnxruntime-int8 backend calibrates on Fashion-MNIST "
                              f"training images, which were not found (looked in ${ENV_DIR}, "
                              f"{CACHE_DIR}, {SYSTEM_DIR}). Run `fashion-cnn data` once to "
                              "download them, or use the onnxruntime backend.") from None
