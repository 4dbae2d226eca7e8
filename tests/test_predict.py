"""Classifier: batches keep their order, bad pictures get an error record, checkpoints carry
their preprocessing, dataset images score as the evaluation does, unsure answers say why, and
phone formats (HEIC, AVIF) decode."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, SAMPLES
from fashion_cnn import formats, predict
from fashion_cnn.api import model_info
from fashion_cnn.batching import padded
from fashion_cnn.errors import FashionCNNError
from fashion_cnn.evaluate import predict_logits
from fashion_cnn.explain import overlay, saliency
from fashion_cnn.models import load_checkpoint, resolve_checkpoint
from fashion_cnn.predict import (
    BARE_SURFACE_SENTENCE,
    LOW,
    NO_GARMENT,
    NOT_A_CLASS,
    Classifier,
    UnsurePolicy,
    in_class_scores,
)
from fashion_cnn.preprocess import (
    WHOLE_FRAME,
    ImageError,
    PreprocessConfig,
    Preprocessed,
    decode_image,
    preprocess,
)
from fashion_cnn.records import RECORD_KEYS, collect_pictures


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


def _png(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "PNG")
    return buf.getvalue()


def test_dataset_images_predict_as_in_evaluation(classifier: Classifier) -> None:
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(6, 28, 28, generator=g) * 255).to(torch.uint8)
    images[:, :2], images[:, -2:], images[:, :, :2], images[:, :, -2:] = 0, 0, 0, 0
    # the model on the images themselves, on the classifier's backend (int8 for the default;
    # its agreement with torch is tests/test_export.py's), batched differently
    expected = predict_logits(classifier.logits, images).softmax(1)
    results = classifier.classify([_png(x.numpy()) for x in images], top_k=3)
    for r, p in zip(results, expected, strict=True):
        assert r.index == int(p.argmax())
        assert r.confidence == pytest.approx(float(p.max()), rel=1e-4)
        assert [t["index"] for t in r.top_k] == p.topk(3).indices.tolist()


def test_order_kept_and_errors_isolated(classifier: Classifier) -> None:
    x = np.zeros((28, 28), np.uint8)
    x[5:23, 10:18] = 200
    sources = [_png(x), b"", b"garbage", _png(255 - x)]
    results = classifier.classify(sources, ["a", "b", "c", "d"])
    assert [r.path for r in results] == ["a", "b", "c", "d"]
    assert results[0].label and results[3].label
    assert results[1].error and "empty" in results[1].error and results[1].label is None
    assert results[2].error and results[2].confidence is None
    record = results[0].record()
    assert set(record) == {"path", "label", "index", "confidence", "top_k", "error", "warnings",
                           "in_class", "unsure", "unsure_reason"}


def test_pictures_prepared_at_once_give_the_answers_in_order(classifier: Classifier,
                                                             monkeypatch) -> None:
    """`iter_classify` prepares a batch's pictures PREPARE_THREADS at a time: the same records,
    in order, as one after another, an unreadable picture's error kept in its place; one after
    another on a one-core machine."""
    photos = sorted(SAMPLES.glob("*.jpg"))[::4]
    sources = [*photos[:3], b"garbage", *photos[3:]]
    records = {}
    monkeypatch.setattr("fashion_cnn.predict.THREADS_FROM_SECONDS", 0.0)  # whatever the CPU
    monkeypatch.setattr("fashion_cnn.predict.cores", lambda: 2)
    threads_used = []
    real_prepare = Classifier.prepare
    monkeypatch.setattr(Classifier, "prepare", lambda self, *args: threads_used.append(
        threading.current_thread().name) or real_prepare(self, *args))
    for threads in (2, 1):
        monkeypatch.setattr("fashion_cnn.predict.PREPARE_THREADS", threads)
        records[threads] = [p.record() for p in classifier.iter_classify(sources, batch_size=4)]
    assert records[2] == records[1]
    assert [r["error"] is not None for r in records[2]] == [s == b"garbage" for s in sources]
    assert records[2][0]["path"] == str(photos[0])
    assert any(name.startswith("fashion-cnn-prepare") for name in threads_used)
    threads_used.clear()
    monkeypatch.setattr("fashion_cnn.predict.cores", lambda: 1)
    assert [p.record() for p in classifier.iter_classify(sources, batch_size=4)] == records[1]
    assert not any(name.startswith("fashion-cnn-prepare") for name in threads_used)


def test_programming_mistakes_are_a_clear_type_or_value_error(classifier: Classifier) -> None:
    """classify("shoe.jpg") classified each character as a path (one error record per letter);
    probabilities() of a float 0..1 array gave wrong answers silently, and a lone [28, 28]
    image torch's "Expected 3D (unbatched) or 4D (batched) input to conv2d". Each is now a
    TypeError or ValueError saying what the call takes."""
    photo = SAMPLES / "bag-1.jpg"
    for one in (str(photo), photo, photo.read_bytes()):
        with pytest.raises(TypeError, match="take a list of pictures.*use classify_one"):
            classifier.classify(one)
        with pytest.raises(TypeError, match="take a list of pictures"):
            next(classifier.iter_classify(one))
    image = np.zeros((28, 28), np.uint8)
    with pytest.raises(TypeError, match=r"uint8 images \[N, 28, 28\].*not float64"):
        classifier.probabilities(np.random.default_rng(0).random((2, 28, 28)))
    for wrong, shape in ((image, r"\(28, 28\); one image is image\[None\]"),
                         (np.zeros((2, 32, 32), np.uint8), r"\(2, 32, 32\)\.")):
        with pytest.raises(ValueError, match=f"not shape {shape}"):
            classifier.probabilities(wrong)
    assert classifier.probabilities(image[None]).shape == (1, 10)


def test_checkpoint_carries_image_preprocessing(classifier: Classifier, tmp_path: Path) -> None:
    """A Classifier converts pictures by the settings saved in its checkpoint, not by the
    defaults of the code that loads it."""
    _, meta = load_checkpoint()
    assert meta["image_preprocessing"].items() <= classifier.config.to_dict().items()
    payload = torch.load(resolve_checkpoint("seed"), weights_only=True)
    payload["image_preprocessing"] |= {"foreground": "trim", "work_size": 128}
    torch.save(payload, tmp_path / "model.pt")
    config = Classifier(tmp_path / "model.pt").config
    assert (config.foreground, config.work_size) == ("trim", 128)
    assert (config.foreground, config.work_size) != (PreprocessConfig.foreground,
                                                     PreprocessConfig.work_size)


def test_saliency_and_overlay(classifier: Classifier) -> None:
    x = np.zeros((28, 28), np.uint8)
    x[4:24, 9:19] = 220
    heat = saliency(classifier.net, x, target=1)
    assert heat.shape == (28, 28) and heat.max() == pytest.approx(1.0) and heat.min() >= 0
    assert np.array_equal(heat, saliency(classifier.net, x, target=1))  # seeded: repeatable
    img = overlay(x, heat, size=112)
    assert img.size == (112, 112) and img.mode == "RGB"


# --- the `fashion-cnn predict` command --------------------------------------------------------


@pytest.fixture
def picture_dir(tmp_path):
    """Four good pictures in three formats, one bad file and a subfolder with one more."""
    import shutil

    folder = tmp_path / "pics"
    (folder / "sub").mkdir(parents=True)
    for name in ("bag-1.jpg", "trouser-2.jpg"):
        shutil.copy(SAMPLES / name, folder / name)
    Image.open(SAMPLES / "sneaker-1.jpg").save(folder / "sneaker.png")
    Image.open(SAMPLES / "dress-1.jpg").save(folder / "dress.webp")
    (folder / "broken.jpg").write_bytes((SAMPLES / "coat-1.jpg").read_bytes()[:500])
    (folder / "notes.txt").write_text("not a picture, and not picked up from a folder")
    shutil.copy(SAMPLES / "sandal-1.jpg", folder / "sub" / "sandal.jpg")
    return folder


def test_predict_json_schema_order_and_exit_status(picture_dir, classifier) -> None:
    from conftest import run_cli

    result = run_cli("predict", "--format", "json", "--top-k", "2", str(picture_dir))
    assert result.returncode == 1  # one picture failed
    records = json.loads(result.stdout)
    names = [Path(r["path"]).name for r in records]
    assert names == ["bag-1.jpg", "broken.jpg", "dress.webp", "sneaker.png", "trouser-2.jpg"]
    for r in records:
        assert set(r) == {"path", "label", "index", "confidence", "top_k", "error",
                          "in_class", "unsure", "unsure_reason", "warnings"}
        if r["error"]:
            assert r["label"] is None and r["index"] is None and r["confidence"] is None
            assert "truncated" in r["error"]
            continue
        expected = classifier.classify_one(Path(r["path"]))
        assert (r["label"], r["index"]) == (expected.label, expected.index)
        assert r["confidence"] == pytest.approx(expected.confidence, abs=1e-6)
        assert len(r["top_k"]) == 2 and r["top_k"][0]["label"] == r["label"]
        assert set(r["top_k"][0]) == {"label", "index", "confidence"}
    assert "1 of 5 pictures could not be classified" in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_csv_recursive_and_input_order(picture_dir) -> None:
    import csv

    from conftest import run_cli

    files = [picture_dir / "trouser-2.jpg", picture_dir / "bag-1.jpg"]
    result = run_cli("predict", "--format", "csv", "--recursive", *map(str, files),
                     str(picture_dir / "sub"))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["path", "label", "index", "confidence", "top_k", "error",
                             "in_class", "unsure", "unsure_reason", "warnings"]
    assert [Path(r["path"]).name for r in rows] == ["trouser-2.jpg", "bag-1.jpg", "sandal.jpg"]
    assert all(r["error"] == "" and r["top_k"].startswith(r["label"] + ":") for r in rows)


def test_predict_table_and_stdin(picture_dir, classifier) -> None:
    from conftest import run_cli

    picture = picture_dir / "bag-1.jpg"
    result = run_cli("predict", "-", input=None, stdin=picture.open("rb"))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:3] == ["path", "label", "conf"]
    assert row.split()[0] == "-" and classifier.classify_one(picture).label in row


def test_predict_usage_errors(picture_dir, tmp_path) -> None:
    from conftest import run_cli

    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["--format", "xml", str(picture_dir)], [], [str(empty)],
                 ["--model", str(tmp_path / "none.pt"), str(picture_dir)], ["-", "-"]):
        result = run_cli("predict", *args, stdin=subprocess.DEVNULL)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr
    missing = run_cli("predict", str(tmp_path / "nope.jpg"))
    assert missing.returncode == 1 and "cannot read the file" in missing.stdout


def test_the_default_model_never_imports_numba() -> None:
    """numba (seconds to import, compiles kernels) belongs to the seed CNN's fast path only."""
    from conftest import modules_loaded_by

    sample = sorted(SAMPLES.glob("*.jpg"))[0]
    code = ("from fashion_cnn.predict import Classifier\n"
            f"assert Classifier().classify_one({str(sample)!r}).label")
    assert "numba" not in modules_loaded_by(code)
    # the check can see numba: the seed model's evaluation runs the fast path
    seed = code.replace("Classifier()", "Classifier('seed')") + (
        "\nimport torch\nfrom fashion_cnn.evaluate import predict_logits\n"
        "predict_logits(Classifier('seed').net, torch.zeros(2, 28, 28, dtype=torch.uint8))")
    assert "numba" in modules_loaded_by(seed)


