"""The photo-style benchmark (benchmarks/photo_accuracy.py) on synthetic 28x28 articles: no real
data needed. Its hard renderer is fashion_cnn.render (tests/test_render.py)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from conftest import load_benchmark
from conftest import synthetic_article as article

photo_accuracy = load_benchmark("photo_accuracy")


def test_easy_photo_style_keeps_its_conditions() -> None:
    blob, conditions = photo_accuracy.photo_style(article(0), np.random.default_rng(0))
    assert set(conditions) == {"format", "enlargement"}
    assert max(Image.open(io.BytesIO(blob)).size) >= 28 * 4


def test_breakdown_by_condition() -> None:
    right = [True, False, True]
    conditions = [{"format": "PNG", "blur": "0-0.5 px"}, {"format": "JPEG", "blur": "0-0.5 px"},
                  {"format": "PNG", "blur": "1-1.5 px"}]
    groups = photo_accuracy.by_condition(right, conditions)
    assert groups == {"format": {"JPEG": [False], "PNG": [True, True]},
                      "blur": {"0-0.5 px": [True, False], "1-1.5 px": [True]}}


def test_breakdown_by_class_and_commonest_mistakes() -> None:
    labels = torch.tensor([0, 0, 0, 0, 6])
    clean = torch.tensor([0, 0, 0, 6, 6])
    photos = torch.tensor([0, 6, 6, 2, -1])  # -1: no answer (no garment found)
    classes = photo_accuracy.by_class(labels, {"clean": clean, "photos": photos})
    tshirt, shirt = classes["T-shirt/top"], classes["Shirt"]
    assert tshirt["n"] == 4 and tshirt["clean_accuracy"] == 0.75
    assert tshirt["photos_accuracy"] == 0.25
    assert tshirt["photo_mistakes"] == [["Shirt", 0.5], ["Pullover", 0.25]]
    assert shirt["photos_accuracy"] == 0.0 and shirt["photo_mistakes"] == [["none", 1.0]]
    assert "Bag" not in classes  # no images of it
