"""Classifier: batches keep their order, bad pictures get an error record, checkpoints carry
their preprocessing, and dataset images score as the evaluation does."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashion_cnn.evaluate import predict_logits
from fashion_cnn.explain import overlay, saliency
from fashion_cnn.models import load_checkpoint
from fashion_cnn.predict import Classifier


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
    expected = predict_logits(classifier.net, images).softmax(1)  # the fused forward pass:
    results = classifier.classify([_png(x.numpy()) for x in images], top_k=3)  # same function,
    for r, p in zip(results, expected, strict=True):  # rounded differently (float tolerance)
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
    assert set(record) == {"path", "label", "index", "confidence", "top_k", "error", "warnings"}


def test_checkpoint_carries_image_preprocessing(classifier: Classifier) -> None:
    _, meta = load_checkpoint()
    assert classifier.config.size == 28
    assert meta["preprocessing"]["scale"] == pytest.approx(1 / 255)


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

    from fashion_cnn.app import SAMPLES

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
        assert set(r) == {"path", "label", "index", "confidence", "top_k", "error"}
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
    assert list(rows[0]) == ["path", "label", "index", "confidence", "top_k", "error"]
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

    sample = sorted((Path(__file__).parents[1] / "src/fashion_cnn/samples").glob("*.jpg"))[0]
    code = ("from fashion_cnn.predict import Classifier\n"
            f"assert Classifier().classify_one({str(sample)!r}).label")
    assert "numba" not in modules_loaded_by(code)
    # the check can see numba: the seed model's evaluation runs the fast path
    seed = code.replace("Classifier()", "Classifier('seed')") + (
        "\nimport torch\nfrom fashion_cnn.evaluate import predict_logits\n"
        "predict_logits(Classifier('seed').net, torch.zeros(2, 28, 28, dtype=torch.uint8))")
    assert "numba" in modules_loaded_by(seed)
