"""One training run's configuration, and the named recipes.

`TrainConfig` is the single source of the `fashion-cnn train` and `cv` options: every field
(and every field of its nested `Augment`) is an option of the same name, with the help text in
its metadata and its default from here or from the chosen recipe (cli.py builds them).
The defaults are the faithful recipe of the reference Keras model: SGD lr 0.01, momentum 0.9,
batch 32, 10 epochs, cross-entropy, reshuffled every epoch. PyTorch's SGD momentum
(v = m*v + g; w -= lr*v) equals Keras' (v = m*v - lr*g; w += v) at a constant learning rate.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import FashionCNNError

ARCHITECTURES = ("seed", "best")  # models.ARCHITECTURES' names (kept torch-free for the CLI)

SCHEDULES = ("constant", "onecycle")
# onecycle's momentum (low, high): it runs high -> low -> high against the learning rate
ONE_CYCLE_MOMENTUM = (0.85, 0.95)
ONE_CYCLE_MOMENTUM_WORDS = "{1} -> {0} -> {1}".format(*ONE_CYCLE_MOMENTUM)


def _option(default: Any, help: str, **metadata: Any):  # noqa: A002
    """A config field that is also a CLI option with this help text."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass(frozen=True)
class Augment:
    """Augmentation settings (all off by default: the faithful recipe). Each field is also a
    `fashion-cnn train` / `cv` option, with this help text."""

    # every class is left-right symmetric in meaning: a shoe facing right is still a shoe
    flip: bool = _option(False, "Mirror left-right with probability 0.5.")
    # airbench (Jordan 2024): every image is seen both ways in every two epochs, not at random
    alternate_flip: bool = _option(False, "With --flip: mirror a random half of the images in "
                                   "odd epochs and the other half in even ones.")
    shift: float = _option(0.0, "Max random shift, pixels (bilinear).")
    scale: float = _option(0.0, "Max relative zoom, e.g. 0.1 = 90%..110%.")
    contrast: float = _option(0.0, "Contrast range c: gain in [1-c, 1], gamma in [1-c, 1+c].")
    sharpness: float = _option(0.0, "Unsharp amount range s: [-s, s] (negative blurs).")
    noise: float = _option(0.0, "Max std of Gaussian pixel noise (0..255 units).")
    translate: int = _option(0, "Max whole-pixel shift, zero fill (pad and crop).")
    # Zhong et al. 2017, arXiv:1708.04896
    erase: float = _option(0.0, "Random-erasing probability: a random rectangle (about 2-25% "
                           "of the image, aspect 1/3..3) filled with noise.")
    # patterned cloth: after the shrink to 28 px, stripes and checks a few pixels apart cover
    # the article's own shading (seams, collars, pockets), which is what tells a shirt from a coat
    dye: float = _option(0.0, "Probability of dyeing the article with stripes or checks "
                         "(0.8-4 px periods; one shade 10-90% as bright as the other).")
    # Yun et al. 2019, arXiv:1905.04899; applied by the loop, after the other settings
    cutmix: float = _option(0.0, "CutMix probability: a random box of another training image "
                            "pasted in, the target mixed by the box's share of the area.")

    def problems(self) -> list[str]:
        """What is wrong with these settings, as the CLI says it (none: an empty list)."""
        wrong = [f"--{f.name.replace('_', '-')} must be 0 or more" for f in fields(self)
                 if f.type in ("float", "int") and not 0 <= getattr(self, f.name) < math.inf]
        return wrong + [f"--{name} is a probability, in [0, 1]" for name in ("erase", "dye")
                        if getattr(self, name) > 1]

    @property
    def active(self) -> bool:
        """Whether augment.augment changes anything: the loop applies alternating flips and
        CutMix itself, so they alone leave it nothing to do."""
        settings = {**asdict(self), "alternate_flip": False, "cutmix": 0.0}
        if self.alternate_flip:
            settings["flip"] = False
        return any(settings.values())


