"""benchmarks/common.py: what the benchmarks share."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from conftest import load_benchmark
from fashion_cnn.files import file_sha256
from fashion_cnn.preprocess import PreprocessConfig
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


def test_a_fine_tune_of_a_default_shipped_since_is_trained_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--init best` names whatever is shipped: a run that started from an earlier default
    has the same config but another start, so it is not reused."""
    trained = []
    monkeypatch.setattr(common.subprocess, "run", lambda cmd, check: trained.append(cmd))
    expected = TrainConfig(model="best", init="seed", epochs=4)
    now = file_sha256(common.resolve_checkpoint("seed"))
    for start, reused in (({"sha256": now}, True), ({"sha256": "0" * 64}, False)):
        (tmp_path / "metrics.json").write_text(json.dumps(
            {"config": asdict(expected), "init": {"path": "seed", **start}}))
        trained.clear()
        if reused:
            common.train_or_reuse(tmp_path, expected, ["--epochs", "4"])
        else:  # the run is removed and trained again, which the stub does not
            with pytest.raises(FileNotFoundError):
                common.train_or_reuse(tmp_path, expected, ["--epochs", "4"])
        assert (trained == []) == reused


def test_a_preprocessing_setting_is_typed_or_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    """--set reads KEY=VALUE into the field's type; a key that is no setting, or a value of the
    wrong type, stops the benchmark with a usage message, not a traceback."""
    parser = argparse.ArgumentParser()
    common.preprocess_flag(parser)
    args = parser.parse_args(["--set", "fg_iterations=2", "--set", "foreground=cutout"])
    config = common.override(PreprocessConfig(), args.set)
    assert (config.fg_iterations, config.foreground) == (2, "cutout")
    assert config.size == PreprocessConfig().size  # the rest as it was
    for wrong in ("fg_iteration=2", "fg_iterations=two", "fg_iterations"):
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(["--set", wrong])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert "--set" in err and wrong in err and "Traceback" not in err


def test_the_sign_test_is_the_exact_binomial_tail() -> None:
    """Two-sided: twice the chance of a split at least this uneven with fair coins."""
    assert common.sign_test(9, 1) == pytest.approx(2 * (1 + 10) / 2 ** 10)  # k <= 1 of 10
    assert common.sign_test(1, 9) == common.sign_test(9, 1)
    assert common.sign_test(5, 5) == 1.0 and common.sign_test(0, 0) == 1.0
    assert common.sign_test(30, 13) < 0.05 < common.sign_test(32, 24)


def test_hard_photo_figures_pair_each_photo_with_the_base() -> None:
    """weight_interpolation.py: a photo with no garment found is wrong whatever the logits;
    won / lost count the photos where only one of the candidate and the base is right."""
    interpolation = load_benchmark("weight_interpolation")
    labels = torch.tensor([0, 1, 2, 3])
    hard = {"labels": labels, "images": torch.zeros(4, 28, 28, dtype=torch.uint8),
            "inputs": torch.arange(4, dtype=torch.uint8)[:, None, None].expand(4, 28, 28),
            "found": torch.tensor([True, True, True, False])}

    def net(x: torch.Tensor) -> torch.Tensor:  # answers the input's pixel value as the class
        return torch.nn.functional.one_hot(x[:, 0, 0].long() % 4, 10).float()

    base_right = torch.tensor([False, True, False, True])
    figures, right = interpolation.hard_figures(net, hard, base_right)
    assert right.tolist() == [True, True, True, False]  # the last: no garment found
    assert figures["photo_accuracy"] == 0.75 and figures["clean_accuracy"] == 0.25
    assert figures["gap_points"] == pytest.approx(-50)
    assert (figures["won"], figures["lost"]) == (2, 1)
    assert figures["sign_test_p"] == common.sign_test(2, 1)


