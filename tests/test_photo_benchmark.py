"""The photo-style benchmark (benchmarks/photo_accuracy.py) on synthetic 28x28 articles: no real
data needed. Its hard renderer is fashion_cnn.render (tests/test_render.py)."""

from __future__ import annotations

import io

import numpy as np
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
