"""Models: the seed architecture as specified, and self-describing checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from fashion_cnn.data import CLASS_NAMES
from fashion_cnn.errors import FashionCNNError
from fashion_cnn.models import (
    DEFAULT_MODEL,
    SHIPPED_MODELS,
    build_model,
    count_parameters,
    interpolate_weights,
    layer_names,
    load_checkpoint,
    save_checkpoint,
    set_tta,
    shipped_model_dir,
)


def _saved(tmp_path: Path, weights: str = "float32") -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model("seed")
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, config={"seed": 0}, metrics={"test_accuracy": 0.5},
                    data_checksums={"x": "y"}, weights=weights)
    return model, path


def test_seed_architecture_matches_keras_summary() -> None:
    model = build_model("seed")
    # Keras: conv 320, dense 540,900, dense_1 1,010 -> 542,230 trainable parameters.
    assert count_parameters(model) == 542_230
    x = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    assert model(x).shape == (4, len(CLASS_NAMES))


def test_keras_initialisation() -> None:
    torch.manual_seed(0)
    model = build_model("seed")
    for layer, fan_in in ((model.conv, 9), (model.fc1, 32 * 13 * 13)):
        bound = math.sqrt(6 / fan_in)  # he_uniform
        w = layer.weight
        assert w.abs().max() <= bound
        assert w.abs().max() > 0.95 * bound  # uses the whole range, i.e. really uniform
        assert torch.all(layer.bias == 0)
    glorot = math.sqrt(6 / (100 + 10))
    assert model.fc2.weight.abs().max() <= glorot and torch.all(model.fc2.bias == 0)


def test_input_scaled_to_unit_interval() -> None:
    model = build_model("seed")
    x = torch.tensor([[[0, 255] * 14] * 28], dtype=torch.uint8)
    scaled = model.normalize(x)
    assert scaled.shape == (1, 1, 28, 28)
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    torch.testing.assert_close(model(x), model(x.float()))  # uint8 and float inputs agree


@pytest.mark.parametrize("weights,tol,max_bytes", [("float32", 0.0, 2_300_000),
                                                  ("float16", 2e-2, 1_150_000),
                                                  ("int8", 5e-2, 600_000)])
def test_checkpoint_round_trip(tmp_path: Path, weights: str, tol: float,
                               max_bytes: int) -> None:
    model, path = _saved(tmp_path, weights)
    assert path.stat().st_size < max_bytes
    loaded, meta = load_checkpoint(path)
    assert meta["arch"] == "seed" and meta["class_names"] == list(CLASS_NAMES)
    assert meta["preprocessing"]["scale"] == 1 / 255
    assert meta["metrics"]["test_accuracy"] == 0.5 and meta["data_checksums"] == {"x": "y"}
    assert not loaded.training
    x = torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8)
    model.eval()
    torch.testing.assert_close(loaded(x), model(x), atol=tol, rtol=tol)
    assert next(loaded.parameters()).dtype == torch.float32


@pytest.mark.parametrize("arch,kwargs", [("best", {"width": 8}),
                                         ("ensemble", {"members": 2, "width": 8})])
def test_a_checkpoint_keeps_the_input_scaling_it_was_trained_with(
        tmp_path: Path, arch: str, kwargs: dict) -> None:
    """The mean/std saved with the weights are the ones loaded, even where the defaults in
    the code (data.PIXEL_MEAN, PIXEL_STD) have since changed."""
    model = build_model(arch, **kwargs).eval()
    for module in model.modules():
        if type(module).__name__ == "Normalize":
            module.mean, module.std = 0.5, 0.25  # what another version's defaults were
    save_checkpoint(tmp_path / "model.pt", model, config={}, metrics={}, data_checksums=None)
    loaded, meta = load_checkpoint(tmp_path / "model.pt")
    assert (meta["preprocessing"]["mean"], meta["preprocessing"]["std"]) == (0.5, 0.25)
    x = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    torch.testing.assert_close(loaded(x), model(x))



@pytest.mark.parametrize("arch,kwargs", [("best", {"width": 8}),
                                         ("ensemble", {"members": 2, "width": 8})])
def test_test_time_mirror_turned_on_travels_in_the_checkpoint(
        tmp_path: Path, arch: str, kwargs: dict) -> None:
    """A model saved without the mirror and turned on later (a run's model.pt, shipped with
    it) loads with the mirror and answers as the mirrored model does."""
    model = build_model(arch, **kwargs).eval()
    x = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    plain = model(x)
    set_tta(model, True)
    mirrored = model(x)
    assert not torch.allclose(plain, mirrored)
    save_checkpoint(tmp_path / "model.pt", model, config={}, metrics={}, data_checksums=None)
    loaded, meta = load_checkpoint(tmp_path / "model.pt")
    assert loaded.tta and meta["arch_kwargs"]["tta"]
    torch.testing.assert_close(loaded(x), mirrored)

def test_loading_a_run_folder(tmp_path: Path) -> None:
    _saved(tmp_path)
    _, meta = load_checkpoint(tmp_path)
    assert meta["path"] == str(tmp_path / "model.pt")


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FashionCNNError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    # folders that exist say what they are instead
    with pytest.raises(FashionCNNError, match="is a folder without a model.pt"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FashionCNNError, match=f"not finished .* --resume {tmp_path}"):
        load_checkpoint(tmp_path)
    (tmp_path / "folds.json").write_text('{"folds": 5}')
    with pytest.raises(FashionCNNError, match="a cross-validation, which keeps no model"):
        load_checkpoint(tmp_path)


def test_a_checkpoint_that_names_other_classes_is_damaged(tmp_path: Path) -> None:
    _, path = _saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["class_names"] = payload["class_names"][:5]
    torch.save(payload, path)
    with pytest.raises(FashionCNNError, match="names 5 classes where its model answers 10"):
        load_checkpoint(path)


def test_a_pickle_of_other_objects_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"optimizer": torch.optim.SGD}, path)  # a class: weights_only refuses it
    with pytest.raises(FashionCNNError, match=r"Python objects no checkpoint holds\); retrain"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path: Path) -> None:
    _, path = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(FashionCNNError, match=r"not a readable checkpoint \(truncated or "
                       r"damaged\); retrain or re-copy it\.$"):  # not torch's own words
        load_checkpoint(path)


@pytest.mark.parametrize("name,data,kind", [
    ("photo.pt", b"\xff\xd8\xff\xe0 not a checkpoint at all" * 10, "a picture"),
    ("notes.pt", b"hello", "a text file"),  # torch.load: a bare KeyError ('101')
    ("empty.pt", b"", "an empty file"),  # it used to be called a text file
    ("model.onnx", b"\x08\x07\x12\x07pytorch\x1a\x032.1\xff\xfe", "an ONNX model"),
    ("blob.pt", bytes(range(256)) * 4, "another kind of file")])
def test_a_file_that_is_no_checkpoint_says_what_it_is(tmp_path: Path, name: str, data: bytes,
                                                       kind: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(FashionCNNError, match=f"is not a checkpoint but {kind}") as err:
        load_checkpoint(path)
    assert "fashion-cnn train" in str(err.value)


@pytest.mark.parametrize("change,says", [
    ({"arch": "transformer"}, "a model kind this version does not know"),
    ({"arch": ["best"]}, "a model kind this version does not know"),
    ({"arch_kwargs": {"width": 16}}, "cannot build"),  # the seed CNN takes no width
    ({"arch_kwargs": [1]}, "architecture settings are not a mapping"),
    ({"class_names": 10}, "class names are not a list"),
    ({"image_preprocessing": "area"}, "preprocessing is not a mapping"),
    ({"unsure": {"score": "max_softmax"}}, "unsure.threshold is missing"),
    ({"unsure": [0.5]}, "unsure rule is not a mapping"),
    ({"preprocessing": "0..1"}, r"input scaling \(preprocessing\) is not a mapping")])
def test_metadata_this_version_cannot_use_is_refused(tmp_path: Path, change: dict,
                                                     says: str) -> None:
    """A checkpoint from a newer version, or damaged, is refused with what is wrong, not a
    TypeError or KeyError from deep inside."""
    _, path = _saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    torch.save(payload | change, path)
    with pytest.raises(FashionCNNError, match=says):
        load_checkpoint(path)


@pytest.mark.parametrize("key,settings,says", [
    ("image_preprocessing", {"size": "abc"}, "image_preprocessing.size holds 'abc' where it "
     "should be 28"),
    ("image_preprocessing", {"size": 0}, "image_preprocessing.size holds 0 where it should be "
     "28"),
    ("image_preprocessing", {"fg_border": "x"}, "fg_border holds 'x' where it should be a "
     "number from 0 to 0.5"),
    ("image_preprocessing", {"sharpen": 1}, "sharpen holds 1 where it should be true or false"),
    ("image_preprocessing", {"trim_fuzz": float("nan")}, "trim_fuzz holds nan"),
    ("image_preprocessing", {"resample": "cubic"}, "resample holds 'cubic' where it should be "
     "one of 'subsample', 'area'"),
    ("preprocessing", {"mean": "x", "std": 1.0}, "preprocessing.mean holds 'x' where it should "
     "be a number from 0 to 1"),
    ("preprocessing", {"mean": 0.2}, "preprocessing.std is missing"),
    ("preprocessing", {"mean": 0.2, "std": 0}, "preprocessing.std holds 0 "),
    ("unsure", {"threshold": "high"}, "unsure.threshold holds 'high' where it should be a "
     "number from 0 to 1"),
    ("unsure", {"threshold": True}, "unsure.threshold holds True"),
    ("unsure", {"threshold": 0.4, "score": 5}, "unsure.score holds 5 where it should be text"),
    ("unsure", {"threshold": 0.5, "score": "energy"}, "unsure.offset is missing"),
    ("unsure", {"threshold": 0.5, "score": "energy", "offset": "x"}, "unsure.offset holds 'x' "
     "where it should be a number")])
def test_settings_of_the_wrong_kind_are_refused_when_loaded(tmp_path: Path, key: str,
                                                            settings: dict, says: str) -> None:
    """A damaged setting is one message naming the file and the setting, when the checkpoint
    loads, instead of a TypeError or KeyError (or a silent fallback: resample 'cubic' ran as
    'area') at the first picture."""
    path = tmp_path / "damaged.pt"
    payload = torch.load(shipped_model_dir("seed") / "model.pt", weights_only=True)
    torch.save(payload | {key: settings}, path)
    with pytest.raises(FashionCNNError, match=f"^{path} cannot be used: its setting "
                       f".*{says}") as err:
        load_checkpoint(path)
    assert str(err.value).count("its setting") == 1
    fine = payload.get(key) or {"threshold": 0.4}  # (the seed model has no unsure rule)
    torch.save(payload | {key: fine | {"newer_setting": "x"}}, path)
    load_checkpoint(path)  # a name this version does not know is a newer one's: ignored


@pytest.mark.parametrize("settings,says", [
    ({"tta": "no"}, "arch_kwargs.tta holds 'no' where it should be true or false"),
    ({"tta": True, "tta_shift": "x"}, "arch_kwargs.tta_shift holds 'x' where it should be a "
     "whole number, 0 or more")])
def test_architecture_settings_of_the_wrong_kind_are_refused(tmp_path: Path, settings: dict,
                                                             says: str) -> None:
    """tta "no" turned test-time augmentation on, tta_shift "x" failed inside torch's pad."""
    path = tmp_path / "damaged.pt"
    payload = torch.load(shipped_model_dir("best") / "model.pt", weights_only=True)
    torch.save(payload | {"arch_kwargs": settings}, path)
    with pytest.raises(FashionCNNError, match=f"^{path} cannot be used: its setting {says}"):
        load_checkpoint(path)


