"""Model architectures and self-describing checkpoints.

Every model takes raw pixels, uint8 or float in 0..255, shaped [N, 28, 28] or [N, 1, 28, 28],
and returns logits [N, 10]. The pixel scaling travels inside the model (`Normalize`), so the CLI,
the app and any export feed the same 0..255 images and cannot disagree on preprocessing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import CLASS_NAMES, IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD
from .errors import FashionCNNError
from .files import save_torch
from .formats import signature
from .preprocess import MISSING, PreprocessConfig, setting_problem

CHECKPOINT_FORMAT = "fashion-cnn-checkpoint/1"
SHIPPED_MODELS = ("best", "seed")  # names usable in place of a checkpoint path
DEFAULT_MODEL = "best"  # what evaluate, predict and the app use unless told otherwise


class Normalize(nn.Module):
    """0..255 pixels -> float [N, 1, 28, 28], scaled to [0, 1] then standardised by mean/std."""

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        x = x.float() * (1.0 / 255.0)
        if self.mean != 0.0 or self.std != 1.0:
            x = (x - self.mean) / self.std
        return x

    def describe(self) -> dict[str, Any]:
        return {"input": "grayscale 28x28, 0..255, white article on black", "scale": 1 / 255,
                "mean": self.mean, "std": self.std}


class SeedCNN(nn.Module):
    """The classic Keras CNN for Fashion-MNIST, layer for layer.

    Conv2D(32, 3x3, ReLU, He-uniform) -> MaxPool 2x2 -> Flatten -> Dense(100, ReLU, He-uniform)
    -> Dense(10) (Keras default Glorot-uniform; softmax lives in the loss). Biases start at zero
    as in Keras. Input scaled to [0, 1], no standardisation.

    It has a fast CPU path (seed_fast/): a hand-fused training step (`fused_step`, used by
    training/steps.py) and forward pass (`fast_forward`, used for evaluation).
    """

    fused_step = True

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv = nn.Conv2d(1, 32, kernel_size=3)  # 28x28 -> 26x26
        self.pool = nn.MaxPool2d(2)  # 26x26 -> 13x13
        self.fc1 = nn.Linear(32 * 13 * 13, 100)
        self.fc2 = nn.Linear(100, len(CLASS_NAMES))
        for layer in (self.conv, self.fc1):  # he_uniform: U(+-sqrt(6 / fan_in))
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
        nn.init.xavier_uniform_(self.fc2.weight)  # glorot_uniform, Keras' default
        for layer in (self.conv, self.fc1, self.fc2):
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Pool, then ReLU: the same function as Keras' ReLU-then-pool (max and ReLU commute) on
        # 4x fewer elements.
        x = torch.relu(self.pool(self.conv(self.normalize(x))))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)

    def fast_forward(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The same function (inference) through the fused forward pass and its compiled
        kernels: uint8 images [B, 28, 28] -> logits [B, 10]. A snapshot of the weights."""
        from .seed_fast.fused import FusedSeed  # imports numba: only when it runs

        return FusedSeed(self).logits


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution (same size) -> batch norm -> ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + two conv_bn layers of x (same width and size)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(width, width), conv_bn(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class BestCNN(nn.Module):
    """The default model: a small ResNet-9-style network (as in the DAWNBench/airbench CIFAR-10
    speed runs) sized for 28x28 images and a 2-core CPU.

    Shapes for width w: [N, 1, 28, 28] -> conv w -> conv 2w, pool -> [2w, 14, 14] + residual
    -> conv 4w, pool -> [4w, 7, 7] -> conv 8w, pool -> [8w, 3, 3] ([8w, 4, 4] with ceil_pool)
    + residual -> global max -> linear 10. Input standardised by the training set's pixel
    mean/std.
    """

    def __init__(self, width: int = 32, tta: bool = False, mean: float = PIXEL_MEAN,
                 std: float = PIXEL_STD, tta_shift: int = 0, ceil_pool: bool = False,
                 outputs: int = len(CLASS_NAMES)):
        super().__init__()
        self.tta = tta  # test-time augmentation: in eval mode, average with the mirror image
        self.tta_shift = tta_shift  # pixels; > 0: with tta, also the picture moved this far
        # left, right, up and down (and their mirrors): 10 views instead of 2
        self.normalize = Normalize(mean, std)
        w = width
        self.features = nn.Sequential(
            conv_bn(1, w),
            conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w),  # 28 -> 14
            conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),  # 14 -> 7
            # 7 -> 3 drops the map's last row and column; ceil_pool: 7 -> 4 keeps them
            conv_bn(4 * w, 8 * w), nn.MaxPool2d(2, ceil_mode=ceil_pool), Residual(8 * w),
            nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Linear(8 * w, outputs)  # outputs: 10 classes (orientation.py: 4 turns)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x).contiguous(memory_format=torch.channels_last)  # faster on CPU
        if self.tta and not self.training:  # [V*N, ...]: V views of the N images, view-major
            views = self.views(x)
            logits = self.head(self.features(torch.cat(views)))
            # [V, N, 10] -> the views' average. No len(x): an ONNX export keeps N symbolic.
            return logits.unflatten(0, (len(views), -1)).mean(0)
        return self.head(self.features(x))

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Test-time views of normalised images [N, 1, 28, 28]: the images, moved by
        `tta_shift` pixels each way if set (uncovered pixels black, as in training's
        translation), then the mirrors of all of these."""
        out = [x]
        if s := self.tta_shift:
            black = -self.normalize.mean / self.normalize.std
            padded = nn.functional.pad(x, (s, s, s, s), value=black)
            h, w = x.shape[-2:]
            out += [padded[..., s + dy:s + dy + h, s + dx:s + dx + w]
                    for dx, dy in ((s, 0), (-s, 0), (0, s), (0, -s))]
        return out + [v.flip(-1) for v in out]


class Ensemble(nn.Module):
    """Members of one architecture trained apart (their own seeds, one validation split) that
    answer together: the average of their logits, each with its own test-time views.

    [N, 1, 28, 28] -> each member -> [K, N, 10] -> mean -> [N, 10]. `tta` and `tta_shift`
    read the first member and set all of them, so code written for one BestCNN works here."""

    def __init__(self, members: int = 2, arch: str = "best", **member_kwargs: Any):
        super().__init__()
        self.members = nn.ModuleList(build_model(arch, **member_kwargs) for _ in range(members))

    @property
    def normalize(self) -> Normalize:  # the members' shared input scaling (checkpoints)
        return self.members[0].normalize

    @property
    def tta(self) -> bool:
        return getattr(self.members[0], "tta", False)

    @tta.setter
    def tta(self, on: bool) -> None:
        for member in self.members:
            member.tta = on

    @property
    def tta_shift(self) -> int:
        return getattr(self.members[0], "tta_shift", 0)

    @tta_shift.setter
    def tta_shift(self, pixels: int) -> None:
        for member in self.members:
            member.tta_shift = pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)


ARCHITECTURES: dict[str, type[nn.Module]] = {"seed": SeedCNN, "best": BestCNN,
                                             "ensemble": Ensemble}


def tta_views(tta_shift: int = 0) -> str:
    """In words, what BestCNN's test-time augmentation averages for a given `tta_shift`."""
    if tta_shift:
        return f"the mirror image and {tta_shift}-pixel shifts each way (10 views)"
    return "the mirror image"


