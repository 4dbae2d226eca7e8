"""Scoring a model: accuracy, per-class precision/recall/F1, confusion matrix, worst mistakes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data import CLASS_NAMES

EVAL_BATCH = 256  # images per forward pass: the seed CNN's activations (256 x 32x26x26 x 4 B =
# 22 MB) stay near cache; benchmarks/predict_speed.py times batch sizes


Forward = nn.Module | Callable[[torch.Tensor], torch.Tensor]  # uint8 [B, 28, 28] -> [B, 10]


@torch.inference_mode()
def predict_logits(model: Forward, images: torch.Tensor, batch_size: int = EVAL_BATCH,
                   fused: bool = True, progress: str = "") -> torch.Tensor:
    """Logits [N, 10] for uint8 images [N, 28, 28], in eval mode, batch by batch.

    `model`: a PyTorch model, or any function from images to logits (e.g.
    `Classifier.logits` on the onnxruntime backend). `fused`: use the model's fast inference
    path where it has one (`fast_forward`: the seed CNN's fused forward pass; the same logits).
    `progress`: if given, a progress bar with this label on stderr (long passes).
    """
    starts = range(0, len(images), batch_size)
    if progress:
        import sys

        from tqdm import tqdm

        starts = tqdm(starts, desc=progress, unit="batch", leave=False, file=sys.stderr)
    if not isinstance(model, nn.Module):
        return torch.cat([model(images[i:i + batch_size]) for i in starts])
    was_training = model.training
    model.eval()
    forward = model.fast_forward() if fused and hasattr(model, "fast_forward") else model
    out = torch.cat([forward(images[i:i + batch_size]) for i in starts])
    model.train(was_training)
    return out


def loss_and_accuracy(model: Forward, images: torch.Tensor,
                      labels: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (a fraction) of `model` on a labelled set."""
    logits = predict_logits(model, images)
    loss = F.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    return loss, accuracy


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor,
                     n_classes: int = len(CLASS_NAMES)) -> torch.Tensor:
    """[true class, predicted class] counts, int64 [n_classes, n_classes]."""
    flat = labels * n_classes + predictions
    return torch.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_metrics(confusion: torch.Tensor) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class from a confusion matrix."""
    tp = confusion.diag().double()
    predicted = confusion.sum(0).double()
    actual = confusion.sum(1).double()
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), 0.0)
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), 0.0)
    f1 = torch.where(precision + recall > 0,
                     2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
    return [{"class": name, "index": i, "precision": precision[i].item(),
             "recall": recall[i].item(), "f1": f1[i].item(), "support": int(actual[i])}
            for i, name in enumerate(CLASS_NAMES)]


def evaluate(model: Forward, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Full report on a labelled set: accuracy (fraction), loss, per-class table, confusion."""
    return report_of(predict_logits(model, images), labels)


def report_of(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """`evaluate`'s report from the logits [N, 10] already computed for the labels [N]."""
    predictions = logits.argmax(1)
    confusion = confusion_matrix(labels, predictions)
    return {
        "n_images": len(labels),
        "accuracy": (predictions == labels).float().mean().item(),
        "loss": F.cross_entropy(logits, labels).item(),
        "per_class": per_class_metrics(confusion),
        "confusion_matrix": confusion.tolist(),
        "class_names": list(CLASS_NAMES),
    }


def worst_mistakes(logits: torch.Tensor, labels: torch.Tensor,
                   k: int = 25) -> list[dict[str, Any]]:
    """The k wrong predictions (logits [N, 10] for labels [N]) made with the highest
    confidence."""
    probs = logits.softmax(1)
    confidence, predictions = probs.max(1)
    wrong = (predictions != labels).nonzero().flatten()
    order = wrong[confidence[wrong].argsort(descending=True)][:k]
    return [{"index": int(i), "label": int(labels[i]), "predicted": int(predictions[i]),
             "confidence": confidence[i].item()} for i in order]


def format_report(report: dict[str, Any]) -> str:
    """Human-readable accuracy line plus the per-class table."""
    lines = [f"Accuracy : {100 * report['accuracy']:.2f}%  "
             f"({report['n_images']:,} test images)", "",
             f"{'class':<12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for row in report["per_class"]:
        lines.append(f"{row['class']:<12} {row['precision']:>9.3f} {row['recall']:>7.3f} "
                     f"{row['f1']:>7.3f} {row['support']:>8}")
    return "\n".join(lines)
