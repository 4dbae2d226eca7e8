"""benchmarks/common.py: what the benchmarks share."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from conftest import load_benchmark
from fashion_cnn.training import TrainConfig

common = load_benchmark("common")


def test_a_finished_run_is_reused_even_if_saved_before_a_new_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose saved config lacks a setting added since (so it ran at its default) is the
    same run; one of another config is trained again."""
    trained = []
    monkeypatch.setattr(common.subprocess, "run", lambda cmd, check: trained.append(cmd))
    expected = TrainConfig(model="best", epochs=4, lr=0.01)
    saved = asdict(expected)
    del saved["augment"]["alternate_flip"], saved["lookahead"]  # older than these settings
    (tmp_path / "metrics.json").write_text(json.dumps({"config": saved}))
    assert common.train_or_reuse(tmp_path, expected, ["--epochs", "4"]) == {"config": saved}
    assert trained == []
    with pytest.raises(FileNotFoundError):  # the stub trains nothing, so nothing is read
        common.train_or_reuse(tmp_path, TrainConfig(model="best", epochs=5), ["--epochs", "5"])
    assert trained == [[common.FASHION_CNN, "train", "--epochs", "5", "--out", str(tmp_path),
                        "--quiet"]]
