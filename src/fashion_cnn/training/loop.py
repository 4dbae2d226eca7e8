"""The training loop: epochs of shuffled (augmented) batches through a step object.

One loop for every model and speed path: what a step does is the step object's business
(steps.py). Resuming lives here (`load_state` / `save_state`: after every epoch the model,
optimizer, schedule and history are written atomically, so an interrupted run loses at most
the current epoch), and so does splitting each batch between processes (`distributed.share`).
Shuffling uses a generator seeded by (seed, epoch), so a resumed run matches an uninterrupted
one, bit for bit.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..data import CLASS_NAMES
from ..errors import FashionCNNError
from ..evaluate import loss_and_accuracy
from ..files import save_torch
from .augment import alternating_mirror, augment_all, cutmix
from .config import TrainConfig
from .distributed import all_reduce_sum, share, sync_batch_norm, world
from .steps import Step, epoch_size, make_step, summed_loss


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffling RNG of one epoch; depends only on (seed, epoch) so resuming is exact."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def fit(model: nn.Module, config: TrainConfig, images: torch.Tensor, labels: torch.Tensor,
        val_images: torch.Tensor | None = None, val_labels: torch.Tensor | None = None, *,
        state_path: Path | None = None, progress: bool = True,
        log: Callable[[str], None] = _log,
        after_epoch: Callable[[nn.Module, dict[str, Any]], None] | None = None,
        targets: torch.Tensor | None = None,
        first: int | None = None) -> list[dict[str, Any]]:
    """Train `model` in place on uint8 images [N, 28, 28]; return the per-epoch history.

    If `state_path` holds a saved state, training continues from it; after every epoch the
    state is saved there. Several processes (torchrun) each take a share of every batch;
    the first one validates, saves and reports. `after_epoch(model, record)`, if given, runs
    there after validation and before the save: what it adds to the epoch's record (JSON
    values) stays in the history, across a resume; its time is not in `epoch_seconds`.
    `targets` [N, 10], if given, are what the images train towards instead of their labels
    (distill.py); the labels still score the training accuracy. Epochs before the config's
    `photos_from` train on the `first` images only (Fashion-MNIST's: run.training_set puts
    them first).
    """
    rank, processes = world()
    if processes > 1:
        sync_batch_norm(model)  # batch statistics over every process's share of the batch
    state = load_state(state_path, model, config)
    step = make_step(model, config, images, labels,
                     reduce=all_reduce_sum if processes > 1 else None, first=first)
    history = restore_step(step, state, state_path)
    if history and rank == 0:
        log(f"resuming after epoch {history[-1]['epoch']} of {config.epochs}")
    try:
        for epoch in range(len(history) + 1, config.epochs + 1):
            n = epoch_size(config, epoch, len(labels), first)
            record = train_epoch(step, model, config, images[:n], labels[:n], epoch,
                                 progress=progress and rank == 0,
                                 targets=None if targets is None else targets[:n])
            check_finite(record, config)
            if val_images is not None and len(val_images) and rank == 0:
                record["val_loss"], record["val_accuracy"] = loss_and_accuracy(
                    model, val_images, val_labels)
            if after_epoch is not None and rank == 0:
                after_epoch(model, record)  # e.g. extra scores (benchmarks/time_to_accuracy.py)
            history.append(record)
            if rank == 0:
                save_state(state_path, model, step, history, config)
                log(describe_epoch(record, config))
    finally:
        step.close()
    return history


def check_finite(record: dict[str, Any], config: TrainConfig) -> None:
    """Refuse to go on (or save) once the training loss is NaN or infinite: the weights are
    lost, and every later epoch, and a resume, would carry them."""
    loss = record["train_loss"]
    if not math.isfinite(loss):
        raise FashionCNNError(
            f"Training diverged in epoch {record['epoch']}: the loss became {loss}. The "
            f"learning rate is too high for this run (--lr {config.lr:g}); start again with "
            "a lower one and another --out.")


def train_epoch(step: Step, model: nn.Module, config: TrainConfig, images: torch.Tensor,
                labels: torch.Tensor, epoch: int, progress: bool = True,
                targets: torch.Tensor | None = None) -> dict[str, Any]:
    """One pass over the data in this epoch's order; its record (loss and accuracy over the
    epoch, as Keras reports them; time including shuffling and augmentation)."""
    start = time.perf_counter()
    n, bs = len(labels), config.batch_size
    rng = epoch_generator(config.seed, epoch)
    perm = torch.randperm(n, generator=rng)
    xs, ys = images[perm], labels[perm]  # this epoch's order; batches are slices
    ts = ys if targets is None else targets[perm]  # what the step trains towards
    if config.augment.alternate_flip:  # by image, not by position (the config needs --flip)
        mirror = alternating_mirror(n, config.seed, epoch)[perm]
        xs = torch.where(mirror[:, None, None], xs.flip(-1), xs)
    if config.augment.active:  # the whole epoch at once, batched, before the step loop
        xs = augment_all(xs, config.augment, rng)
    if config.augment.cutmix:  # mixes targets too: labels become distributions [N, 10]
        xs, ts = cutmix(xs, ts, config.augment.cutmix, config.label_smoothing, rng)
    model.train()
    step.start_epoch(xs, ts, epoch)
    logits = torch.zeros(n, len(CLASS_NAMES))  # [N, 10]: the epoch's loss and accuracy
    bar = tqdm(range(0, n, bs), desc=f"epoch {epoch}/{config.epochs}", unit="batch",
               disable=not progress, leave=False, mininterval=0.5, file=sys.stderr)
    postfix = progress and world()[1] == 1  # running figures need every process's rows
    for k, i in enumerate(bar):
        rows = share(i, min(i + bs, n))  # this process's rows of the batch
        logits[rows] = step(rows, min(i + bs, n) - i).detach()
        if postfix and k % 200 == 0:
            bar.set_postfix(_loss_and_accuracy(logits[:i + bs], ys[:i + bs], config,
                                               ts[:i + bs]), refresh=False)
    all_reduce_sum([logits])  # every process's rows
    seconds = time.perf_counter() - start
    bar.close()
    extra = step.end_epoch(model)
    return {"epoch": epoch, "images": n, "epoch_seconds": seconds,
            "images_per_second": n / seconds,
            **_loss_and_accuracy(logits, ys, config, ts), "val_loss": None, "val_accuracy": None,
            **extra}


def _loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                       targets: torch.Tensor) -> dict[str, float]:
    """Training loss (as trained: towards `targets`, the labels or target distributions)
    and accuracy of logits [N, 10]; with real photos, a set's any class counts as right and
    outliers are left out of the accuracy."""
    with torch.no_grad():
        loss = (summed_loss(logits, targets, config) / len(labels)).item()
        if not config.photos:
            return {"train_loss": loss,
                    "train_accuracy": (logits.argmax(1) == labels).float().mean().item()}
        from ..photos import LABEL_SETS

        right = LABEL_SETS[labels, logits.argmax(1)]  # [N]: the answer is in the label's set
        in_class = LABEL_SETS[labels].any(1)  # outliers have an empty set
        return {"train_loss": loss, "train_accuracy": right[in_class].float().mean().item()}


def describe_epoch(record: dict[str, Any], config: TrainConfig) -> str:
    """One log line per epoch."""
    val = (f", val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.4f}"
           if record["val_accuracy"] is not None else "")
    return (f"epoch {record['epoch']}/{config.epochs}: {record['epoch_seconds']:.1f}s "
            f"({record['images_per_second']:,.0f} img/s), loss {record['train_loss']:.4f} "
            f"acc {record['train_accuracy']:.4f}{val}")


# ---------------------------------------------------------------------------------------------
# Resuming: DIR/state.pt holds the model, optimizer, schedule and history after each epoch


def load_state(path: Path | None, model: nn.Module,
               config: TrainConfig) -> dict[str, Any] | None:
    """The saved state at `path`, if any, with its weights already loaded into `model`;
    refuses a state saved under another config (a folder reused for another run)."""
    if path is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged file can fail anywhere in the unpickler
        raise FashionCNNError(
            f"{path} is truncated or damaged, so the run cannot continue from it. Delete it "
            f"to train {path.parent} again from its first epoch, or start another --out."
        ) from None
    now = asdict(config)  # a field added since the state was saved is not a difference
    changed = sorted(k for k, v in state.get("config", {}).items() if k in now and now[k] != v)
    if changed:
        raise FashionCNNError(f"{path} was saved by a run with another config (its "
                              f"{', '.join(changed)} differ); continue that run as it was "
                              "started, or start this one with another --out.")
    model.load_state_dict(state["model"])
    return state


def restore_step(step: Step, state: dict[str, Any] | None,
                 path: Path | None) -> list[dict[str, Any]]:
    """Put the saved optimizer and schedule into `step`; return the saved history."""
    if state is None:
        return []
    try:
        step.optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as err:
        raise FashionCNNError(f"{path} does not match this run's config ({err}); "
                              "start a new run with another --out.") from None
    if step.scheduler is not None:
        step.scheduler.load_state_dict(state["scheduler"])
    return state["history"]


def save_state(path: Path | None, model: nn.Module, step: Step,
               history: list[dict[str, Any]], config: TrainConfig) -> None:
    """Write the model, optimizer, schedule, history and config to `path` (atomically: an
    interrupted write leaves the previous epoch's state); nothing when `path` is None."""
    if path is None:
        return
    save_torch({"model": model.state_dict(), "optimizer": step.optimizer.state_dict(),
                "scheduler": step.scheduler.state_dict() if step.scheduler else None,
                "history": history, "config": asdict(config)}, path)
