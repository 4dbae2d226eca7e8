"""scripts/ship_model.py end to end on tiny synthetic data, into a temporary folder: every file
a shipped model comes with is written, and the checkpoint loads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from conftest import ROOT, load_script, write_dataset
from fashion_cnn.files import file_sha256
from fashion_cnn.models import build_model, load_checkpoint, save_checkpoint
from fashion_cnn.training import TrainConfig, run_training

SCRIPT = ROOT / "scripts" / "ship_model.py"
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
    run = metrics["training_run"]  # a run from scratch is its own lineage
    assert [r["command"] for r in metrics["lineage"]] == [run["command"]]
    assert metrics["total_train_seconds"] == run["train_seconds"]
    card = (shipped / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# Model card: `{model}`")
    assert f"{100 * metrics['shipped_test_accuracy']:.2f}%" in card
    if model == "best":  # int8 for `auto` when its graph passes the check, else float32
        assert ("calibration" in meta) == ("error" not in metrics["int8"])
        assert "## Inference" in card


def _run(folder: Path, width: int, seed: int) -> Path:
    torch.manual_seed(seed)
    save_checkpoint(folder / "model.pt", build_model("best", width=width), config={},
                    metrics={}, data_checksums=None)
    (folder / "metrics.json").write_text(json.dumps({"command": f"train --seed {seed}",
                                                     "config": {"seed": seed}}))
    return folder


def test_a_shipped_model_can_be_its_run_averaged_with_another(tmp_path: Path) -> None:
    ship_model = load_script(SCRIPT)
    mine, other = _run(tmp_path / "mine", 2, 0), _run(tmp_path / "other", 2, 1)
    net, _ = load_checkpoint(mine / "model.pt")
    theirs = load_checkpoint(other / "model.pt")[0].state_dict()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    record = ship_model.averaged_with(net, other, 0.25)
    assert record == {"with": str(other), "alpha": 0.25, "with_command": "train --seed 1",
                      "with_config": {"seed": 1},
                      "with_sha256": file_sha256(other / "model.pt")}
    weight = "features.0.0.weight"
    assert torch.allclose(net.state_dict()[weight],
                          0.75 * before[weight] + 0.25 * theirs[weight], atol=1e-6)
    with pytest.raises(SystemExit, match="another shape"):
        ship_model.averaged_with(net, _run(tmp_path / "wide", 4, 2), 0.25)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model", "best", "--alpha", "0.25"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "go together" in proc.stderr


def test_a_run_folder_of_another_config_is_refused_not_shipped(tmp_path: Path) -> None:
    """A candidate shipped with the same --runs as an earlier one would otherwise take over
    (or reuse) that run's folder and ship the wrong weights."""
    ship_model = load_script(SCRIPT)
    asked = TrainConfig(model="best", epochs=4, init="best")
    assert ship_model.same_run(tmp_path, asked) is False
    (tmp_path / "config.json").write_text(json.dumps(asdict(asked)))
    assert ship_model.same_run(tmp_path, asked) is True
    (tmp_path / "config.json").unlink()  # a finished run without config.json: its metrics
    other = replace(asked, init="runs/best-seed0", photo_repeat=8, photo_views=7)
    (tmp_path / "metrics.json").write_text(json.dumps({"config": asdict(other)}))
    with pytest.raises(SystemExit, match=r"photo_repeat 8, not 4; photo_views 7, not 0; init "):
        ship_model.same_run(tmp_path, asked)


def test_a_run_chosen_on_validation_has_its_test_set_scored_when_it_ships(
        tmp_path: Path, tiny_data) -> None:
    """Candidates train with --no-test; the one that ships is scored on test then, once."""
    ship_model = load_script(SCRIPT)
    config = TrainConfig(model="best", width=4, epochs=1, batch_size=32, val_fraction=0.25)
    run_training(config, tiny_data, tmp_path, progress=False, log=lambda _: None,
                 score_test=False)
    metrics = ship_model.finished_run(tmp_path, tiny_data)
    net, _ = load_checkpoint(tmp_path / "model.pt")
    right = (net.eval()(tiny_data.test_images).argmax(1) == tiny_data.test_labels)
    assert metrics["test_accuracy"] == pytest.approx(right.float().mean().item())
    assert metrics["test_scored_by"] == "ship_model.py"
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics  # written, once


