"""The photo-style benchmark (benchmarks/photo_accuracy.py) on synthetic 28x28 articles: no real
data needed. Its hard renderer is fashion_cnn.render (tests/test_render.py)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from conftest import load_benchmark
from conftest import synthetic_article as article
from fashion_cnn.models import build_model

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


def test_weight_interpolation_lerps_floating_state_only() -> None:
    interpolation = load_benchmark("weight_interpolation")
    torch.manual_seed(0)
    base, tuned = build_model("best", width=2), build_model("best", width=2)
    for module in tuned.modules():  # give the tuned model other batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.add_(1.0)
            module.num_batches_tracked.add_(7)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    interpolation.interpolate(base, tuned.state_dict(), 0.25)
    after, other = base.state_dict(), tuned.state_dict()
    for name, value in after.items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.75 * before[name] + 0.25 * other[name], atol=1e-6)
        else:  # counters stay the base's
            assert torch.equal(value, before[name])
    assert not torch.equal(after["features.0.1.running_mean"], before["features.0.1.running_mean"])
