"""PNG figures: sample grids, learning curves, cross-validation box plot, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .data import CLASS_NAMES  # noqa: E402
from .files import save_figure  # noqa: E402


def sample_grid(images: torch.Tensor, labels: torch.Tensor, path: str | Path,
                per_class: int = 10) -> None:
    """A row of `per_class` sample images for each class."""
    fig, axes = plt.subplots(len(CLASS_NAMES), per_class,
                             figsize=(per_class * 0.9 + 1.5, len(CLASS_NAMES) * 0.9))
    for c, name in enumerate(CLASS_NAMES):
        idx = (labels == c).nonzero().flatten()[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            ax.axis("off")
            if j < len(idx):
                ax.imshow(images[idx[j]], cmap="gray_r", vmin=0, vmax=255)
        axes[c, 0].text(-4, 14, name, ha="right", va="center", fontsize=9)
    fig.suptitle("Fashion-MNIST samples per class")
    save_figure(fig, path)


def learning_curves(histories: list[list[dict[str, Any]]], path: str | Path,
                    title: str = "Learning curves") -> None:
    """Loss and accuracy per epoch, train (solid) and validation (dashed), one colour per run."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for run, history in enumerate(histories):
        epochs = [h["epoch"] for h in history]
        colour = f"C{run}"
        label = f"run {run + 1} " if len(histories) > 1 else ""
        for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            ax.plot(epochs, [h[f"train_{key}"] for h in history], color=colour,
                    label=f"{label}train")
            if history and history[0].get(f"val_{key}") is not None:
                ax.plot(epochs, [h[f"val_{key}"] for h in history], color=colour,
                        linestyle="--", label=f"{label}validation")
    ax_loss.set(title="Cross-entropy loss", xlabel="epoch")
    ax_acc.set(title="Accuracy", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    save_figure(fig, path)


def cv_boxplot(accuracies: list[float], path: str | Path) -> None:
    """Box plot of per-fold accuracy (percent)."""
    fig, ax = plt.subplots(figsize=(4, 5))
    ax.boxplot([100 * a for a in accuracies])
    ax.scatter([1] * len(accuracies), [100 * a for a in accuracies], color="C1", zorder=3)
    ax.set(title=f"{len(accuracies)}-fold cross-validation", ylabel="accuracy (%)", xticks=[])
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def confusion_plot(confusion: list[list[int]], path: str | Path) -> None:
    """Confusion matrix heat map with counts; rows are true classes."""
    matrix = torch.tensor(confusion)
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(CLASS_NAMES))
    ax.set_xticks(ticks, CLASS_NAMES, rotation=45, ha="right")
    ax.set_yticks(ticks, CLASS_NAMES)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (test set)")
    threshold = matrix.max().item() / 2
    for i in ticks:
        for j in ticks:
            value = int(matrix[i, j])
            ax.text(j, i, value, ha="center", va="center", fontsize=7,
                    color="white" if value > threshold else "black")
    save_figure(fig, path)


def mistakes_grid(images: torch.Tensor, mistakes: list[dict[str, Any]], path: str | Path,
                  columns: int = 5) -> None:
    """The worst mistakes: each image titled 'true -> predicted (confidence)'."""
    rows = max(1, -(-len(mistakes) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.2, rows * 2.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, m in zip(axes.flat, mistakes, strict=False):  # the last row may have room left
        ax.imshow(images[m["index"]], cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"{CLASS_NAMES[m['label']]}\n-> {CLASS_NAMES[m['predicted']]} "
                     f"({100 * m['confidence']:.0f}%)", fontsize=8)
    fig.suptitle("Most confident mistakes (true -> predicted)" if mistakes else "No mistakes")
    save_figure(fig, path)
