"""The seed CNN's fused training step as a step object (training/steps.py), with its
automatic thread count.

Same function and update as `PlainStep` on a `SeedCNN`; the work is laid out for a CPU
(fused.py, kernels.py). Where the thread count is automatic and the numba kernels run in one
process, a `ThreadTuner` (threads.py) picks the fastest count while it trains, among the
counts that give bit-identical weights.
"""

from __future__ import annotations

from typing import Any

import torch

from ..models import SeedCNN
from ..training.config import TrainConfig
from ..training.steps import Reduce, make_optimizer, make_scheduler
from .fused import FusedSeed, soft_targets
from .threads import ThreadTuner, same_result_counts


class FusedStep:
    """`FusedSeed.train_step` on the epoch's data, then the schedule and the thread tuner.

    The weights live in the fused layout while training; `end_epoch` writes them back."""

    def __init__(self, model: SeedCNN, config: TrainConfig, images: torch.Tensor,
                 labels: torch.Tensor, steps: list[int], reduce: Reduce | None = None):
        self.config, self.reduce = config, reduce
        self.fused = FusedSeed(model, numba=config.numba, bf16=config.bf16)
        self.optimizer = make_optimizer(config, [self.fused.theta], fused=True)
        self.scheduler = make_scheduler(config, self.optimizer, sum(steps))
        self.threads_before = torch.get_num_threads()
        self.tuner = (thread_tuner(config, model, images, labels)
                      if reduce is None and self.fused.numba else None)

    def start_epoch(self, images: torch.Tensor, labels: torch.Tensor, epoch: int) -> None:
        self.images = images  # [N, 28, 28] uint8
        self.targets = soft_targets(labels, self.config.label_smoothing)  # [N, 10]
        if self.tuner:
            self.steps_before = dict(self.tuner.steps)
            self.tuner.restart()

    def __call__(self, rows: slice, whole: int) -> torch.Tensor:
        logits = self.fused.train_step(self.images[rows], self.targets[rows], self.optimizer,
                                       1 / whole, self.reduce)
        if self.scheduler is not None:
            self.scheduler.step()
        if self.tuner:
            self.tuner.step()
        return logits

    def end_epoch(self, model: SeedCNN) -> dict[str, Any]:
        """Weights into `model`; the steps run on each thread count this epoch."""
        self.fused.write_back(model)
        if not self.tuner:
            return {}
        return {"thread_steps": {str(c): k - self.steps_before[c]
                                 for c, k in self.tuner.steps.items()}}

    def close(self) -> None:
        torch.set_num_threads(self.threads_before)


def thread_tuner(config: TrainConfig, model: SeedCNN, images: torch.Tensor,
                 labels: torch.Tensor) -> ThreadTuner | None:
    """A ThreadTuner where the thread count is automatic (FusedStep asks only when the numba
    kernels run in one process), over the counts under which three training steps (the
    first, one adding into the momentum buffer, one of the epoch's last batch size) on a copy
    give exactly the weights that all cores give: the run's result then cannot depend on the
    counts it ran on (threads.py)."""
    cores = torch.get_num_threads()
    if config.threads or cores < 2:
        return None
    bs = config.batch_size
    sizes = [min(bs, len(labels))] * 2 + [len(labels) % bs or bs]
    targets = soft_targets(labels[:max(sizes)], config.label_smoothing)

    def three_steps() -> torch.Tensor:
        trial = FusedSeed(model, numba=True, bf16=config.bf16)
        optimizer = make_optimizer(config, [trial.theta], fused=True)
        for b in sizes:
            trial.train_step(images[:b], targets[:b], optimizer, 1 / b)
        return trial.theta.detach()

    choices = same_result_counts(ThreadTuner.default_choices(cores), three_steps)
    return ThreadTuner(choices) if len(choices) > 1 else None