def test_foreign_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, path)
    with pytest.raises(FashionCNNError, match="not a fashion-cnn checkpoint"):
        load_checkpoint(path)


def test_weights_that_do_not_fit(tmp_path: Path) -> None:
    _, path = _saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["fc1.weight"] = torch.zeros(5, 5)
    torch.save(payload, path)
    with pytest.raises(FashionCNNError, match="do not fit"):
        load_checkpoint(path)


def test_shipped_seed_model_is_self_describing() -> None:
    net, meta = load_checkpoint("seed")
    assert meta["arch"] == "seed" and meta["weights_dtype"] == "int8"
    assert set(meta["data_checksums"]) == {
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
    assert meta["config"]["lr"] == 0.01 and meta["config"]["batch_size"] == 32
    folder = shipped_model_dir("seed")
    assert (folder / "model.pt").stat().st_size < 600_000  # "a few hundred KB"
    for name in ("MODEL_CARD.md", "metrics.json", "learning_curves.png",
                 "confusion_matrix.png"):
        assert (folder / name).is_file(), name


def test_shipped_best_model_is_the_default_and_self_describing() -> None:
    assert DEFAULT_MODEL == "best" and set(SHIPPED_MODELS) == {"best", "seed"}
    net, meta = load_checkpoint(None)
    assert meta["arch"] == "best" and meta["weights_dtype"] == "float16"
    assert net.tta == meta["arch_kwargs"]["tta"] == meta["metrics"]["tta"]
    assert meta["config"]["augment"]["erase"] > 0 and meta["config"]["bf16"]
    assert meta["metrics"]["test_accuracy"] >= 0.95
    # int8 by default: the calibration images travel with it (a sample of its training part)
    assert meta["calibration"].shape == (1000, 28, 28)
    assert meta["calibration"].dtype == torch.uint8
    folder = shipped_model_dir("best")
    assert (folder / "model.pt").stat().st_size < 10_000_000  # the limit
    for name in ("MODEL_CARD.md", "metrics.json", "learning_curves.png",
                 "confusion_matrix.png"):
        assert (folder / name).is_file(), name
    x = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    with torch.no_grad():  # TTA: each image averaged with its mirror
        net.tta = False
        plain, mirrored = net(x), net(x.flip(-1))
        net.tta = True
        torch.testing.assert_close(net(x), (plain + mirrored) / 2, rtol=1e-4, atol=1e-4)


def test_evaluate_rejects_bad_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("hello")
    result = run_cli("evaluate", str(bad), "--offline")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "bad.pt" in result.stderr


def test_pool_before_relu_is_the_keras_order() -> None:
    """The model pools before its ReLU (faster); outputs and gradients match ReLU-then-pool."""
    torch.manual_seed(0)
    model = build_model("seed")
    x = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8)

    def keras_order(m: torch.nn.Module) -> torch.Tensor:
        h = m.pool(torch.relu(m.conv(m.normalize(x))))
        return m.fc2(torch.relu(m.fc1(h.flatten(1))))

    ours, reference = model(x), keras_order(model)
    assert torch.equal(ours, reference)
    g1 = torch.autograd.grad(ours.square().sum(), list(model.parameters()))
    g2 = torch.autograd.grad(keras_order(model).square().sum(), list(model.parameters()))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


