"""scripts/ship_model.py end to end on tiny synthetic data, into a temporary folder: every file
a shipped model comes with is written, and the checkpoint loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_dataset
from fashion_cnn.models import load_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ship_model.py"
FILES = ("model.pt", "metrics.json", "learning_curves.png", "confusion_matrix.png",
         "MODEL_CARD.md")


@pytest.mark.parametrize(("model", "seeds", "weights"),
                         [("seed", ["0", "1"], "int8"), ("best", ["0"], "float16")])
def test_ship_model(tmp_path: Path, model: str, seeds: list[str], weights: str) -> None:
    write_dataset(tmp_path / "data", n_train=200, n_test=100)
    dest = tmp_path / "weights"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", model, "--seeds", *seeds, "--epochs", "1",
         "--runs", str(tmp_path / "runs"), "--dest", str(dest),
         "--data-dir", str(tmp_path / "data"), "--no-verify"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]

    shipped = dest / model
    assert sorted(p.name for p in shipped.iterdir()) == sorted(FILES)
    net, meta = load_checkpoint(shipped / "model.pt")
    assert meta["arch"] == model and meta["weights_dtype"] == weights
    assert meta["config"]["epochs"] == 1 and meta["config"]["seed"] == 0

    metrics = json.loads((shipped / "metrics.json").read_text())
    assert metrics["shipped_seed"] == 0 and set(metrics["seeds"]) == set(seeds)
    assert metrics["shipped_test_accuracy"] == pytest.approx(meta["metrics"]["test_accuracy"])
    for key in ("command", "date", "git_commit", "versions", "data_checksums"):
        assert key in metrics
    card = (shipped / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# Model card: `{model}`")
    assert f"{100 * metrics['shipped_test_accuracy']:.2f}%" in card
    if model == "best":  # int8 for `auto` when its graph passes the check, else float32
        assert ("calibration" in meta) == ("error" not in metrics["int8"])
        assert "## Inference" in card
