"""The photo-style benchmark (benchmarks/photo_accuracy.py) on synthetic 28x28 articles: no real
data needed. Its hard renderer is fashion_cnn.render (tests/test_render.py)."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from conftest import synthetic_article as article

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark() -> ModuleType:
    """benchmarks/photo_accuracy.py as a module (benchmarks/ is not a package; it imports
    its sibling `common`)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("photo_accuracy",
                                                  BENCHMARKS / "photo_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["photo_accuracy"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


photo_accuracy = load_benchmark()


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
