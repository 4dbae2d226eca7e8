"""The speed-run ablation (benchmarks/speedrun_ablation.py) on tiny synthetic data: one line per
change, validation scores only, lines merged into the result file and not trained twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_benchmark
from fashion_cnn.training import RECIPES

ablation = load_benchmark("speedrun_ablation")

TINY = dict(RECIPES["speedrun"], epochs=1, batch_size=32, width=4)


def test_lines_change_one_setting_and_are_merged(tiny_data, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RECIPES, "speedrun", TINY)
    monkeypatch.setattr(ablation.common, "load_data", lambda args: tiny_data)
    out, runs = tmp_path / "ablation.json", tmp_path / "runs"
    argv = ["--out", str(out), "--runs", str(runs), "--only"]
    ablation.main([*argv, ablation.BASE])
    ablation.main([*argv, "no label smoothing", ablation.BASE])  # the base line is kept
    lines = json.loads(out.read_text())["lines"]
    assert set(lines) == {ablation.BASE, "no label smoothing"}
    base, changed = lines[ablation.BASE], lines["no label smoothing"]
    differ = {k for k in base["config"] if base["config"][k] != changed["config"][k]}
    assert differ == {"label_smoothing"} and changed["config"]["label_smoothing"] == 0.0
    for line in lines.values():
        assert 0 <= line["val_accuracy"] <= 1 and 0 <= line["val_accuracy_tta"] <= 1
        assert line["train_seconds"] > 0 and line["git_commit"]
    assert not list(runs.rglob("state.pt"))  # finished lines leave no resumable state
    monkeypatch.setattr(ablation, "train_line", lambda *a: pytest.fail("trained again"))
    ablation.main([*argv, ablation.BASE, "no label smoothing"])
    report = load_benchmark("report")
    text = report.render_speedrun_ablation("speedrun_ablation", json.loads(out.read_text()))
    assert text.count("\n| ") == 1 + len(lines)  # the separator row, then one row per line
    assert "(+" in text or "(-" in text  # the changed line against the recipe
