"""Evaluation: metrics on hand-worked examples, and the shipped model on the real test set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import run_cli
from fashion_cnn.evaluate import (
    confusion_matrix,
    evaluate,
    format_report,
    per_class_metrics,
    worst_mistakes,
)


class FixedLogits(nn.Module):
    """A 'model' whose logits for image i are a given row: lets tests choose predictions."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = x[:, 0, 0].long()  # each test image carries its own row number in pixel (0, 0)
        return self.logits[index]


def _images(n: int) -> torch.Tensor:
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    images[:, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return images


def test_confusion_matrix_counts_true_by_predicted() -> None:
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 2])
    cm = confusion_matrix(labels, predictions, n_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_per_class_metrics_by_hand() -> None:
    cm = torch.zeros(10, 10, dtype=torch.long)
    cm[0, 0], cm[0, 1], cm[1, 1], cm[2, 0] = 3, 1, 2, 2  # class 0: tp 3, fn 1, fp 2
    rows = per_class_metrics(cm)
    assert rows[0]["precision"] == pytest.approx(3 / 5)
    assert rows[0]["recall"] == pytest.approx(3 / 4)
    assert rows[0]["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert rows[0]["support"] == 4 and rows[1]["precision"] == pytest.approx(2 / 3)
    assert rows[2] == {**rows[2], "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert rows[5]["support"] == 0 and rows[5]["f1"] == 0.0  # absent class: no division by 0


def test_evaluate_and_worst_mistakes() -> None:
    labels = torch.tensor([0, 1, 2, 3])
    logits = torch.full((4, 10), -5.0)
    logits[0, 0] = 5.0  # right
    logits[1, 1] = 5.0  # right
    logits[2, 7] = 9.0  # wrong, very confident
    logits[3, 4] = 1.0  # wrong, less confident
    model = FixedLogits(logits)
    report = evaluate(model, _images(4), labels)
    assert report["accuracy"] == pytest.approx(0.5) and report["n_images"] == 4
    assert report["confusion_matrix"][2][7] == 1 and report["confusion_matrix"][3][4] == 1
    mistakes = worst_mistakes(logits, labels, k=5)
    assert [m["index"] for m in mistakes] == [2, 3]
    assert mistakes[0]["predicted"] == 7 and mistakes[0]["confidence"] > 0.99
    assert format_report(report).startswith("Accuracy : 50.00%")


# --- real data -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("model", "target"), [(None, 0.95), ("seed", 0.905)])
def test_shipped_models_on_the_official_test_set(real_data_dir: Path, tmp_path: Path,
                                                 model: str | None, target: float) -> None:
    """The default (best) model reaches 95%, the seed model the foundation's 90.5%."""
    chosen = ["--model", model] if model else []
    result = run_cli("evaluate", *chosen, "--json", "--plots", str(tmp_path), "--data-dir",
                     str(real_data_dir), "--offline")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n_images"] == 10_000 and report["arch"] == (model or "best")
    assert report["accuracy"] >= target
    cm = report["confusion_matrix"]
    assert sum(map(sum, cm)) == 10_000 and all(sum(row) == 1000 for row in cm)
    assert sum(cm[i][i] for i in range(10)) == round(report["accuracy"] * 10_000)
    for name in ("confusion_matrix.png", "worst_mistakes.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    shipped = json.loads((Path(report["checkpoint"]).parent / "metrics.json").read_text())
    if report["backend"] == "onnxruntime-int8":  # the figure of what evaluate ran; int8
        # kernels differ by CPU (with or without VNNI), a few of 10,000 answers with them
        assert report["accuracy"] == pytest.approx(shipped["int8"]["test_accuracy"], abs=1e-3)
    else:
        assert report["accuracy"] == pytest.approx(shipped["shipped_test_accuracy"])

    text = run_cli("evaluate", *chosen, "--data-dir", str(real_data_dir), "--offline")
    assert text.returncode == 0, text.stderr
    assert f"Accuracy : {100 * report['accuracy']:.2f}%" in text.stdout