def test_best_architecture_shapes_and_size() -> None:
    model = build_model("best").eval()
    x = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    assert model(x).shape == (3, 10)
    assert model(x.unsqueeze(1)).shape == (3, 10)
    assert 1_000_000 < count_parameters(model) < 2_500_000  # int8: under 10 MB shipped
    small = build_model("best", width=8)
    assert count_parameters(small) < count_parameters(model) / 10
    assert small.arch_kwargs == {"width": 8}


def test_ceil_pool_keeps_the_last_row_and_column_and_travels_in_the_checkpoint(
        tmp_path: Path) -> None:
    from fashion_cnn.models import save_checkpoint

    net = build_model("best", width=4, ceil_pool=True).eval()
    x = torch.rand(2, 1, 7, 7)  # the last pooling alone: its map's row 6 / column 6 count
    pool = net.features[7]
    assert pool(x).shape[-2:] == (4, 4) and torch.equal(pool(x)[..., 3, 3], x[..., 6, 6])
    assert build_model("best", width=4).features[7](x).shape[-2:] == (3, 3)
    save_checkpoint(tmp_path / "m.pt", net, config={}, metrics={}, data_checksums=None)
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta["arch_kwargs"] == {"width": 4, "ceil_pool": True}
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    torch.testing.assert_close(loaded(images), net(images))


