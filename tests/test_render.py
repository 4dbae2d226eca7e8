"""Synthetic hard photos (fashion_cnn.render) of a few synthetic 28x28 articles: no real data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_article as article
from fashion_cnn import render as renderer
from fashion_cnn.preprocess import preprocess


def render(kind: int, seed: int, sizes: tuple[int, int] = renderer.PHOTO_SIZES
           ) -> tuple[bytes, dict[str, str]]:
    return renderer.hard_photo(article(kind), np.random.default_rng(seed), sizes)


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
    assert max(photo.shape) >= renderer.PHOTO_SIZES[0]
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


@pytest.mark.parametrize("seed", [0, 1])
def test_training_photos_are_smaller_and_still_not_invertible(seed: int) -> None:
    low, high = renderer.TRAINING_SIZES
    blob, _ = render(seed, seed, renderer.TRAINING_SIZES)
    assert low <= max(decode(blob).shape) <= high
    assert not np.array_equal(preprocess(blob).image, article(seed))


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_the_article_alone_fills_the_frame_as_a_cut_out_garment_does(kind: int) -> None:
    """Seeded, 28x28 uint8, the silhouette fitted to 28 px on its longest side (as the cut-out
    fits a garment), and not the dataset image itself (it was enlarged, softened and shrunk)."""
    x = article(kind)
    alone = renderer.article_alone(x, np.random.default_rng(kind))
    assert np.array_equal(alone, renderer.article_alone(x, np.random.default_rng(kind)))
    assert alone.shape == (28, 28) and alone.dtype == np.uint8
    lit = alone > 20
    rows, cols = np.flatnonzero(lit.any(1)), np.flatnonzero(lit.any(0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 >= 27
    assert not np.array_equal(alone, x)


def test_bin_label() -> None:
    assert renderer.bin_label(0.12, [0.05, 0.1, 0.15, 0.2], "%") == "10-15%"
    assert renderer.bin_label(0.2, [0.05, 0.1, 0.15, 0.2], "%") == "15-20%"


# ---------------------------------------------------------------------------------------------
# A training set of synthetic photos


def test_synthetic_photos_are_what_predict_sees_whatever_the_workers(monkeypatch,
                                                                     tmp_path) -> None:
    import torch

    images = torch.from_numpy(np.stack([article(k % 3) for k in range(5)]))
    monkeypatch.setattr(renderer, "CHUNK", 2)  # 3 tasks
    one = renderer.synthetic_photos(images, seed=3, cache_dir=None, workers=1, progress=False)
    two = renderer.synthetic_photos(images, seed=3, cache_dir=tmp_path, workers=2,
                                    progress=False)
    assert one.dtype == torch.uint8 and one.shape == (5, 28, 28)
    assert torch.equal(one, two)
    # image i is rendered from (seed, i) and converted by the library's preprocessing
    blob, _ = renderer.hard_photo(article(4 % 3), np.random.default_rng([3, 4]),
                                  renderer.TRAINING_SIZES)
    assert np.array_equal(two[4].numpy(), preprocess(blob).image)
    assert not torch.equal(one, renderer.synthetic_photos(images, seed=4, cache_dir=None,
                                                          workers=1, progress=False))
    # the second call reads the cache: no worker runs
    monkeypatch.setattr(renderer, "_render_chunk", None)
    assert len(list(tmp_path.iterdir())) == 1
    assert torch.equal(two, renderer.synthetic_photos(images, seed=3, cache_dir=tmp_path,
                                                      progress=False))