def test_fine_tuning_settings_are_typed_like_the_config(
        capsys: pytest.CaptureFixture[str]) -> None:
    parse_args = load_script(SCRIPT).parse_args

    def tune(*settings: str) -> list[tuple[str, object]]:
        return parse_args(["--model", "best", "--photos",
                           *(f"--tune={s}" for s in settings)]).tune

    assert tune("epochs=12", "lr=0.005", "photos=no", "photos=Yes") == [
        ("epochs", 12), ("lr", 0.005), ("photos", False), ("photos", True)]
    for wrong, message in [("epochs", "KEY=VALUE"), ("colour=red", "KEY=VALUE"),
                           ("augment=none", "KEY=VALUE"),
                           ("photos=banana", "photos takes a bool")]:  # not silently False
        with pytest.raises(SystemExit) as exit_:
            tune(wrong)
        assert exit_.value.code == 2 and message in capsys.readouterr().err, wrong


def test_a_photo_fine_tune_can_take_its_own_seed_on_its_base_split() -> None:
    """Each seed fine-tunes from its own base with PHOTO_TUNING and --tune on top; `--tune
    seed=1 --tune split_seed=0` gives seed 0's fine-tune fresh synthetic photos (seed 1) on
    the validation split its base held out."""
    ship_model = load_script(SCRIPT)
    plain = ship_model.photo_configs({0: "b0", 1: "b1"}, [("epochs", 2)])
    assert [(s, c.seed, c.validation_seed, c.init, c.epochs, c.photos)
            for s, c in plain.items()] == [(0, 0, 0, "b0", 2, True), (1, 1, 1, "b1", 2, True)]
    fresh = ship_model.photo_configs({0: "best"}, [("seed", 1), ("split_seed", 0)])[0]
    assert (fresh.seed, fresh.validation_seed, fresh.synthetic) == (
        1, 0, ship_model.PHOTO_TUNING["synthetic"])


def test_the_card_names_the_files_a_model_was_made_from() -> None:
    """`--init best` and `--average-with RUN` name files that change: the card gives their
    sha256 (recorded by training and by averaged_with) where the metrics hold it; and a
    resumed run's card names the command that started it and the one that resumed it."""
    load_script(SCRIPT)  # puts scripts/ on the path for model_card
    from model_card import best_card

    shipped = ROOT / "src" / "fashion_cnn" / "weights" / "best"
    summary = json.loads((shipped / "metrics.json").read_text())
    summary["training_run"]["init"] = {"checkpoint": "x/model.pt", "sha256": "1" * 64}
    summary["training_run"] |= {"command": "cli.py train --out r", "resumed_with": "cli.py x"}
    summary["weight_average"] = {**summary.get("weight_average", {"alpha": 0.5, "with": "r",
                                                                    "with_command": "c"}),
                                 "with_sha256": "2" * 64}
    card = best_card(summary, shipped / "model.pt", "float16")
    assert f"as it was then, sha256 `{'1' * 64}`" in card
    assert f"sha256 `{'2' * 64}`" in card
    assert "`cli.py train --out r`, resumed as `cli.py x`" in card
    del summary["training_run"]["init"], summary["weight_average"]["with_sha256"]
    assert "sha256 `" not in best_card(summary, shipped / "model.pt", "float16")


