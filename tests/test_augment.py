"""Batched augmentation: off means untouched, each setting does what it says, seeded."""

from __future__ import annotations

import torch

from fashion_cnn.training.augment import PRESETS, Augment, augment, augment_all


def _batch(n: int = 64) -> torch.Tensor:
    x = torch.zeros(n, 28, 28, dtype=torch.uint8)
    x[:, 6:22, 4:12] = 200  # an off-centre bar: flips and shifts are visible
    return x


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_no_augmentation_is_identity() -> None:
    x = _batch()
    assert not Augment().active and PRESETS["photo"].active
    # the loop's own settings leave augment() nothing to do
    assert not Augment(flip=True, alternate_flip=True, cutmix=0.5).active
    assert Augment(flip=True, alternate_flip=True, translate=2).active
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


def test_translate_moves_by_whole_pixels_without_resampling() -> None:
    x = _batch(200)
    out = augment(x, Augment(translate=2), _gen())
    values = set(out.unique().tolist())
    assert values <= {0, 200}  # whole-pixel moves: no interpolated grey levels
    shifts = set()
    for image, moved in zip(x, out, strict=True):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(torch.roll(image, (dy, dx), (0, 1)), moved)]
        assert found, "every image is its original moved by at most 2 pixels"
        shifts.add(found[0])
    assert len(shifts) > 10  # many different moves


def test_random_erasing_fills_one_rectangle_in_about_p_of_the_images() -> None:
    x = torch.full((400, 28, 28), 100, dtype=torch.uint8)
    out = augment(x, Augment(erase=0.5), _gen())
    changed = out != x
    erased = changed.flatten(1).any(1)
    assert 150 < int(erased.sum()) < 250
    for mask in changed[erased][:50]:  # each erased area is one axis-aligned rectangle
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        box = torch.zeros_like(mask)
        box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        # noise can equal 100 by chance at a few pixels; everything changed is inside the box
        assert not (mask & ~box).any() and mask.sum() >= 0.9 * box.sum()
        assert 0.01 * 784 <= box.sum() <= 0.3 * 784


def test_dye_patterns_the_article_in_about_p_of_the_images() -> None:
    x = torch.zeros(400, 28, 28, dtype=torch.uint8)
    x[:, 4:24, 6:22] = 180  # a plain article on black
    out = augment(x, Augment(dye=0.5), _gen())
    dyed = (out != x).flatten(1).any(1)
    assert 150 < int(dyed.sum()) < 250
    assert torch.all(out[:, :4] == 0) and torch.all(out[:, :, :6] == 0)  # the backdrop stays
    inside = out[dyed][:, 4:24, 6:22].float()
    assert torch.all(inside.amax((1, 2)) >= 178)  # scaled back to the article's peak
    spread = inside.flatten(1).std(1)
    # bands of two shades, not a uniform dimming (the finest average out on the 28 px grid)
    assert (spread > 5).float().mean() > 0.8 and spread.median() > 10
    assert torch.equal(out, augment(x, Augment(dye=0.5), _gen()))  # seeded


def test_cutmix_pastes_a_box_of_the_neighbour_and_mixes_targets_by_its_area() -> None:
    from fashion_cnn.training.augment import cutmix

    n = 400
    x = torch.arange(n).view(n, 1, 1).expand(n, 28, 28).to(torch.uint8)  # image i is all i % 256
    labels = torch.arange(n) % 10
    out, targets = cutmix(x, labels, 0.5, 0.1, _gen())
    pasted = out != x  # the neighbour's value differs everywhere (i - 1 vs i)
    share = pasted.flatten(1).float().mean(1)
    assert torch.equal(out[pasted], x.roll(1, 0)[pasted])  # pasted pixels: image i - 1's
    assert 150 < int((share > 0).sum()) < 250 and share.max() > 0.5  # about half, boxes vary
    smoothed = torch.nn.functional.one_hot(labels, 10) * 0.9 + 0.01
    expected = smoothed * (1 - share[:, None]) + smoothed.roll(1, 0) * share[:, None]
    assert torch.allclose(targets, expected) and torch.allclose(targets.sum(1), torch.ones(n))
    same, kept = cutmix(x, labels, 0.0, 0.1, _gen())
    assert torch.equal(same, x) and torch.allclose(kept, smoothed)