PRESETS = {
    "none": Augment(),
    "photo": Augment(flip=True, shift=2.0, scale=0.1, contrast=0.3, sharpness=0.6, noise=8.0),
}


@dataclass
class TrainConfig:
    """Everything that defines one training run; saved with its results."""

    model: str = _option("seed", "Architecture: " + ", ".join(ARCHITECTURES) + ".")
    width: int = _option(0, "Best model: channels of its first layer (the others are 2, 4 "
                         "and 8 times that); 0: the architecture's own (32).")
    ceil_pool: bool = _option(False, "Best model: its last pooling keeps the 7x7 map's last "
                              "row and column (7 -> 4, ceil mode) instead of dropping them.")
    tta_shift: int = _option(0, "Best model: with test-time augmentation, also average over "
                             "the picture moved this many pixels each way (10 views, not 2).")
    members: int = _option(1, "Best model: train this many members (seeds seed*members+k, on "
                           "seed's validation split) and answer with their averaged logits.")
    epochs: int = _option(10, "Passes over the training data.")
    batch_size: int = _option(32, "Images per SGD step.")
    lr: float = _option(0.01, "SGD learning rate (the peak, with --schedule onecycle).")
    momentum: float = _option(0.9, "SGD momentum (Keras-style); with --schedule onecycle it "
                              f"cycles {ONE_CYCLE_MOMENTUM_WORDS} against the learning rate "
                              "instead.")
    seed: int = _option(0, "Random seed (initialisation, validation split or folds, shuffling).")
    split_seed: int = _option(-1, "Seed of the validation split; -1: --seed (an ensemble's "
                              "members share their ensemble's split).")
    val_fraction: float = _option(0.1, "Share of the training set held out for validation "
                                  "(train; cv holds out each fold instead).")
    threads: int = _option(0, "Torch threads; 0: automatic (the seed CNN's fused step times "
                           "all cores, one fewer and one while it trains and keeps the fastest; "
                           "other models: one per core).")
    # Speed: the same function and update, computed faster (benchmarks/train_seed.py)
    fused: bool = _option(True, "Seed CNN: the hand-fused training step; --no-fused runs plain "
                          "PyTorch autograd. Other models ignore it.")
    numba: bool = _option(True, "Fused step: the conv block as compiled numba kernels; "
                          "--no-numba uses torch operations.")
    channels_last: bool = _option(False, "Plain autograd path: channels-last activations.")
    bf16: bool = _option(False, "bfloat16 matrix products: autocast on the plain path, fc1's "
                         "products in the fused step; weights and update stay float32. Only "
                         "on a CPU with bfloat16 kernels (AVX-512 and up); elsewhere the "
                         "run trains in float32, which is faster there.")
    # Optimisation
    nesterov: bool = _option(False, "Nesterov momentum.")
    weight_decay: float = _option(0.0, "L2 penalty added to the gradient (SGD weight decay).")
    schedule: str = _option("constant", "Learning-rate schedule: constant, or onecycle (warm "
                            "up to --lr over the first quarter, then anneal to ~0, per step).")
    label_smoothing: float = _option(0.0, "Label smoothing of the cross-entropy targets.")
    lookahead: bool = _option(False, "airbench's lookahead: every 5 steps the weights are "
                              "pulled back towards their running average, more strongly as "
                              "training ends (steps.Lookahead; on the plain autograd path).")
    # Foret et al. 2021, arXiv:2010.01412 (on the plain autograd path)
    sam: float = _option(0.0, "Sharpness-aware minimisation: each step takes its gradient "
                         "at the weights moved this far (rho, over all parameters) uphill "
                         "along the batch's gradient; 0: off. Two gradients per step.")
    # airbench (Jordan 2024): a fixed first layer and batch norm without a learned scale
    whiten: bool = _option(False, "Best model: its first convolution is set to the training "
                           "images' 3x3 patch-whitening filters (each direction and its "
                           "negative) and not trained.")
    bn_scale: bool = _option(True, "Best model: train the batch norms' scales (--no-bn-scale "
                             "keeps them where they start, 1 in a new model).")
    # Real photos (photos.py): their train split joins the training data, converted by the
    # same preprocessing as `predict`; longsleeve and shoes count any class of their set as
    # right, hat/shorts/skirt are outliers trained towards the uniform distribution
    photos: bool = _option(False, "Also train on the real phone photos' train split "
                           "(clothing-dataset-small; $CLOTHING_PHOTOS_DIR).")
    photo_repeat: int = _option(4, "Times each real photo appears per epoch.")
    photo_views: int = _option(0, "Retaken views of each real photo (turned, relit, cut by "
                               "--photo-crop: photos.photo_view) that take turns with the "
                               "photo itself in its --photo-repeat appearances; fewer than "
                               "those.")
    photo_crop: float = _option(0.0, "Share of the width and of the height a retaken view may "
                                "cut off (0-0.5; 0: turned and relit only; cutting cost "
                                "out-of-class AUROC in benchmarks/photo_views.py).")
    outlier_weight: float = _option(0.5, "Weight of the outlier photos' loss (cross-entropy "
                                    "to the uniform distribution).")
    synthetic: int = _option(0, "Also train on this many synthetic hard photos of training "
                             "images (fashion_cnn.render: textured backdrops, uneven light, "
                             "shadows, dyed patterns), converted as `predict` converts photos.")
    photos_from: int = _option(1, "With --photos or --synthetic: the epoch at which they join "
                               "the run; the epochs before it train on Fashion-MNIST alone "
                               "(a curriculum in one run; 1: from the start).")
    init: str = _option("", "Start from this checkpoint's weights (a shipped model name or a "
                        "path; same architecture), e.g. to fine-tune.")
    # Distillation (distill.py): the teacher answers once on the training images
    teacher: str = _option("", "Distil from this checkpoint (e.g. an ensemble): its "
                           "probabilities on each training image join the label as the target. "
                           "It must hold out this run's validation split.")
    distill: float = _option(0.5, "With --teacher: the teacher's share of the target (0-1); "
                             "the label's is the rest.")
    augment: Augment = field(default_factory=Augment)  # all off: the faithful recipe

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):  # as saved in config.json
            self.augment = Augment(**self.augment)
        problems = []
        if self.model not in ARCHITECTURES:
            problems.append(f"--model must be one of {', '.join(ARCHITECTURES)}")
        if self.width < 0 or (self.width and self.model != "best"):
            problems.append("--width is for the best model only, and at least 1")
        for name, on in (("--ceil-pool", self.ceil_pool), ("--whiten", self.whiten),
                         ("--no-bn-scale", not self.bn_scale)):
            if on and (self.model != "best" or self.members > 1):
                problems.append(f"{name} is for the best model only (one member)")
        if self.tta_shift < 0 or (self.tta_shift and self.model != "best"):
            problems.append("--tta-shift is for the best model only, and 0 or more")
        if self.members < 1 or (self.members > 1 and self.model != "best"):
            problems.append("--members is for the best model only, and at least 1")
        if self.epochs < 1:
            problems.append("--epochs must be at least 1")
        if self.batch_size < 1:
            problems.append("--batch-size must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append("--lr must be positive")
        if not 0 <= self.momentum < 1:
            problems.append("--momentum must be in [0, 1)")
        if not 0 <= self.label_smoothing < 1:
            problems.append("--label-smoothing must be in [0, 1)")
        if not (0 <= self.weight_decay < math.inf and 0 <= self.outlier_weight < math.inf):
            problems.append("--weight-decay and --outlier-weight must be 0 or more")
        problems += self.augment.problems()
        if not 0 <= self.val_fraction < 1:
            problems.append("--val-fraction must be in [0, 1)")
        if self.nesterov and self.momentum <= 0:
            problems.append("Nesterov needs --momentum > 0")
        if self.schedule not in SCHEDULES:
            problems.append(f"--schedule must be one of {', '.join(SCHEDULES)}")
        if self.sam < 0:
            problems.append("--sam must be 0 (off) or more")
        if self.synthetic < 0:
            problems.append("--synthetic must be 0 or more")
        if self.photo_repeat < 1:
            problems.append("--photo-repeat must be at least 1")
        if not 0 <= self.photo_views < self.photo_repeat:
            problems.append("--photo-views must be 0 or more and less than --photo-repeat")
        if (self.epochs >= 1 and not 1 <= self.photos_from <= self.epochs) or (
                self.photos_from > 1 and not (self.photos or self.synthetic)):
            problems.append("--photos-from is an epoch of the run (1 to --epochs), for runs "
                            "with --photos or --synthetic")
        if not 0 <= self.photo_crop <= 0.5:
            problems.append("--photo-crop must be in [0, 0.5]")
        if not 0 <= self.distill <= 1:
            problems.append("--distill must be in [0, 1]")
        if self.teacher and (self.model != "best" or self.photos):
            problems.append("--teacher is for the best model on Fashion-MNIST (without --photos)")
        if not 0 <= self.augment.cutmix <= 1 or (self.augment.cutmix and self.photos):
            problems.append("--cutmix is a probability, for Fashion-MNIST alone (no --photos)")
        if self.augment.alternate_flip and not self.augment.flip:
            problems.append("--alternate-flip needs --flip")
        if self.threads < 0:
            problems.append("--threads must be 0 (automatic) or more")
        if problems:
            raise FashionCNNError("; ".join(problems) + ".")

    def arch_kwargs(self) -> dict[str, Any]:
        """The architecture's constructor arguments this config sets (models.build_model):
        of the model, or of each member of an ensemble."""
        kwargs = {"width": self.width, "tta_shift": self.tta_shift, "ceil_pool": self.ceil_pool}
        return {k: v for k, v in kwargs.items() if v}

    def architecture(self) -> tuple[str, dict[str, Any]]:
        """(name, constructor arguments) of what this config trains: the model, or the
        ensemble (models.Ensemble) of `members` such models."""
        if self.members > 1:
            return "ensemble", {"members": self.members, "arch": self.model,
                                **self.arch_kwargs()}
        return self.model, self.arch_kwargs()

    @property
    def validation_seed(self) -> int:
        """The seed of the validation split (training.run.split_indices)."""
        return validation_seed(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A saved config. Older ones kept the augmentation settings at the top level, and
        those written before the fused step (or its compiled kernels) existed ran the plain
        path (or the fused step's torch operations)."""
        return with_options(cls(fused=False, numba=False), d)


def validation_seed(config: dict[str, Any]) -> int:
    """The validation split's seed of a saved config: its `split_seed`, else its `seed`."""
    split = config.get("split_seed", -1)
    return config.get("seed", 0) if split is None or split < 0 else split


def parse_setting(text: str, defaults: Any) -> tuple[str, Any]:
    """KEY=VALUE (a script's --tune or --set) -> (KEY, VALUE typed like the field KEY of the
    dataclass instance `defaults`, e.g. TrainConfig() or PreprocessConfig()). Booleans read
    1/true/yes and 0/false/no. FashionCNNError naming the settings when KEY is not a plain
    field of `defaults` or VALUE does not read as its type."""
    key, _, value = text.partition("=")
    plain = {f.name: getattr(defaults, f.name) for f in fields(defaults)
             if isinstance(getattr(defaults, f.name), (bool, int, float, str))}
    if not value or key not in plain:
        raise FashionCNNError(f"{text!r} is not KEY=VALUE with KEY one of {', '.join(plain)}.")
    default = plain[key]
    try:
        return key, read_bool(value) if isinstance(default, bool) else type(default)(value)
    except ValueError:
        raise FashionCNNError(f"{text!r}: {key} takes a {type(default).__name__}, "
                              f"like {default!r}.") from None


def read_bool(value: str) -> bool:
    """1/true/yes -> True, 0/false/no -> False (any case); ValueError otherwise."""
    words = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    try:
        return words[value.lower()]
    except KeyError:
        raise ValueError(value) from None


def setting_argument(defaults: Any) -> Callable[[str], tuple[str, Any]]:
    """An argparse `type=` reading KEY=VALUE with parse_setting: a wrong setting is a usage
    message (exit 2) naming the settings, not a traceback."""
    def parse(text: str) -> tuple[str, Any]:
        try:
            return parse_setting(text, defaults)
        except FashionCNNError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def with_options(config: TrainConfig, options: dict[str, Any]) -> TrainConfig:
    """`config` with some fields replaced; augmentation settings may be given flat
    (`flip=True`) or nested (`augment={...}`); unknown keys are ignored, None means unset."""
    top = {f.name for f in fields(TrainConfig)} - {"augment"}
    nested = {f.name for f in fields(Augment)}
    given = {k: v for k, v in options.items() if v is not None}
    if isinstance(given.get("augment"), Augment):
        given["augment"] = asdict(given["augment"])
    augment = {**asdict(config.augment), **given.get("augment", {}),
               **{k: v for k, v in given.items() if k in nested}}
    return replace(config, **{k: v for k, v in given.items() if k in top},
                   augment=Augment(**augment))


# ---------------------------------------------------------------------------------------------
# Named recipes: overrides of the defaults (which are the faithful recipe)

# The best model (models.BestCNN): bf16 channels-last convolutions, one-cycle SGD with weight
# decay and label smoothing, flips, 2-pixel shifts and random erasing.
BEST = dict(model="best", batch_size=128, epochs=36, lr=0.1, nesterov=True, schedule="onecycle",
            label_smoothing=0.1, weight_decay=5e-4, flip=True, translate=2, erase=0.5,
            bf16=True, channels_last=True)
RECIPES: dict[str, dict[str, Any]] = {
    "faithful": {},
    # Same architecture, trained for time: bigger batches (fewer, cheaper steps), one-cycle LR,
    # Nesterov, label smoothing and flips; chosen on the validation split
    # (benchmarks/fast_recipe_search.py).
    "fast": dict(batch_size=128, epochs=6, lr=0.1, nesterov=True, schedule="onecycle",
                 label_smoothing=0.1, flip=True),
    "best": BEST,
    # Aimed at 95% on the official test set in under 15 minutes of a 2-core CPU: the best
    # recipe on the best model at width 16 (a quarter of the products), 44 epochs, without
    # random erasing (chosen on the validation split: benchmarks/speedrun_ablation.py, one
    # trick at a time), evaluated on 10 views (mirror and 1-pixel shifts; chosen on
    # validation: benchmarks/results/tta_views.json); its minutes and test accuracy:
    # benchmarks/results/time_to_accuracy_speedrun.json
    "speedrun": {**BEST, "width": 16, "epochs": 44, "erase": 0.0, "tta_shift": 1},
}
RECIPE_NOTES = {"faithful": "the Keras article's recipe (the defaults)",
                "fast": "the seed CNN trained for time",
                "best": "the best model's recipe",
                "speedrun": "the best model, narrower and shorter, for time"}


def default_recipe(model: str | None) -> str:
    """The recipe used when none is named: the model's own if it has one, else faithful."""
    return model if model in RECIPES else "faithful"


def recipe_config(recipe: str | None = "faithful", augment: str | None = None,
                  **options: Any) -> TrainConfig:
    """A TrainConfig from a named recipe, then an augmentation preset (`augment`: a name in
    PRESETS), then explicit options (flat names; None counts as not given). No recipe:
    the model's own ("best" for the best model), else the faithful one."""
    recipe = recipe or default_recipe(options.get("model"))
    if recipe not in RECIPES:
        raise FashionCNNError(f"--recipe must be one of {', '.join(RECIPES)}, not {recipe!r}.")
    if augment is not None and augment not in PRESETS:
        raise FashionCNNError(f"--augment must be one of {', '.join(PRESETS)}, not {augment!r}.")
    config = with_options(TrainConfig(), RECIPES[recipe])
    if augment is not None:
        config = replace(config, augment=PRESETS[augment])
    return with_options(config, options)