def _trained(folder: Path, seconds: float, date: str, init: Path | None = None) -> dict:
    """A run folder with a model and the metrics training writes (`init`: the file it began
    from)."""
    _run(folder, 2, 0)
    metrics = {"command": f"train {folder.name}", "date": date, "git_commit": "abc",
               "train_seconds": seconds,
               **({"init": {"checkpoint": str(init), "sha256": file_sha256(init)}} if init
                  else {})}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def test_a_chain_of_runs_counts_each_run_once(tmp_path: Path) -> None:
    """A fine-tune of a fine-tune, averaged with its own start: three runs behind the weights,
    the shared base counted once; a start whose file has changed since is unknown, not 0."""
    ship_model = load_script(SCRIPT)
    _trained(tmp_path / "base", 100.0, "2026-01-01")
    middle = _trained(tmp_path / "middle", 20.0, "2026-01-02", tmp_path / "base" / "model.pt")
    last = _trained(tmp_path / "last", 3.0, "2026-01-03", tmp_path / "middle" / "model.pt")
    averaging = {"with": str(tmp_path / "middle"),
                 "with_sha256": file_sha256(tmp_path / "middle" / "model.pt")}
    chain = ship_model.lineage(last, averaging)
    assert [r["command"] for r in chain["lineage"]] == ["train base", "train middle",
                                                        "train last"]
    assert chain["total_train_seconds"] == 123.0
    # a shipped model's metrics.json carries its chain: a fine-tune of it continues it
    shipped = tmp_path / "shipped"
    _run(shipped, 2, 3)
    (shipped / "metrics.json").write_text(json.dumps(ship_model.lineage(middle, None)))
    again = _trained(tmp_path / "again", 5.0, "2026-01-04", shipped / "model.pt")
    assert ship_model.lineage(again, None)["total_train_seconds"] == 125.0
    _run(shipped, 2, 4)  # a new model shipped since the run began: its chain is not this one's
    changed = ship_model.lineage(again, None)
    assert changed["total_train_seconds"] is None
    assert changed["lineage"][0]["source"] == str(shipped)


def test_the_shipped_card_is_what_its_metrics_say() -> None:
    """The default's MODEL_CARD.md is best_card of its metrics.json: an edit to one (say a
    back-filled `lineage`) shows in the other. The seed model's card predates ship_model.py
    and names the script that made it."""
    load_script(SCRIPT)
    from model_card import best_card

    shipped = ROOT / "src" / "fashion_cnn" / "weights" / "best"
    summary = json.loads((shipped / "metrics.json").read_text())
    assert (shipped / "MODEL_CARD.md").read_text() == best_card(summary, shipped / "model.pt",
                                                                 summary["weights"])


def test_preprocess_goes_with_rechoose_unsure_and_is_typed() -> None:
    parse_args = load_script(SCRIPT).parse_args
    args = parse_args(["--model", "best", "--rechoose-unsure", "--preprocess", "fg_iterations=2"])
    assert args.preprocess == [("fg_iterations", 2)]
    for wrong in (["--preprocess", "fg_iterations=2"],  # nothing to re-save
                  ["--rechoose-unsure", "--preprocess", "fg_iterations=two"]):
        with pytest.raises(SystemExit):
            parse_args(["--model", "best", *wrong])


@pytest.mark.slow
def test_the_default_can_be_saved_again_with_other_preprocessing(
        tmp_path: Path, real_data_dir: Path, photos_root: Path) -> None:
    """`--rechoose-unsure --preprocess fg_iterations=3` re-saves the default with 3 GrabCut
    rounds: the same weights, the unsure rule chosen on photos converted so, the former SHA-256
    recorded as the same weights with other preprocessing, and the card saying so."""
    shipped = ROOT / "src" / "fashion_cnn" / "weights" / "best"
    dest = tmp_path / "weights"
    shutil.copytree(shipped, dest / "best")
    former = file_sha256(dest / "best" / "model.pt")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", "best", "--rechoose-unsure", "--preprocess",
         "fg_iterations=3", "--dest", str(dest), "--data-dir", str(real_data_dir)],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]

    net, meta = load_checkpoint(dest / "best" / "model.pt")
    before, _ = load_checkpoint(shipped / "model.pt")
    assert meta["image_preprocessing"]["fg_iterations"] == 3
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  before.state_dict().values(), strict=True))
    metrics = json.loads((dest / "best" / "metrics.json").read_text())
    assert former in metrics["same_weights"] and former in metrics["other_preprocessing"]
    assert metrics["photos"]["energy_offset"] == meta["unsure"]["offset"]
    card = (dest / "best" / "MODEL_CARD.md").read_text()
    assert "fg_iterations 3 (the training's photos: 4)" in card