def moved(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """uint8 pictures [N, 28, 28] moved dx pixels right and dy down, black filling in."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_shift_views_average_the_moved_pictures_and_their_mirrors() -> None:
    """tta_shift=2: the logits are the mean over the picture, it moved 2 px left, right, up and
    down with black filling in, and the mirrors of all five (computed here in pixel space)."""
    torch.manual_seed(0)
    net = build_model("best", width=4, tta=True, tta_shift=2).eval()
    assert net.arch_kwargs == {"width": 4, "tta": True, "tta_shift": 2}
    x = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    views = [x, *(moved(x, dx, dy) for dx, dy in ((2, 0), (-2, 0), (0, 2), (0, -2)))]
    views += [v.flip(-1) for v in views]
    with torch.no_grad():
        net.tta = False
        expected = torch.stack([net(v) for v in views]).mean(0)
        assert not torch.allclose(net(x), expected, atol=1e-3)  # the views do change it
        net.tta = True
        torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-4)
    net.train()  # training sees one view
    assert net(x).shape == (3, 10)


def test_weight_averaging_lerps_floating_state_only() -> None:
    torch.manual_seed(0)
    base, tuned = build_model("best", width=2), build_model("best", width=2)
    for module in tuned.modules():  # give the tuned model other batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.add_(1.0)
            module.num_batches_tracked.add_(7)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    interpolate_weights(base, tuned.state_dict(), 0.25)
    after, other = base.state_dict(), tuned.state_dict()
    for name, value in after.items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.75 * before[name] + 0.25 * other[name], atol=1e-6)
        else:  # counters stay the base's
            assert torch.equal(value, before[name])
    assert not torch.equal(after["features.0.1.running_mean"], before["features.0.1.running_mean"])
    wider = build_model("best", width=4).state_dict()  # same names, other sizes: refused whole
    kept = {k: v.clone() for k, v in after.items()}
    with pytest.raises(FashionCNNError, match="another shape"):
        interpolate_weights(base, wider, 0.25)
    assert all(torch.equal(v, kept[k]) for k, v in base.state_dict().items())


def test_weight_averaging_up_to_a_layer_leaves_the_later_ones() -> None:
    torch.manual_seed(0)
    base, tuned = build_model("best", width=2), build_model("best", width=2)
    assert layer_names(base) == ["features.0", "features.1", "features.3", "features.4",
                                 "features.6", "features.8", "head"]
    before = {k: v.clone() for k, v in base.state_dict().items()}
    interpolate_weights(base, tuned.state_dict(), 1.0, until="features.3")
    after, other = base.state_dict(), tuned.state_dict()
    for name, value in after.items():
        early = name.startswith(("features.0.", "features.1.", "features.3."))
        assert torch.equal(value, other[name] if early and value.is_floating_point()
                           else before[name]), name
    residual = "features.3.body.0.0.weight"  # nested deeper than its layer's name
    assert not torch.equal(after[residual], before[residual])
    with pytest.raises(FashionCNNError, match="no layer 'features.2'.*features.0, features.1"):
        interpolate_weights(base, other, 1.0, until="features.2")


def test_the_torch_free_list_of_architectures_is_the_models_list() -> None:
    """config.py names the architectures without importing torch (the CLI's options); it must
    name every one models.py builds for `--model` (an ensemble is `--members`, not a model)."""
    from fashion_cnn.models import ARCHITECTURES
    from fashion_cnn.training import config

    assert set(config.ARCHITECTURES) == set(ARCHITECTURES) - {"ensemble"}
