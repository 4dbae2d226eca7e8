"""Step objects: one SGD step on a batch, with the optimizer and schedule that go with it.

The training loop (loop.py) treats every step object alike:

    step.start_epoch(images, labels, epoch)  # this epoch's shuffled (augmented) data
    logits = step(rows, whole)      # train on images[rows]; `whole` is the size of the batch
                                    # that rows belong to (several processes: a share)
    extra = step.end_epoch(model)   # weights into `model`; extra fields for the epoch record
    step.close()                    # give back what the step took (e.g. the thread count)

`make_step` is the one place that chooses: the seed CNN's hand-fused step (seed_fast/step.py)
where the config asks for it and the model has one (and neither real photos, the lookahead,
SAM nor CutMix's target distributions are on: the fused step has none of them), else plain
autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .config import ONE_CYCLE_MOMENTUM, TrainConfig

Reduce = Callable[[list[torch.Tensor]], None]  # sums gradients across processes, in place


class Step(Protocol):
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None

    def start_epoch(self, images: torch.Tensor, labels: torch.Tensor, epoch: int) -> None: ...

    def __call__(self, rows: slice, whole: int) -> torch.Tensor: ...

    def end_epoch(self, model: nn.Module) -> dict[str, Any]: ...

    def close(self) -> None: ...


def make_optimizer(config: TrainConfig, params: Iterable[torch.Tensor],
                   fused: bool = False) -> torch.optim.SGD:
    """SGD as the config says; `fused`: torch's one-kernel update (for one flat vector)."""
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           nesterov=config.nesterov, weight_decay=config.weight_decay,
                           fused=fused)


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer,
                   total_steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule over the run's `total_steps`, stepped once per training step
    (None: constant)."""
    if config.schedule != "onecycle":
        return None
    # Smith's one-cycle also moves momentum against the learning rate (ONE_CYCLE_MOMENTUM,
    # torch's defaults spelled out): every onecycle run on record trained so, and --momentum
    # sets the constant schedule's only
    low, high = ONE_CYCLE_MOMENTUM
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=0.25,
        cycle_momentum=True, base_momentum=low, max_momentum=high)


def epoch_size(config: TrainConfig, epoch: int, n: int, first: int | None = None) -> int:
    """How many of the `n` training images an epoch trains on: all, but only the `first`
    (Fashion-MNIST's, which come first) in epochs before `photos_from`."""
    return first if first is not None and epoch < config.photos_from else n


def epoch_steps(config: TrainConfig, n: int, first: int | None = None) -> list[int]:
    """Steps in each epoch of the run (batches of its `epoch_size` images)."""
    return [-(-epoch_size(config, epoch, n, first) // config.batch_size)
            for epoch in range(1, config.epochs + 1)]


class PlainStep:
    """Autograd: forward, mean cross-entropy (label smoothing as configured), backward,
    optimizer step (with `sam`, a second forward and backward at the ascended weights first);
    with `bf16`, under bfloat16 autocast. Works for any architecture."""

    def __init__(self, model: nn.Module, config: TrainConfig, steps: list[int],
                 reduce: Reduce | None = None):
        # steps: how many in each epoch (epoch_steps)
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model, self.config, self.reduce = model, config, reduce
        self.optimizer = make_optimizer(config, model.parameters())
        self.scheduler = make_scheduler(config, self.optimizer, sum(steps))
        self.steps = steps
        self.lookahead = Lookahead(model, sum(steps)) if config.lookahead else None

    def start_epoch(self, images: torch.Tensor, labels: torch.Tensor, epoch: int) -> None:
        # [N, 28, 28] uint8; [N] int64, or [N, 10] float target distributions (distilling)
        self.images, self.labels = images, labels
        if self.lookahead is not None:
            self.lookahead.start(sum(self.steps[:epoch - 1]))

    def __call__(self, rows: slice, whole: int) -> torch.Tensor:
        x, y = self.images[rows], self.labels[rows]
        logits = self.gradient(x, y, whole)
        if self.config.sam:  # the step follows the gradient at the worst point within rho
            with sharpness_ascent(self.model, self.config.sam):
                self.gradient(x, y, whole)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.lookahead is not None:
            self.lookahead.step()
        return logits

    def gradient(self, x: torch.Tensor, y: torch.Tensor, whole: int) -> torch.Tensor:
        """The batch's gradient into each parameter's .grad (summed across processes: this
        share's loss is divided by the whole batch's size); returns the logits."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.config.bf16):
            logits = self.model(x)
            loss = summed_loss(logits, y, self.config) / whole
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.reduce is not None:
            self.reduce([p.grad for p in self.optimizer.param_groups[0]["params"]])
        return logits

    def end_epoch(self, model: nn.Module) -> dict[str, Any]:
        if self.lookahead is not None:
            self.lookahead.finish()
        return {}

    def close(self) -> None:
        pass


@contextmanager
def sharpness_ascent(model: nn.Module, rho: float) -> Iterator[None]:
    """SAM's ascent (Foret et al. 2021): inside, the weights are moved by rho along their
    current gradient (scaled to length rho over all parameters together) and batch norms keep
    their running statistics as they are (the second pass sees the same batch); on leaving,
    the weights move back, so the optimizer applies the gradient taken inside to them."""
    params = [p for p in model.parameters() if p.grad is not None]
    with torch.no_grad():
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        moves = [p.grad * (rho / (norm + 1e-12)) for p in params]
        torch._foreach_add_(params, moves)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) running + 0 batch: unchanged
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        with torch.no_grad():
            torch._foreach_sub_(params, moves)


class Lookahead:
    """airbench's lookahead (K. Jordan, airbench, after hlb-cifar10; Zhang et al. 2019's
    Lookahead optimizer with an averaging weight that grows): every `every` steps the running
    average moves towards the weights, `average += (1 - decay) * (weights - average)`, and the
    weights are set to it; decay = 0.95**every * (t / total)**3 at step t, so early training
    runs free and the last epochs average strongly. Floating-point state (weights and batch-norm
    statistics) is averaged. An epoch ends on the average, so a resumed run starts where an
    uninterrupted one would."""

    def __init__(self, model: nn.Module, total: int, every: int = 5, base: float = 0.95,
                 power: float = 3.0):
        self.state = [t for t in model.state_dict().values() if t.is_floating_point()]
        self.total, self.every, self.base, self.power = total, every, base, power

    @torch.no_grad()
    def start(self, done: int) -> None:
        """Begin an epoch after `done` steps: the average starts as the current weights."""
        self.done = done
        self.average = [t.clone() for t in self.state]

    @torch.no_grad()
    def step(self) -> None:
        self.done += 1
        if self.done % self.every:
            return
        decay = self.base ** self.every * (self.done / self.total) ** self.power
        for average, current in zip(self.average, self.state, strict=True):
            average.lerp_(current, 1 - decay)
        self.finish()

    @torch.no_grad()
    def finish(self) -> None:
        """Set the weights to the average (the steps since the last pull are dropped)."""
        for average, current in zip(self.average, self.state, strict=True):
            current.copy_(average)


def summed_loss(logits: torch.Tensor, labels: torch.Tensor,
                config: TrainConfig) -> torch.Tensor:
    """The batch's summed cross-entropy (label smoothing as configured). With real photos,
    labels are photo codes (photos.py): 0-9 a class, 10-11 a set of classes (any counts as
    right: -log of the set's total probability), 12 an outlier (cross-entropy to the uniform
    distribution, weighted by `outlier_weight`). Float labels [N, 10] are target
    distributions (distill.py: label smoothing is already in them)."""
    if labels.is_floating_point():
        return F.cross_entropy(logits, labels, reduction="sum")
    if not config.photos:
        return F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing,
                               reduction="sum")
    from ..photos import LABEL_SETS

    single = labels < logits.shape[1]
    loss = F.cross_entropy(logits[single], labels[single],
                           label_smoothing=config.label_smoothing, reduction="sum")
    log_p = logits[~single].float().log_softmax(1)  # [b, 10]
    allowed = LABEL_SETS[labels[~single]]  # [b, 10] bool; all False: an outlier
    in_set = allowed.any(1)
    loss = loss - torch.logsumexp(log_p[in_set].masked_fill(~allowed[in_set], -torch.inf),
                                  1).sum()
    return loss - config.outlier_weight * log_p[~in_set].mean(1).sum()


def native_bf16() -> bool:
    """Whether oneDNN has bfloat16 kernels for this CPU (AVX-512 and up: AVX512-BF16, AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def for_this_cpu(config: TrainConfig) -> TrainConfig:
    """`config` with --bf16 off on a CPU without native bfloat16. The flag was chosen where
    the CPU has it; elsewhere autocast emulates bfloat16 and a step of the best model takes
    several times longer than in float32 (benchmarks/results/cpu_bf16.json). The weights
    and update are float32 either way; the run records what it used."""
    if not config.bf16 or native_bf16():
        return config
    return replace(config, bf16=False)


def make_step(model: nn.Module, config: TrainConfig, images: torch.Tensor,
              labels: torch.Tensor, reduce: Reduce | None = None,
              first: int | None = None) -> Step:
    """The step object for this model and config, over training data images [N, 28, 28]
    (uint8) and labels [N] (the fused step checks its thread counts on a few of them), of
    which epochs before `photos_from` train on the `first` only. What the config freezes
    (`freeze_parameters`) is set and frozen first, before any optimizer."""
    config = for_this_cpu(config)
    steps = epoch_steps(config, len(labels), first)
    freeze_parameters(model, config, images)
    fused = config.fused and not (config.photos or config.lookahead or config.sam
                                  or config.augment.cutmix)
    if fused and getattr(model, "fused_step", False):
        from ..seed_fast.step import FusedStep  # imports numba: only when it runs

        return FusedStep(model, config, images, labels, steps, reduce)
    return PlainStep(model, config, steps, reduce)


# ---------------------------------------------------------------------------------------------
# Parameters the step leaves alone (airbench's fixed first layer and batch-norm scales)

WHITEN_IMAGES = 2000  # training images whose 3x3 patches (~1.6M) estimate the covariance


def freeze_parameters(model: nn.Module, config: TrainConfig, images: torch.Tensor) -> None:
    """Before the optimizer is made: with `whiten`, set the best model's first convolution to
    the whitening filters of the first training images' patches (as many as it has channels;
    a channel beyond them keeps its weights) and freeze it, recomputed the same on a resume;
    with `bn_scale` off, freeze every batch norm's scale where it stands."""
    if config.whiten:
        conv = model.features[0][0]
        x = model.normalize(images[:WHITEN_IMAGES])  # [n, 1, 28, 28], as the model sees it
        filters = whitening_filters(x, conv.kernel_size[0])
        n = min(len(filters), conv.out_channels)
        with torch.no_grad():
            conv.weight[:n] = filters[:n]
        conv.weight.requires_grad_(False)
    if not config.bn_scale:
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.requires_grad_(False)


def whitening_filters(x: torch.Tensor, k: int = 3, eps: float = 5e-4) -> torch.Tensor:
    """Convolution weights [2 k^2, 1, k, k] that whiten the k x k patches of x [N, 1, H, W]
    (zero padding, as the convolution pads): the patch covariance's eigenvectors, largest
    first, each divided by the square root of its eigenvalue and followed by its negative, so
    a ReLU keeps both signs (airbench's first layer)."""
    patches = F.unfold(x, k, padding=k // 2).transpose(1, 2).reshape(-1, k * k)  # [P, k*k]
    values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))  # ascending
    scaled = (vectors / (values + eps).sqrt()).T.flip(0)  # [k*k, k*k]: rows, largest first
    return torch.stack([scaled, -scaled], 1).reshape(-1, 1, k, k)