def build_model(arch: str, /, **kwargs: Any) -> nn.Module:
    """Instantiate an architecture by name; kwargs are its constructor arguments."""
    if arch not in ARCHITECTURES:
        raise FashionCNNError(f"Unknown model {arch!r}; choose one of {', '.join(ARCHITECTURES)}.")
    model = ARCHITECTURES[arch](**kwargs)
    model.arch, model.arch_kwargs = arch, dict(kwargs)
    return model


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters alike (the model card's "parameters")."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Checkpoints: the weights plus everything needed to use and trust them.


WEIGHT_DTYPES = ("float32", "float16", "int8")
SCALE_SUFFIX = ".int8_scale"  # int8 files: per-row scales stored next to each matrix


def compress_state(state: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """Smaller weights for shipping: float16, or int8 with one float32 scale per output row
    (symmetric, for tensors of 2+ dims; vectors such as biases go float16)."""
    if dtype == "float32":
        return dict(state)
    out: dict[str, torch.Tensor] = {}
    for name, v in state.items():
        if dtype == "int8" and v.is_floating_point() and v.dim() >= 2:
            rows = v.reshape(v.shape[0], -1)
            scale = (rows.abs().amax(1) / 127).clamp(min=1e-12)  # [rows]
            out[name] = torch.round(rows / scale[:, None]).to(torch.int8).reshape(v.shape)
            out[name + SCALE_SUFFIX] = scale.float()
        else:
            out[name] = v.half() if v.is_floating_point() else v
    return out


def expand_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `compress_state`: float32 tensors again."""
    out = {}
    for name, v in state.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = state.get(name + SCALE_SUFFIX)
        if scale is not None:
            v = (v.reshape(v.shape[0], -1).float() * scale[:, None]).reshape(v.shape)
        out[name] = v.float() if v.is_floating_point() else v
    return out


def layer_names(model: nn.Module) -> list[str]:
    """The model's layers that hold state, input first, as `interpolate_weights` counts them:
    an entry of a top-level nn.Sequential ("features.3") or a top-level module ("head")."""
    return list(dict.fromkeys(_layer(name) for name in model.state_dict()))


def _layer(state_name: str) -> str:
    parts = state_name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]


def interpolate_weights(model: nn.Module, other: dict[str, torch.Tensor], alpha: float,
                        until: str | None = None) -> None:
    """model's floating-point state <- (1 - alpha) model + alpha `other` (a state dict of the
    same architecture and size), in place: WiSE-FT's weight averaging (Wortsman et al. 2022)
    of a model and its fine-tune. Batch-norm statistics are averaged too; counters
    (num_batches_tracked) stay the model's. `until` (one of `layer_names`): only the layers
    from the input up to this one move; the later ones stay the model's (as surgical
    fine-tuning, Lee et al. 2023, tunes early layers for shifts of the input alone)."""
    state = model.state_dict()
    if {k: v.shape for k, v in state.items()} != {k: v.shape for k, v in other.items()}:
        raise FashionCNNError("The weights to average with are of another shape (other "
                              "tensors or sizes): only models of one architecture and size "
                              "can be averaged.")
    layers = layer_names(model)
    if until is not None and until not in layers:
        raise FashionCNNError(f"This model has no layer {until!r} to average up to: its "
                              f"layers are {', '.join(layers)}.")
    moving = set(layers if until is None else layers[:layers.index(until) + 1])
    with torch.no_grad():
        for name in state:
            if _layer(name) in moving and state[name].is_floating_point():
                state[name].lerp_(other[name], alpha)


def set_tta(model: nn.Module, on: bool) -> None:
    """Turn test-time augmentation on or off, in the model and in what its checkpoint will
    record (`arch_kwargs`), so that it loads again the same way."""
    model.tta = on
    model.arch_kwargs = {**model.arch_kwargs, "tta": on}


def save_checkpoint(path: str | Path, model: nn.Module, *, config: dict[str, Any],
                    metrics: dict[str, Any], data_checksums: dict[str, str] | None,
                    weights: str = "float32", unsure: dict[str, Any] | None = None,
                    calibration: torch.Tensor | None = None) -> None:
    """Write a self-describing checkpoint (atomically).

    `weights` = "float16" halves the file, "int8" quarters it (for shipping; the model card
    records the accuracy of what is shipped); loading always restores float32. `unsure`: the
    rule `predict` flags unsure pictures by (training/run.py's `unsure_rule`). `calibration`:
    uint8 training images [N, 28, 28] (`export.calibration_images`) that its int8 graph is
    quantized with, so the int8 backend needs no dataset.
    """
    if weights not in WEIGHT_DTYPES:
        raise ValueError(f"weights must be one of {WEIGHT_DTYPES}, not {weights!r}")
    state = compress_state(model.state_dict(), weights)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": model.arch,
        "arch_kwargs": model.arch_kwargs,
        "class_names": list(CLASS_NAMES),
        "image_size": IMAGE_SIZE,
        "preprocessing": model.normalize.describe(),
        "image_preprocessing": PreprocessConfig().to_dict(),  # picture -> 28x28, see preprocess
        "config": config,
        "metrics": metrics,
        "data_checksums": data_checksums or {},
        "weights_dtype": weights,
        **({"unsure": unsure} if unsure else {}),
        **({"calibration": calibration.to(torch.uint8)} if calibration is not None else {}),
        "state_dict": state,
    }
    save_torch(payload, path)


def shipped_model_dir(name: str) -> Path:
    """Folder of a model shipped inside the package (weights, model card, metrics, plots)."""
    return Path(str(resources.files("fashion_cnn") / "weights" / name))


def training_seconds(shipped: dict[str, Any]) -> float | None:
    """A shipped model's training time from its metrics.json: every run behind the weights
    (`total_train_seconds`, a fine-tune's whole chain; None if one is unknown) where that is
    recorded, else its own run's."""
    return shipped.get("total_train_seconds",
                       shipped.get("training_run", {}).get("train_seconds"))


def model_files(model: str | Path | None = None) -> dict[str, Path]:
    """The documents that come with a shipped model (card, metrics, plots) that exist."""
    path = resolve_checkpoint(model)
    names = {"card": "MODEL_CARD.md", "metrics": "metrics.json",
             "confusion_matrix": "confusion_matrix.png", "learning_curves": "learning_curves.png"}
    found = {key: path.parent / name for key, name in names.items()}
    return {key: p for key, p in found.items() if p.is_file()}


def resolve_checkpoint(model: str | Path | None) -> Path:
    """A shipped model name ('seed') or a path -> checkpoint file path."""
    model = DEFAULT_MODEL if model is None else model
    if str(model) in SHIPPED_MODELS:
        return shipped_model_dir(str(model)) / "model.pt"
    path = Path(model)
    if path.is_dir() and (path / "model.pt").is_file():  # a training output folder
        return path / "model.pt"
    return path


def model_name(model: str | Path | None) -> str:
    """'best', 'seed', or a checkpoint's run folder or file name (never a full path): how
    results files and the API name a model."""
    if model is None or str(model) in SHIPPED_MODELS:
        return str(model or DEFAULT_MODEL)
    path = resolve_checkpoint(model)
    return path.parent.name if path.name == "model.pt" else path.stem


def _missing_checkpoint(path: Path) -> str:
    """Why there is no checkpoint at `path`, and what to do."""
    from .training.run import holds_cv  # (training imports this module)

    if holds_cv(path):
        return (f"{path} holds a cross-validation, which keeps no model: give a run folder of "
                "`fashion-cnn train`, or its model.pt.")
    if path.is_dir() and ((path / "state.pt").is_file() or (path / "config.json").is_file()):
        return (f"{path} holds a training run that has not finished (no model.pt yet): "
                f"continue it with `fashion-cnn train --resume {path}`.")
    where = f"{path} is a folder without a model.pt" if path.is_dir() else \
        f"Checkpoint {path} does not exist"
    return (f"{where}. Give a file written by `fashion-cnn train`, its run folder, or one of: "
            f"{', '.join(SHIPPED_MODELS)}.")


def not_a_torch_file(path: Path) -> str | None:
    """What a file that is no PyTorch file at all looks like ("an ONNX model", "a picture", "a
    text file", "another kind of file"), or None when it is a zip or pickle as torch saves."""
    with open(path, "rb") as file:
        head = file.read(512)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch's zip; an old pickle
        return None
    if not head:
        return "an empty file (0 bytes)"
    if path.suffix.lower() == ".onnx":
        return "an ONNX model (what `export` writes, for other runtimes)"
    if signature(head) is not None:
        return "a picture"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "another kind of file"


def unreadable(err: Exception) -> str:
    """' (what went wrong)' for a file torch could not load, or '' where the error says
    nothing a user can act on."""
    detail = str(err)[:120].strip()  # a bare KeyError says only "'101'": not worth showing
    if detail.startswith("Weights only load failed"):  # torch's advice is not ours to give
        detail = "it holds Python objects no checkpoint holds"
    return f" ({detail})" if any(c.isalpha() for c in detail) else ""


def check_metadata(payload: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint whose metadata this version cannot use (a damaged file, or one from
    a newer version), before anything is built from it."""
    names = payload.get("class_names", CLASS_NAMES)
    problems = [
        (isinstance(payload["arch"], str) and payload["arch"] in ARCHITECTURES,
         f"a model kind this version does not know ({payload['arch']!r}; it knows "
         f"{', '.join(ARCHITECTURES)})"),
        (isinstance(payload["arch_kwargs"], dict), "its architecture settings are not a mapping"),
        (isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names),
         "its class names are not a list of names"),
        (not isinstance(names, (list, tuple)) or len(names) == len(CLASS_NAMES),
         f"it names {len(names) if isinstance(names, (list, tuple)) else 'no'} classes where "
         f"its model answers {len(CLASS_NAMES)}"),
        (isinstance(payload.get("image_preprocessing") or {}, dict),
         "its picture preprocessing is not a mapping"),
        (isinstance(payload.get("preprocessing") or {}, dict),
         "its input scaling (preprocessing) is not a mapping"),
        (not payload.get("unsure") or isinstance(payload["unsure"], dict),
         "its unsure rule is not a mapping")]
    wrong = [why for ok, why in problems if not ok] or settings_problems(payload)
    if wrong:
        raise FashionCNNError(f"{path} cannot be used: {'; '.join(wrong)}. The file is damaged "
                              "or from a newer fashion-cnn; re-copy it, upgrade, or retrain.")


def settings_problems(payload: dict[str, Any]) -> list[str]:
    """The settings of a checkpoint (its mappings checked by `check_metadata`) that hold a
    value of the wrong kind or out of range: the picture preprocessing, the input scaling and
    the unsure rule, each of which would otherwise fail deep inside the first prediction."""
    scaling = payload.get("preprocessing") or {}
    unsure = payload.get("unsure") or {}
    found = PreprocessConfig.problems(payload.get("image_preprocessing") or {},
                                      "image_preprocessing.")
    if "mean" in scaling or "std" in scaling:  # neither: the architecture's own scaling
        # pixels are scaled to 0..1 first: their mean and spread lie within it
        found += [setting_problem("preprocessing.mean", scaling.get("mean", MISSING), 0.0, 0, 1),
                  setting_problem("preprocessing.std", scaling.get("std", MISSING), 1.0,
                                  0.001, 1)]
    found += arch_problems(payload["arch"], payload["arch_kwargs"])
    if unsure:
        found += [setting_problem("unsure.threshold", unsure.get("threshold", MISSING), 0.5,
                                  0, 1),
                  setting_problem("unsure.score", unsure.get("score", "max_softmax"), "")]
        if unsure.get("score") == "energy":  # sigmoid(energy - offset): any finite offset
            found.append(setting_problem("unsure.offset", unsure.get("offset", MISSING), 0.0))
    return [problem for problem in found if problem]


ARCH_RANGES = {"width": (1, None), "tta_shift": (0, None), "members": (1, None)}


def arch_problems(arch: str, kwargs: dict[str, Any]) -> list[str]:
    """The architecture settings of a checkpoint that hold a value unlike their constructor
    default's (`setting_problem`: tta "no" would turn test-time augmentation on). An
    ensemble's are its own and its members'. Names the constructor does not take are left to
    `build_model`, which refuses them."""
    defaults = constructor_defaults(ARCHITECTURES[arch])
    member = kwargs.get("arch", "best") if arch == "ensemble" else None
    if isinstance(member, str) and member in ARCHITECTURES:
        defaults |= constructor_defaults(ARCHITECTURES[member])
    found = (setting_problem(f"arch_kwargs.{name}", value, defaults[name],
                             *ARCH_RANGES.get(name, (None, None)))
             for name, value in kwargs.items() if name in defaults)
    return [problem for problem in found if problem]


def constructor_defaults(kind: type[nn.Module]) -> dict[str, Any]:
    """An architecture's constructor arguments that have a default, and their defaults."""
    return {name: p.default for name, p in inspect.signature(kind).parameters.items()
            if p.default is not inspect.Parameter.empty}


def load_checkpoint(model: str | Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint (path or shipped name) -> (eval-mode model, metadata minus weights)."""
    path = resolve_checkpoint(model)
    if not path.is_file():
        raise FashionCNNError(_missing_checkpoint(path))
    kind = not_a_torch_file(path)
    if kind is not None:
        raise FashionCNNError(f"{path} is not a checkpoint but {kind}. Give the model.pt that "
                              "`fashion-cnn train` writes, its run folder, or one of: "
                              f"{', '.join(SHIPPED_MODELS)}.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged file can fail anywhere in the unpickler
        why = unreadable(err) if "Weights only" in str(err) else " (truncated or damaged)"
        raise FashionCNNError(f"{path} is not a readable checkpoint{why}; retrain or re-copy "
                              "it.") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise FashionCNNError(f"{path} is a PyTorch file but not a fashion-cnn checkpoint "
                              f"(expected format {CHECKPOINT_FORMAT}). Use a file written by "
                              "`fashion-cnn train`.")
    missing = {"arch", "arch_kwargs", "state_dict"} - payload.keys()
    if missing:
        raise FashionCNNError(f"{path} is an incomplete fashion-cnn checkpoint (missing "
                              f"{', '.join(sorted(missing))}); retrain or re-copy it.")
    check_metadata(payload, path)
    try:
        net = build_model(payload["arch"], **payload["arch_kwargs"])
    except TypeError as err:  # settings this version's architecture does not take
        raise FashionCNNError(f"{path} describes a {payload['arch']!r} model this version "
                              f"cannot build ({err}): it may come from a newer fashion-cnn; "
                              "upgrade, or retrain with this one.") from None
    scaling = payload.get("preprocessing") or {}  # as trained with, not today's defaults
    for module in net.modules():
        if isinstance(module, Normalize) and "mean" in scaling:
            module.mean, module.std = scaling["mean"], scaling["std"]
    try:
        net.load_state_dict(expand_state(payload["state_dict"]))
    except RuntimeError as err:
        raise FashionCNNError(f"{path}: the weights do not fit architecture "
                              f"{payload['arch']!r} ({str(err).splitlines()[0]}).") from None
    net.eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    meta["path"] = str(path)
    return net, meta
