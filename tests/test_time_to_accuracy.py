"""The time-to-accuracy benchmark (benchmarks/time_to_accuracy.py): the curve and its time to 95%
from a hand-made history, the test-set hook, and the whole script on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_benchmark
from fashion_cnn.errors import FashionCNNError
from fashion_cnn.models import build_model
from fashion_cnn.training import recipe_config

tta = load_benchmark("time_to_accuracy")


def _epoch(epoch: int, seconds: float, val: float | None, test: float, **extra) -> dict:
    return {"epoch": epoch, "epoch_seconds": seconds, "val_accuracy": val,
            "test_accuracy": test, **extra}


# Validation peaks at epoch 2, dips at 3 (where the test set is at its best: not selected,
# the test set selects nothing), and peaks again at 4.
HISTORY = [_epoch(1, 30, 0.90, 0.910), _epoch(2, 30, 0.93, 0.951),
           _epoch(3, 60, 0.92, 0.960), _epoch(4, 30, 0.94, 0.949)]


def test_curve_follows_the_best_validation_epoch_and_minutes_add_up() -> None:
    points = tta.curve(HISTORY)
    assert [p["minutes"] for p in points] == [0.5, 1.0, 2.0, 2.5]
    assert [p["selected_epoch"] for p in points] == [1, 2, 2, 4]
    assert [p["selected_test_accuracy"] for p in points] == [0.910, 0.951, 0.951, 0.949]
    assert [p["test_accuracy"] for p in points] == [0.910, 0.951, 0.960, 0.949]
    assert tta.minutes_to(points) == 1.0  # epoch 2's selected 95.1%, after 1 minute
    assert tta.minutes_to(points, 0.955) is None  # 96.0% at epoch 3 was never selected
    tie = tta.curve([_epoch(1, 6, 0.9, 0.8), _epoch(2, 6, 0.9, 0.95)])
    assert tie[-1]["selected_epoch"] == 1  # a tie keeps the earlier checkpoint
    assert tta.minutes_to(tie) is None
    no_val = tta.curve([_epoch(1, 6, None, 0.8), _epoch(2, 6, None, 0.95)])
    assert [p["selected_epoch"] for p in no_val] == [1, 2]


def test_flip_averaged_scores_follow_the_same_selection() -> None:
    history = [dict(h, test_accuracy_tta=h["test_accuracy"] + 0.005) for h in HISTORY]
    points = tta.curve(history)
    assert [p["selected_test_accuracy_tta"] for p in points] == pytest.approx(
        [0.915, 0.956, 0.956, 0.954])
    assert tta.minutes_to(points, key="selected_test_accuracy_tta") == 1.0


def test_over_seeds_needs_every_seed_and_takes_the_slowest() -> None:
    assert tta.over_seeds({"0": {"minutes_to_95": 1.5}, "1": {"minutes_to_95": 2.5}}) == {
        "all_seeds_reach_95": True, "worst_minutes_to_95": 2.5}
    assert tta.over_seeds({"0": {"minutes_to_95": 1.5}, "1": {"minutes_to_95": None}}) == {
        "all_seeds_reach_95": False, "worst_minutes_to_95": None}


def test_hook_scores_the_best_model_with_and_without_flips(tiny_data) -> None:
    net = build_model("best")
    net.tta = True  # as shipped: the hook must put it back
    record: dict = {}
    tta.score_test_set(tiny_data)(net, record)
    assert set(record) == {"test_accuracy", "test_accuracy_tta", "load_average"}
    assert net.tta is True
    seed_record: dict = {}
    tta.score_test_set(tiny_data)(build_model("seed"), seed_record)
    assert set(seed_record) == {"test_accuracy", "load_average"}


def test_references_are_read_from_the_recorded_results() -> None:
    points = tta.reference_points()
    assert [p["label"] for p in points] == [label for label, *_ in tta.REFERENCES]
    keras = json.loads((tta.ROOT / "benchmarks/results/train_seed.json").read_text())["keras"]
    assert points[0]["test_accuracy"] == keras["test_accuracy"]
    assert points[0]["train_minutes"] == keras["train_seconds"] / 60
    assert tta.reference_points(Path("/nonexistent")) == []


def test_the_script_on_tiny_data(tiny_data, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    results, runs = tmp_path / "results", tmp_path / "runs"
    monkeypatch.setattr(tta.common, "load_data", lambda args: tiny_data)
    monkeypatch.setattr(tta.common, "RESULTS", results)
    monkeypatch.setattr(tta, "PLOT", tmp_path / "curve.png")
    argv = ["--recipe", "fast", "--seeds", "0", "1", "--epochs", "3", "--runs", str(runs)]
    tta.main(argv)
    out = results / "time_to_accuracy_fast.json"
    d = json.loads(out.read_text())
    assert d["recipe"] == "fast" and d["config"]["epochs"] == 3 and "seed" not in d["config"]
    assert set(d["seeds"]) == {"0", "1"} and d["references"]
    low, high = d["load_average"]
    assert 0 <= low <= high
    for seed, s in d["seeds"].items():
        metrics = json.loads((runs / f"fast-seed{seed}" / "metrics.json").read_text())
        seconds = [e["epoch_seconds"] for e in metrics["epochs"]]
        assert [p["minutes"] for p in s["epochs"]] == pytest.approx(
            [sum(seconds[:k + 1]) / 60 for k in range(3)])
        best = max(metrics["epochs"], key=lambda e: e["val_accuracy"])  # first of a tie
        assert s["selected_epoch"] == best["epoch"]
        assert s["selected_test_accuracy"] == best["test_accuracy"]
        assert s["final_test_accuracy"] == metrics["epochs"][-1]["test_accuracy"]
        assert s["minutes_to_95"] == tta.minutes_to(s["epochs"])
    assert d["all_seeds_reach_95"] == all(s["minutes_to_95"] is not None
                                          for s in d["seeds"].values())
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    # finished runs are reused, not trained again; a run of another config is refused
    monkeypatch.setattr(tta, "run_training", lambda *a, **k: pytest.fail("trained again"))
    tta.main(argv)
    assert json.loads(out.read_text())["seeds"] == d["seeds"]
    with pytest.raises(FashionCNNError, match="another config"):
        tta.train_or_load(recipe_config("fast", seed=0, epochs=4), tiny_data,
                          runs / "fast-seed0")


def test_an_interrupted_run_is_resumed_with_its_scores(tiny_data, tmp_path: Path) -> None:
    config = recipe_config("fast", seed=0, epochs=3)

    def interrupt_after_epoch_2(message: str) -> None:
        if message.startswith("epoch 2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tta.run_training(config, tiny_data, tmp_path, progress=False,
                         log=interrupt_after_epoch_2,
                         after_epoch=tta.score_test_set(tiny_data))
    metrics = tta.train_or_load(config, tiny_data, tmp_path, progress=False)
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert all("test_accuracy" in e for e in metrics["epochs"])