def test_hard_photos_are_rendered_once_per_base(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """weight_interpolation.py: a second scoring against the same base reuses the rendered
    hard photos; another base, another n or other data renders them again."""
    interpolation = load_benchmark("weight_interpolation")
    rendered = []

    def render(base: Path, data: object, n: int) -> dict[str, torch.Tensor]:
        rendered.append((base.read_bytes(), n))
        return {"inputs": torch.full((n, 28, 28), len(rendered), dtype=torch.uint8)}

    monkeypatch.setattr(interpolation, "render_hard_inputs", render)
    base, other = tmp_path / "base.pt", tmp_path / "other.pt"
    base.write_bytes(b"base weights")
    other.write_bytes(b"other weights")
    data, other_data = argparse.Namespace(checksums={"a": "1"}), argparse.Namespace(
        checksums={"a": "2"})
    cache = tmp_path / "cache"

    def first_pixel(*args: object) -> int:
        return int(interpolation.hard_inputs(*args, cache_dir=cache)["inputs"][0, 0, 0])

    assert first_pixel(base, data, 3) == 1
    assert first_pixel(base, data, 3) == 1 and len(rendered) == 1  # from the cache
    assert first_pixel(other, data, 3) == 2
    assert first_pixel(base, data, 4) == 3
    assert first_pixel(base, other_data, 3) == 4
    assert len(interpolation.hard_inputs(base, data, 3, cache_dir=None)["inputs"]) == 3
    assert len(rendered) == 5  # no cache: rendered again


def test_an_ensemble_of_base_and_tune_answers_their_mean_and_keeps_its_mirror(
        tmp_path: Path) -> None:
    """weight_interpolation.py --ensemble: the two models' logits averaged, each with the
    mirror or not as asked, also once its checkpoint is loaded again (as the retaken photos
    are scored)."""
    from fashion_cnn.models import build_model, load_checkpoint, save_checkpoint

    interpolation = load_benchmark("weight_interpolation")
    torch.manual_seed(0)
    base, tuned = (build_model("best", width=4, tta=True).eval() for _ in range(2))
    path = tmp_path / "base.pt"
    save_checkpoint(path, base, config={}, metrics={}, data_checksums=None)
    x = torch.rand(3, 1, 28, 28) * 255
    for mirror in (False, True):
        net, _ = interpolation.ensembled(tuned.state_dict(), path, mirror)
        base.tta = tuned.tta = mirror
        with torch.no_grad():
            torch.testing.assert_close(net(x), (base(x.clone()) + tuned(x.clone())) / 2)
        save_checkpoint(tmp_path / "ensemble.pt", net, config={}, metrics={},
                        data_checksums=None)
        assert load_checkpoint(tmp_path / "ensemble.pt")[0].tta == mirror


def test_the_training_behind_a_candidate_follows_its_init_chain(tmp_path: Path) -> None:
    """weight_interpolation.py records the runs behind the tuned model, oldest first: its own
    run, the run its --init file came from, and a shipped model's lineage where one starts
    the chain."""
    interpolation = load_benchmark("weight_interpolation")

    def folder(name: str, **metrics: object) -> Path:
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
        return tmp_path / name

    def start(run: Path) -> dict[str, str]:
        (run / "model.pt").write_bytes(run.name.encode())
        return {"checkpoint": str(run / "model.pt"), "sha256": file_sha256(run / "model.pt")}

    shipped = folder("shipped", lineage=[{"command": "a", "train_seconds": 1.0, "date": "x"}])
    base = folder("base", command="b", train_seconds=2.0, init=start(shipped))
    tuned = folder("tuned", command="c", train_seconds=3.0, init=start(base))
    def behind(model: Path) -> list[tuple[object, object]]:
        return [(r["command"], r["train_seconds"]) for r in interpolation.training_behind(model)]

    assert behind(tuned / "model.pt") == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    (shipped / "model.pt").write_bytes(b"shipped since")  # a start replaced: its chain unknown
    assert behind(tuned)[0] == (None, None)
    scratch = folder("scratch", command="d", train_seconds=4.0)
    assert behind(scratch) == [("d", 4.0)]
    assert interpolation.training_behind(tmp_path / "nothing") == []


def test_the_84_px_arm_answers_as_the_28_px_one_before_training() -> None:
    """resolution.py: the first convolution enlarged 3x on an 84 px input computes what the
    network computes on the input area-averaged to 28 px, for any input (not only one made of
    3x3 blocks); a change to the enlarged weights shows."""
    from fashion_cnn.models import build_model

    resolution = load_benchmark("resolution")
    torch.manual_seed(0)
    base = build_model("best", width=4, tta=True)
    for module in base.modules():  # batch norms with statistics of their own
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    base.eval()
    coarse, fine = resolution.AreaAveraged(base, 3).eval(), resolution.fine_input(base, 3).eval()
    x = torch.randint(0, 256, (3, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(fine(x), coarse(x), rtol=1e-4, atol=1e-4)
        assert fine.features[0][0].weight.shape == (4, 1, 9, 9)
        fine.features[0][0].weight[0, 0, 0, 0] += 1.0
        assert not torch.allclose(fine(x), coarse(x), rtol=1e-4, atol=1e-4)


def test_the_fine_cut_out_keeps_detail_the_96_px_copy_loses() -> None:
    """resolution.py: the garment's grey levels come from the work image, so stripes 4 work
    pixels apart on a garment 200 px wide still modulate the 84 px cut-out, where the 96 px
    copy (1.5 px apart) has mostly averaged them away; at 28 px both find the same garment."""
    import numpy as np
    from PIL import Image

    from fashion_cnn.preprocess import PreprocessConfig, cut_out

    resolution = load_benchmark("resolution")
    rng = np.random.default_rng(0)
    photo = rng.normal(225, 6, (256, 256, 3))  # a textured light backdrop
    cloth = np.where(np.arange(200)[None, :, None] % 4 < 2, 40.0, 110.0)  # stripes 4 px apart
    photo[28:228, 28:228] = cloth
    img = Image.fromarray(photo.clip(0, 255).astype(np.uint8))
    fine = resolution.cut_out_fine(img, PreprocessConfig(size=84))[0].astype(float)
    coarse = cut_out(img, PreprocessConfig(size=84))[0].astype(float)
    middle = (slice(30, 54), slice(30, 54))
    assert fine[middle].std(1).mean() > 2 * coarse[middle].std(1).mean()
    fine28 = resolution.cut_out_fine(img, PreprocessConfig(size=28))[0]
    coarse28 = cut_out(img, PreprocessConfig(size=28))[0]
    assert ((fine28 > 0) == (coarse28 > 0)).mean() > 0.95


def test_a_result_names_the_weights_it_measured(tmp_path: Path) -> None:
    """`checkpoint` is a path a new model ships to; its SHA-256 says which weights it was."""
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights one")
    common.write_result(tmp_path / "r.json", {"checkpoint": str(weights), "x": 1}, seed=0,
                        checksums={})
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["checkpoint_sha256"] == file_sha256(weights) and saved["x"] == 1
    common.write_result(tmp_path / "s.json", {"x": 2}, seed=0, checksums={})
    assert "checkpoint_sha256" not in json.loads((tmp_path / "s.json").read_text())


def test_a_model_compared_on_validation_must_have_held_it_out() -> None:
    """weight_interpolation.py scores the tuned model on the base's validation split: a tuned
    model that trained on those images (another split, or one it does not record) is refused."""
    interpolation = load_benchmark("weight_interpolation")
    from fashion_cnn.training import run_split

    base = {"val_fraction": 0.1, "seed": 0}
    _, val = run_split(1000, base)
    assert interpolation.held_out({"config": base}, val, 1000)
    assert not interpolation.held_out({"config": {**base, "split_seed": 7}}, val, 1000)
    assert not interpolation.held_out({"config": {**base, "val_fraction": 0.2}}, val, 1000)
    assert not interpolation.held_out({}, val, 1000)
