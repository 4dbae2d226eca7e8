"""Batched augmentation: off means untouched, each setting does what it says, seeded."""

from __future__ import annotations

import torch

from fashion_cnn.augment import PRESETS, Augment, augment, augment_all


def _batch(n: int = 64) -> torch.Tensor:
    x = torch.zeros(n, 28, 28, dtype=torch.uint8)
    x[:, 6:22, 4:12] = 200  # an off-centre bar: flips and shifts are visible
    return x


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_no_augmentation_is_identity() -> None:
    x = _batch()
    assert not Augment().active and PRESETS["photo"].active
    assert torch.equal(augment(x, Augment(), _gen()), x)


def test_flip_mirrors_about_half() -> None:
    x = _batch(400)
    out = augment(x, Augment(flip=True), _gen())
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert torch.all(flipped | same)
    assert 150 < int(flipped.sum()) < 250


def test_shift_moves_the_article_and_keeps_its_mass() -> None:
    x = _batch(200)
    out = augment(x, Augment(shift=3.0), _gen())
    cols = torch.arange(28).float()
    centre = (out.float().sum(1) * cols).sum(1) / out.float().sum((1, 2))
    assert centre.min() < 7.5 - 1 and centre.max() > 7.5 + 1  # moved both ways
    assert (centre - 7.5).abs().max() <= 3.2
    mass = out.float().sum((1, 2)) / x.float().sum((1, 2))
    assert mass.min() > 0.9 and mass.max() < 1.1  # a shift inside the frame loses nothing


def test_tone_settings_stay_in_range_and_change_pixels() -> None:
    x = _batch()
    for aug in (Augment(contrast=0.3), Augment(sharpness=0.6), Augment(noise=8.0),
                PRESETS["photo"]):
        out = augment(x, aug, _gen())
        assert out.dtype == torch.uint8 and out.shape == x.shape
        assert not torch.equal(out, x), aug


def test_seeded_and_chunked_the_same() -> None:
    x = _batch(100)
    a = augment(x, PRESETS["photo"], _gen(3))
    assert torch.equal(a, augment(x, PRESETS["photo"], _gen(3)))
    assert not torch.equal(a, augment(x, PRESETS["photo"], _gen(4)))
    assert augment_all(x, PRESETS["photo"], _gen(3)).shape == x.shape
