"""The photo-style benchmark's hard renderer (benchmarks/photo_accuracy.py --hard), on a few
synthetic 28x28 articles: no real data needed."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from fashion_cnn.preprocess import preprocess

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


def article(kind: int) -> np.ndarray:
    """A synthetic Fashion-MNIST-like image: a shaded white shape on black, uint8 [28, 28]."""
    x = np.zeros((28, 28), np.float32)
    ys, xs = np.mgrid[:28, :28]
    if kind == 0:  # a "shirt": a body and two sleeves
        x[4:26, 8:20] = 1
        x[4:12, 2:26] = 1
    elif kind == 1:  # a "trouser"
        x[2:27, 8:13] = 1
        x[2:27, 15:20] = 1
        x[2:6, 8:20] = 1
    else:  # a "bag": a disc
        x[(ys - 15) ** 2 + (xs - 14) ** 2 < 100] = 1
    return (x * (150 + 100 * ys / 27)).astype(np.uint8)  # shaded, as photos are


def render(kind: int, seed: int) -> tuple[bytes, dict[str, str]]:
    return photo_accuracy.hard_photo(article(kind), np.random.default_rng(seed))


def decode(blob: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(blob)).convert("L"), np.float32)


def test_hard_photo_is_reproducible_for_a_seed() -> None:
    first = render(0, 7)
    assert render(0, 7) == first
    assert render(0, 8)[0] != first[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hard_photo_is_large_and_not_an_enlarged_28x28(seed: int) -> None:
    x = article(seed)
    blob, conditions = render(seed, seed)
    photo = decode(blob)
    assert max(photo.shape) >= 300
    # Subsampling back to 28x28 (nearest pixel, negated) does not give the input ...
    back = Image.fromarray(255 - photo.astype(np.uint8)).resize((28, 28),
                                                                Image.Resampling.NEAREST)
    assert not np.array_equal(np.asarray(back), x)
    # ... nor does the library's own conversion, as `fashion-cnn predict` runs it.
    assert not np.array_equal(preprocess(blob).image, x)
    assert set(conditions) >= {"format", "background", "gradient", "blur"}


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_hard_photo_background_is_not_uniform(seed: int) -> None:
    photo = decode(render(2, seed)[0])
    border = np.concatenate([photo[:5].ravel(), photo[-5:].ravel(),
                             photo[:, :5].ravel(), photo[:, -5:].ravel()])
    assert border.std() > 2.0  # light gradient, texture and noise
    assert border.mean() > 0.5 * 255  # still a light backdrop


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
    assert photo_accuracy.bin_label(0.12, [0.05, 0.1, 0.15, 0.2], "%") == "10-15%"
    assert photo_accuracy.bin_label(0.2, [0.05, 0.1, 0.15, 0.2], "%") == "15-20%"