# --- honest when unsure (issue 15) -------------------------------------------------------------


def _with_policy(classifier: Classifier, policy: UnsurePolicy) -> Classifier:
    """The same loaded model under another unsure policy (whatever the shipped model carries)."""
    clone = copy.copy(classifier)
    clone.policy = policy
    return clone


def _encoded(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _blank_pictures() -> dict[str, bytes]:
    near_white = np.clip(np.random.default_rng(0).normal(247, 3, (300, 300, 3)), 0, 255)
    specks = {}
    for side in (4, 40):  # on white 1000x800: enlarged to 28 px, they looked like garments
        speck = np.full((800, 1000, 3), 255, np.uint8)
        speck[400:400 + side, 500:500 + side] = 0
        specks[f"speck-{side}.png"] = _encoded(Image.fromarray(speck))
    return {**specks,
        "white.png": _encoded(Image.new("RGB", (300, 300), "white")),
        "red.png": _encoded(Image.new("RGB", (200, 120), (200, 30, 30))),
        "dot.png": _encoded(Image.new("RGB", (1, 1), (10, 200, 10))),
        "strip.png": _encoded(Image.new("RGB", (500, 3), (120, 120, 120))),
        "black-28.png": _encoded(Image.new("L", (28, 28), 0)),
        "white-paper.jpg": _encoded(Image.fromarray(near_white.astype(np.uint8)), "JPEG"),
    }


def test_blank_pictures_find_no_garment(classifier: Classifier) -> None:
    blanks = _blank_pictures()
    for policy in (UnsurePolicy(), UnsurePolicy(threshold=0.5)):
        clf = _with_policy(classifier, policy)
        for p in clf.classify(list(blanks.values()), list(blanks)):
            assert p.error is None, p.path  # not an error: the picture was read fine
            assert (p.unsure, p.unsure_reason) == (True, NO_GARMENT), (p.path, p.label)
            assert p.label is None and p.index is None and p.confidence is None, p.path
            assert p.top_k == [] and p.in_class is None
            assert any("No garment found" in w for w in p.warnings)


def test_a_noisy_thin_strip_finds_no_garment(classifier: Classifier) -> None:
    """A 500x3 strip of random colours: too thin to show an article, however busy it is."""
    strip = np.random.default_rng(1).integers(0, 255, (3, 500, 3), dtype=np.uint8)
    p = classifier.classify_one(_encoded(Image.fromarray(strip)), "noisy-strip.png")
    assert p.error is None and p.unsure_reason == NO_GARMENT and p.label is None


def test_random_noise_finds_no_garment(classifier: Classifier) -> None:
    """Random colours or greys, as PNG or JPEG, small or large: no garment, not "Dress 79%"."""
    rng = np.random.default_rng(2)
    noise = {"noise.png": _encoded(Image.fromarray(rng.integers(0, 256, (400, 400, 3),
                                                                 dtype=np.uint8))),
             "grey-noise.jpg": _encoded(Image.fromarray(rng.integers(0, 256, (900, 1200),
                                                                     dtype=np.uint8)), "JPEG"),
             "noise-64.png": _encoded(Image.fromarray(rng.integers(0, 256, (64, 64, 3),
                                                                    dtype=np.uint8)))}
    for p in classifier.classify(list(noise.values()), list(noise)):
        assert p.error is None and p.unsure_reason == NO_GARMENT and p.label is None, p.path
        assert any("noise" in w for w in p.warnings), p.warnings


def _floor(colourful: bool = False) -> Image.Image:
    """A 400x300 wooden floor: beige boards, soft grain and light falling off; `colourful`:
    a dark blue garment filling its left half."""
    ys, xs = np.mgrid[:300, :400].astype(np.float64)
    level = 190 + 6 * np.sin(xs / 7) - 15 * ys / 300  # grain across, light falling off
    rgb = np.stack([level, level * 0.92, level * 0.78], -1)
    if colourful:
        rgb[:, :200] = (30, 40, 110)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def test_a_bare_surface_finds_no_garment(classifier: Classifier,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A picture classified whole (nothing stood out from its edges) whose colours hardly vary
    and whose score is low is an empty floor, wall or bed: "no garment found". A garment
    filling the frame varies more, or the model is surer of it."""
    def pre(original: Image.Image, warnings: list[str]) -> Preprocessed:
        return Preprocessed(original, np.full((28, 28), 200, np.uint8), False, warnings)

    floor, covered = pre(_floor(), [WHOLE_FRAME]), pre(_floor(colourful=True), [WHOLE_FRAME])
    assert classifier.no_garment_sentence(floor, 0.5) == BARE_SURFACE_SENTENCE
    assert classifier.no_garment_sentence(floor, 0.9) is None  # sure of a class
    assert classifier.no_garment_sentence(covered, 0.5) is None  # colours vary
    assert classifier.no_garment_sentence(pre(_floor(), []), 0.5) is None  # something stood out
    monkeypatch.setattr(predict, "BARE_SURFACES", False)  # the rule off
    assert classifier.no_garment_sentence(floor, 0.5) is None


def test_the_bare_surface_bars_are_the_ones_chosen_on_train() -> None:
    """benchmarks/empty_surfaces.py chooses the bars on the train split's in-class pictures
    and records the shipped ones; the committed result says they agree."""
    result = json.loads((ROOT / "benchmarks" / "results" / "empty_surfaces.json").read_text())
    shipped = {"spread": predict.BARE_SPREAD, "bar": predict.BARE_IN_CLASS}
    assert result["chosen"] == result["shipped"] == shipped


def test_the_answer_comes_from_the_cut_out_the_model_is_surer_of(classifier) -> None:
    """A picture's second cut-out (`Preprocessed.edge_image`) is answered from only when the
    model's top probability on it beats the first's by more than `fg_edge_margin`; it is then
    the model input the prediction shows."""
    boot = preprocess(SAMPLES / "ankle-boot-1.jpg")
    blend = ((boot.image.astype(np.uint16) + preprocess(SAMPLES / "bag-1.jpg").image) // 2)
    sure, torn = boot.image, blend.astype(np.uint8)
    p_sure, p_torn = classifier.probabilities(np.stack([sure, torn]))
    assert p_sure.max() > p_torn.max() + classifier.config.fg_edge_margin  # the premise

    def picture(image: np.ndarray, second: np.ndarray | None) -> Preprocessed:
        return Preprocessed(boot.original, image.copy(), False, [], second)

    pictures = [picture(torn, sure), picture(sure, torn), picture(torn, None)]
    for pad in (None, padded):  # `predict`'s batches, and the HTTP API's padded ones
        inputs = copy.deepcopy(pictures)
        probs = classifier.input_logits(inputs, pad=pad).softmax(1)
        assert len(probs) == 3
        assert torch.allclose(probs[0], p_sure, atol=1e-5) and np.array_equal(inputs[0].image, sure)
        assert torch.allclose(probs[1], p_sure, atol=1e-5) and np.array_equal(inputs[1].image, sure)
        assert torch.allclose(probs[2], p_torn, atol=1e-5) and np.array_equal(inputs[2].image, torn)
    demanding = copy.copy(classifier)  # the same model, a margin no answer can beat
    demanding.config = dataclasses.replace(classifier.config, fg_edge_margin=1.0)
    kept = copy.deepcopy(pictures[:1])
    assert torch.allclose(demanding.input_logits(kept)[0].softmax(0), p_torn, atol=1e-5)
    assert np.array_equal(kept[0].image, torn)


def _darkened(path: Path) -> bytes:
    """The photo with its article nearly black (gamma 4), on the same white background."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
    return _encoded(Image.fromarray((255 * rgb ** 4).round().astype(np.uint8)))


def test_real_photos_and_dark_garments_hold_a_garment(classifier: Classifier) -> None:
    paths = sorted(SAMPLES.glob("*.jpg"))
    sources = [p.read_bytes() for p in paths] + [_darkened(p) for p in paths]
    for p in classifier.classify(sources, [str(p) for p in paths] * 2):
        assert p.unsure_reason != NO_GARMENT and p.label is not None, p.path


def _probs(*top: float) -> torch.Tensor:
    """A 10-class probability vector whose largest entries are `top` (classes 0, 1, ...)."""
    rest = (1 - sum(top)) / (10 - len(top))
    return torch.tensor([*top] + [rest] * (10 - len(top)))


NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"]


def test_rules_without_a_threshold_only_flag_low_confidence() -> None:
    policy = UnsurePolicy()
    assert policy.judge(0.9, _probs(0.9, 0.05), NAMES) is None
    reason, sentence = policy.judge(0.5, _probs(0.5, 0.45), NAMES)
    assert reason == LOW and "T-shirt/top and Trouser" in sentence
    assert policy.judge(0.2, _probs(0.2, 0.1), NAMES)[0] == LOW  # never "not one of the 10"
    assert policy.judge(0.65, _probs(0.65, 0.3), NAMES) is None  # a small margin is fine here


def test_rules_with_a_threshold() -> None:
    policy = UnsurePolicy(threshold=0.4)
    assert policy.judge(0.9, _probs(0.9, 0.05), NAMES) is None
    assert policy.judge(0.55, _probs(0.55, 0.3), NAMES) is None  # below 0.6 but clear
    reason, sentence = policy.judge(0.35, _probs(0.35, 0.3), NAMES)
    assert reason == NOT_A_CLASS and "not look like one of the 10" in sentence
    shirt_first = _probs(0.5, 0.4)[[1, 2, 3, 4, 5, 6, 0, 7, 8, 9]]  # Shirt 0.5, T-shirt 0.4
    reason, sentence = policy.judge(0.5, shirt_first, NAMES)
    assert reason == LOW and "between Shirt and T-shirt/top" in sentence


def test_threshold_comes_from_the_checkpoint() -> None:
    assert UnsurePolicy.from_meta({}).threshold is None  # today's checkpoints
    spec = {"score": "max_softmax", "threshold": 0.55, "chosen_on": "val", "keeps": 0.95}
    assert UnsurePolicy.from_meta({"unsure": spec}).threshold == 0.55
    energy = UnsurePolicy.from_meta({"unsure": {**spec, "score": "energy", "offset": 3.0}})
    assert (energy.score, energy.offset, energy.threshold) == ("energy", 3.0, 0.55)
    with pytest.raises(FashionCNNError, match="mahalanobis"):
        UnsurePolicy.from_meta({"unsure": {**spec, "score": "mahalanobis"}})


def test_in_class_scores() -> None:
    """max_softmax: the top probability. energy: sigmoid(logsumexp(logits) - offset), which
    also sees how large the logits are: the same probabilities from weaker logits (a picture
    unlike anything trained on) score lower."""
    logits = torch.tensor([[4.0, 1.0, 0.0] + [0.0] * 7, [0.4, 0.1, 0.0] + [0.0] * 7])
    top = logits.softmax(1).amax(1)
    assert torch.allclose(in_class_scores(logits), top)
    energy = in_class_scores(logits, "energy", offset=3.0)
    assert torch.allclose(energy, torch.sigmoid(torch.logsumexp(logits, 1) - 3.0))
    assert in_class_scores(logits[0] - 5.0, "energy", 3.0) < energy[0]  # same softmax, lower
    assert torch.allclose(in_class_scores(logits[0] - 5.0), top[0])
    at_offset = torch.full((10,), 3.0 - math.log(10))  # logsumexp exactly the offset
    assert float(in_class_scores(at_offset, "energy", 3.0)) == pytest.approx(0.5)
    policy = UnsurePolicy(threshold=0.5, score="energy", offset=3.0)
    assert policy.in_class(logits[0]) == pytest.approx(float(energy[0]))


@pytest.fixture(scope="module")
def threshold_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model with an in-class threshold in its metadata, as future models ship."""
    payload = torch.load(resolve_checkpoint(None), map_location="cpu", weights_only=True)
    payload["unsure"] = {"score": "max_softmax", "threshold": 0.4, "chosen_on": "test",
                         "keeps": 0.95}
    path = tmp_path_factory.mktemp("threshold") / "model.pt"
    torch.save(payload, path)
    return path


@pytest.fixture(scope="module")
def torn_sample(classifier: Classifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A picture the default model is torn on: top-1 >= 0.4 (the test threshold) and
    top-1 - top-2 < 0.2 (a bundled sample or a blend of two: conftest.undecided_pictures)."""
    from conftest import undecided_pictures

    for blob in undecided_pictures():
        top = classifier.classify_one(blob).top_k
        if top[0]["confidence"] >= 0.4 and top[0]["confidence"] - top[1]["confidence"] < 0.2:
            path = tmp_path_factory.mktemp("torn") / "torn.jpg"
            path.write_bytes(blob)
            return path
    pytest.fail("no bundled sample nor blend of two sits between two classes for the default")


def test_unsure_pictures_through_a_model_with_a_threshold(threshold_checkpoint: Path,
                                                          torn_sample: Path) -> None:
    clf = Classifier(threshold_checkpoint)
    assert clf.policy.threshold == 0.4
    sure, torn = clf.classify([SAMPLES / "bag-1.jpg", torn_sample])
    assert not sure.unsure and sure.unsure_reason is None
    assert sure.in_class == sure.confidence and 0 <= sure.in_class <= 1
    # torn_sample sits between two classes: (top-1 - top-2) < 0.2
    first, second = torn.top_k[0]["confidence"], torn.top_k[1]["confidence"]
    assert first >= 0.4 and first - second < 0.2, torn.top_k
    assert torn.unsure and torn.unsure_reason == LOW and torn.label is not None
    assert any(f"between {torn.top_k[0]['label']} and {torn.top_k[1]['label']}" in w
               for w in torn.warnings)


def test_the_default_scores_in_class_by_energy(classifier: Classifier) -> None:
    """The shipped default's unsure rule is the energy score, chosen on the real photos'
    validation split: a picture's in_class is sigmoid(logsumexp(its logits) - offset)."""
    assert (classifier.policy.score, classifier.policy.threshold) == ("energy", 0.5)
    p = classifier.classify_one(SAMPLES / "bag-1.jpg")
    logits = classifier.logits(p.input.image[None])[0]
    energy = torch.sigmoid(torch.logsumexp(logits, 0) - classifier.policy.offset)
    assert p.in_class == pytest.approx(float(energy), abs=1e-5)
    assert p.in_class != pytest.approx(p.confidence, abs=1e-3)  # not the top probability
    described = model_info(classifier, None)  # what the HTTP API tells its clients
    assert described["in_class_score"] == {"score": "energy", "offset": classifier.policy.offset}
    assert described["unsure_threshold"] == 0.5


def test_predict_records_carry_the_unsure_fields(threshold_checkpoint: Path,
                                                torn_sample: Path) -> None:
    import csv

    from conftest import run_cli

    args = [str(SAMPLES / "bag-1.jpg"), str(torn_sample)]
    result = run_cli("predict", "--model", str(threshold_checkpoint), "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    sure, torn = json.loads(result.stdout)
    assert list(sure) == list(RECORD_KEYS)
    assert (sure["unsure"], sure["unsure_reason"]) == (False, None)
    assert sure["in_class"] == pytest.approx(sure["confidence"])
    assert (torn["unsure"], torn["unsure_reason"]) == (True, LOW)
    assert any("Not sure: between" in w for w in torn["warnings"])
    result = run_cli("predict", "--model", str(threshold_checkpoint), "--format", "csv", *args)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["unsure"] for r in rows] == ["false", "true"]
    assert rows[1]["unsure_reason"] == LOW and "Not sure: between" in rows[1]["warnings"]
    assert float(rows[0]["in_class"]) == pytest.approx(sure["in_class"], abs=1e-4)
    table = run_cli("predict", "--model", str(threshold_checkpoint), *args).stdout
    assert "unsure: low confidence" in table.splitlines()[2]
    assert "unsure" not in table.splitlines()[1]


# --- phone formats -----------------------------------------------------------------------------


def _phone_pictures() -> dict[str, bytes]:
    """bag-1.jpg re-encoded as HEIC (pillow-heif) and AVIF (Pillow, or its plugin)."""
    assert {"HEIF", "AVIF"} <= formats.register_phone_formats()
    jpeg = Image.open(SAMPLES / "bag-1.jpg")
    return {"bag.heic": _encoded(jpeg, "HEIF", quality=90),
            "bag.avif": _encoded(jpeg, "AVIF", quality=90)}


def test_heic_and_avif_classify_like_the_jpeg(classifier: Classifier, tmp_path: Path) -> None:
    expected = classifier.classify_one(SAMPLES / "bag-1.jpg").label
    for name, data in _phone_pictures().items():
        assert Image.open(io.BytesIO(data)).format in ("HEIF", "AVIF")
        (tmp_path / name).write_bytes(data)
    names, sources = collect_pictures([str(tmp_path)])  # the folder scan finds them
    assert [Path(n).name for n in names] == ["bag.avif", "bag.heic"]
    for p in classifier.classify(sources, names):
        assert p.error is None and p.label == expected, (p.path, p.error, p.label)


def test_phone_formats_register_once_and_explain_a_missing_plugin(monkeypatch) -> None:
    assert formats.register_phone_formats() is formats.register_phone_formats()  # cached
    assert formats.missing_note("photo.HEIC") == "" and formats.missing_note("a.jpg") == ""
    monkeypatch.setattr(formats, "register_phone_formats", lambda: frozenset())
    assert "pip install pillow-heif" in formats.missing_note("photo.HEIC")
    assert "AVIF" in formats.missing_note("photo.avif")
    assert formats.missing_note("a.jpg") == ""


def test_the_unreadable_message_names_the_phone_formats_only_when_they_can_be_read(
        monkeypatch) -> None:
    assert formats.readable_names().endswith("TIFF, HEIC or AVIF")
    monkeypatch.setattr(formats, "register_phone_formats", lambda: frozenset({"AVIF"}))
    assert formats.readable_names() == "JPEG, PNG, WebP, GIF, BMP, TIFF or AVIF"
    monkeypatch.setattr(formats, "register_phone_formats", lambda: frozenset())
    with pytest.raises(ImageError, match="use a JPEG, PNG, WebP, GIF, BMP or TIFF file"):
        decode_image(b"just some text")
