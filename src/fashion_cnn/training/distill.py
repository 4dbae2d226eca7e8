"""Knowledge distillation: a teacher model's answers on the training images as soft targets.

With `--teacher CKPT`, each training image's target is a mix of its label (smoothed as
configured) and the teacher's probabilities for it: (1 - w) * label + w * teacher, with
w = `--distill`. Cross-entropy is linear in its target, so training on the mix is Hinton et
al.'s distillation loss at temperature 1: (1 - w) * CE(label) + w * CE(teacher).

The teacher answers once, before training, on the un-augmented training images and their
mirror images (logits averaged, as its test-time views are): [N, 10] probabilities that every
epoch reuses, so distilling costs one inference pass, not a teacher forward per step. Flips
and small shifts leave an image's class alone, so the one answer stands for its augmented
copies too. The 1-pixel shift views are left out: they cost 5x the mirror's inference and
gave the 5-member speed-run ensemble nothing on validation
(benchmarks/results/ensemble_size.json).

Its answers are saved in the run's folder, keyed by the teacher file and the training images:
a resumed run reads them instead of asking again, and under `--nproc` the first process asks
while the others wait and read.

The teacher must not have trained on this run's validation images, or the student's
validation accuracy would carry what the teacher learned from them: its saved config must
name the same validation split.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FashionCNNError
from ..evaluate import predict_logits
from ..files import cached_tensor, file_sha256
from .config import TrainConfig, validation_seed
from .distributed import world

TEACHER_BATCH = 64  # images per forward pass (x2 with the mirror); larger was slower on 2 cores


def teacher_targets(config: TrainConfig, images: torch.Tensor, labels: torch.Tensor,
                    progress: bool = True, cache_dir: Path | None = None
                    ) -> tuple[torch.Tensor, dict[str, Any]]:
    """Soft targets [N, 10] (rows sum to 1) for training images [N, 28, 28] (uint8) with labels
    [N], and what to record about the teacher (checkpoint, its agreement with the labels,
    the seconds its answers took). The answers are kept in `cache_dir` (the run's folder)."""
    from ..models import load_checkpoint

    teacher, meta = load_checkpoint(config.teacher)
    check_split(config, meta)
    sha256 = file_sha256(meta["path"])
    cache = None
    if cache_dir is not None:  # keyed by the teacher and the images it answers on
        key = hashlib.sha256(sha256.encode() + images.numpy().tobytes()).hexdigest()[:16]
        cache = Path(cache_dir) / f"teacher-{key}.pt"
    answers = teacher_answers(teacher, images, cache, progress)
    probabilities = answers["probabilities"]
    n_classes = probabilities.shape[1]
    hard = F.one_hot(labels, n_classes).float()
    hard = hard * (1 - config.label_smoothing) + config.label_smoothing / n_classes
    targets = (1 - config.distill) * hard + config.distill * probabilities
    info = {"path": meta["path"], "sha256": sha256, "arch": meta["arch"],
            "weight": config.distill, "seconds": float(answers["seconds"]),
            "agreement": (probabilities.argmax(1) == labels).float().mean().item()}
    return targets, info


def teacher_answers(teacher: nn.Module, images: torch.Tensor, cache: Path | None,
                    progress: bool) -> dict[str, Any]:
    """{"probabilities": [N, 10], "seconds": of asking}: the teacher's on images [N, 28, 28]
    with their mirror, read from `cache` if there, else asked and saved there (under several
    processes the first asks, the others wait and read)."""

    def ask() -> dict[str, Any]:
        if hasattr(teacher, "tta"):
            teacher.tta, teacher.tta_shift = True, 0  # the image and its mirror
        start = time.perf_counter()
        logits = predict_logits(teacher, images, TEACHER_BATCH,
                                progress="teacher" if progress else "")
        return {"probabilities": logits.float().softmax(1),
                "seconds": time.perf_counter() - start}

    rank, processes = world()
    if processes == 1 or cache is None:
        return cached_tensor(cache, ask)
    if rank == 0:
        cached_tensor(cache, ask)
    torch.distributed.barrier()
    return torch.load(cache, weights_only=True)


def check_split(config: TrainConfig, meta: dict[str, Any]) -> None:
    """Refuse a teacher that trained on (or may have trained on) this run's validation images."""
    saved = meta.get("config")
    if not saved:
        raise FashionCNNError(f"--teacher {meta['path']} records no training config, so which "
                              "images it trained on is unknown; use a checkpoint written by "
                              "`fashion-cnn train`.")
    ours = (config.validation_seed, config.val_fraction)
    theirs = (validation_seed(saved), saved.get("val_fraction", 0.1))
    if ours != theirs:
        raise FashionCNNError(
            f"--teacher {meta['path']} held out another validation split (seed {theirs[0]}, "
            f"fraction {theirs[1]}) than this run (seed {ours[0]}, fraction {ours[1]}), so it "
            f"trained on this run's validation images; pass --split-seed {theirs[0]} "
            f"--val-fraction {theirs[1]}.")
