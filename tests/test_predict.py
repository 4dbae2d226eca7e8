"""Classifier: batches keep their order, bad pictures get an error record, checkpoints carry
their preprocessing, and dataset images score as the evaluation does."""

from __future__ import annotations

import io

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
    expected = predict_logits(classifier.net, images).softmax(1)
    results = classifier.classify([_png(x.numpy()) for x in images], top_k=3)
    for r, p in zip(results, expected, strict=True):
        assert r.index == int(p.argmax()) and r.confidence == pytest.approx(float(p.max()))
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
