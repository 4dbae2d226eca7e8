"""Ensembles: members trained in sub-folders on one split, averaged, resumed, fine-tuned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fashion_cnn.errors import FashionCNNError
from fashion_cnn.models import load_checkpoint
from fashion_cnn.training import TrainConfig, run_training, split_indices
from fashion_cnn.training.ensemble import member_config

PAIR = dict(epochs=1, batch_size=16, lr=0.05, val_fraction=0.25, model="best", width=4,
            members=2, seed=3)


def _quiet(_: str) -> None:
    pass


def _members(out: Path) -> list[dict]:
    return [json.loads((out / f"member{k}" / "config.json").read_text()) for k in range(2)]


def test_members_share_the_split_and_the_ensemble_averages_them(tiny_data, tmp_path) -> None:
    metrics = run_training(TrainConfig(**PAIR), tiny_data, tmp_path, progress=False,
                           log=_quiet)
    configs = _members(tmp_path)
    assert [c["seed"] for c in configs] == [6, 7]  # seed * members + k
    assert [c["split_seed"] for c in configs] == [3, 3]  # the ensemble's validation split
    ensemble, meta = load_checkpoint(tmp_path)
    assert meta["arch"] == "ensemble" and len(ensemble.members) == 2
    singles = [load_checkpoint(tmp_path / f"member{k}")[0] for k in range(2)]
    x = tiny_data.test_images[:32]
    with torch.no_grad():
        mean = (singles[0](x) + singles[1](x)) / 2
        assert torch.allclose(ensemble(x), mean, atol=1e-5)
        assert not torch.allclose(singles[0](x), singles[1](x))  # two different models
    members = [json.loads((tmp_path / f"member{k}" / "metrics.json").read_text())
               for k in range(2)]
    assert metrics["train_seconds"] == pytest.approx(sum(m["train_seconds"] for m in members))
    # the ensemble answers the test set once; its members never look at it
    assert "test_accuracy" in metrics and not any("test_accuracy" in m for m in members)
    assert len(metrics["epochs"]) == 2  # one history per member
    _, val = split_indices(len(tiny_data.train_labels), 0.25, 3)
    with torch.no_grad():
        right = (ensemble(tiny_data.train_images[val]).argmax(1) == tiny_data.train_labels[val])
    assert metrics["val_accuracy"] == pytest.approx(right.float().mean().item(), abs=1e-6)


def test_a_finished_member_is_reused(tiny_data, tmp_path: Path) -> None:
    first = member_config(TrainConfig(**PAIR), 0)
    run_training(first, tiny_data, tmp_path / "member0", progress=False, log=_quiet)
    before = (tmp_path / "member0" / "model.pt").stat().st_mtime_ns
    (tmp_path / "config.json").write_text(json.dumps({**PAIR, "augment": {}}))
    run_training(None, tiny_data, tmp_path, resume=True, progress=False, log=_quiet)
    assert (tmp_path / "member0" / "model.pt").stat().st_mtime_ns == before
    assert (tmp_path / "member1" / "model.pt").is_file() and (tmp_path / "model.pt").is_file()


def test_fine_tuning_an_ensemble_starts_each_member_from_its_own(tiny_data, tmp_path) -> None:
    run_training(TrainConfig(**PAIR), tiny_data, tmp_path / "a", progress=False, log=_quiet)
    source, _ = load_checkpoint(tmp_path / "a")
    tuned = TrainConfig(**PAIR, init=str(tmp_path / "a" / "model.pt"))
    run_training(tuned, tiny_data, tmp_path / "b", progress=False, log=_quiet)
    for k in range(2):
        start, _ = load_checkpoint(tmp_path / "b" / f"member{k}" / "init.pt")
        for name, value in source.members[k].state_dict().items():
            assert torch.equal(start.state_dict()[name], value), name
    with pytest.raises(FashionCNNError, match="--members 2"):
        run_training(TrainConfig(**{**PAIR, "members": 3}, init=str(tmp_path / "a")),
                     tiny_data, tmp_path / "c", progress=False, log=_quiet)
    with pytest.raises(FashionCNNError, match="--members"):
        TrainConfig(members=2)  # the seed CNN has no ensemble recipe


def test_ensemble_test_time_views_reach_every_member() -> None:
    from fashion_cnn.models import build_model

    net = build_model("ensemble", members=3, arch="best", width=4, tta_shift=1)
    net.tta = True
    assert all(m.tta and m.tta_shift == 1 for m in net.members) and net.tta_shift == 1
    assert net.normalize is net.members[0].normalize


def test_the_ensemble_size_benchmark_scores_first_k_members(tiny_data, tmp_path) -> None:
    from conftest import load_benchmark

    bench, report = load_benchmark("ensemble_size"), load_benchmark("report")
    config = TrainConfig(**{**PAIR, "tta_shift": 1})
    run_training(config, tiny_data, tmp_path, progress=False, log=_quiet)
    result = bench.score(tmp_path, tiny_data)
    _, val = split_indices(len(tiny_data.train_labels), 0.25, 3)
    ensemble, _ = load_checkpoint(tmp_path)
    first = load_checkpoint(tmp_path / "member0")[0]
    for net, row in ((first, result["ensembles"][0]), (ensemble, result["ensembles"][1])):
        for name, (net.tta, net.tta_shift) in bench.view_settings([1]).items():
            with torch.no_grad():
                right = net(tiny_data.train_images[val]).argmax(1) == tiny_data.train_labels[val]
            assert row["val_accuracy"][name] == pytest.approx(right.float().mean().item())
    assert [m["seed"] for m in result["members"]] == [6, 7]
    assert result["ensembles"][1]["train_minutes"] == pytest.approx(
        sum(m["train_minutes"] for m in result["members"]))
    text = report.render_ensemble_size("ensemble_size", {"recipe": "speedrun", **result})
    assert text.count("\n| ") == 1 + 2  # the separator row, then one row per ensemble size
