"""Batched training-time augmentation: what a converted photo differs from a dataset image by.

A photo that went through `preprocess` is the dataset's kind of image, but a little off: the
article may face the other way, sit a pixel or two off, be a little smaller or larger, have
flatter or harsher contrast, softer or sharper edges, and noise. Each of those is one named
setting here, applied to a whole uint8 batch [N, 28, 28] at once (one affine resample, one
blur convolution, elementwise ops), with a seeded generator so runs are reproducible. The
settings (`Augment`) live in config.py, nested in the training configuration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import CLASS_NAMES
from .config import PRESETS, Augment

__all__ = ["PRESETS", "Augment", "alternating_mirror", "augment", "augment_all", "cutmix",
           "dye", "random_boxes", "random_erase"]

CHUNK = 8192  # images augmented per call inside `augment_all` (bounds float memory: ~26 MB)


def augment(x: torch.Tensor, aug: Augment, generator: torch.Generator) -> torch.Tensor:
    """uint8 [N, 28, 28] -> augmented uint8 [N, 28, 28]."""
    n = len(x)

    def uniform(low: float, high: float) -> torch.Tensor:  # [N] samples, one per image
        return low + (high - low) * torch.rand(n, generator=generator)

    out = x.float().unsqueeze(1)  # [N, 1, 28, 28], 0..255
    if aug.dye:  # first: the cloth is dyed before it is photographed
        out = dye(out, aug.dye, generator)
    if aug.flip and not aug.alternate_flip:  # alternating flips: the loop's (by image)
        mirror = torch.rand(n, generator=generator) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    if aug.shift or aug.scale or aug.translate:
        size = out.shape[-1]
        zoom = uniform(1 - aug.scale, 1 + aug.scale)
        shift = torch.stack([uniform(-aug.shift, aug.shift), uniform(-aug.shift, aug.shift)], 1)
        if aug.translate:  # whole pixels: bilinear sampling then lands exactly on pixels
            shift += torch.randint(-aug.translate, aug.translate + 1, (n, 2), generator=generator)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom  # the grid maps output -> input
        theta[:, :, 2] = -shift * 2 / size
        grid = F.affine_grid(theta, list(out.shape), align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
    if aug.sharpness:
        kernel = torch.tensor([1.0, 2.0, 1.0])
        kernel = (kernel[:, None] * kernel[None, :] / 16).view(1, 1, 3, 3)
        blurred = F.conv2d(out, kernel, padding=1)
        amount = uniform(-aug.sharpness, aug.sharpness).view(n, 1, 1, 1)
        out = out + amount * (out - blurred)
    if aug.contrast:
        gain = uniform(1 - aug.contrast, 1).view(n, 1, 1, 1)
        gamma = uniform(1 - aug.contrast, 1 + aug.contrast).view(n, 1, 1, 1)
        out = 255 * (out.clamp(0, 255) / 255) ** gamma * gain
    if aug.noise:
        sigma = uniform(0, aug.noise).view(n, 1, 1, 1)
        out = out + sigma * torch.randn(out.shape, generator=generator)
    if aug.erase:
        out = random_erase(out, aug.erase, generator)
    return out.squeeze(1).clamp(0, 255).round().to(torch.uint8)


def random_erase(x: torch.Tensor, p: float, generator: torch.Generator,
                 area: tuple[float, float] = (0.02, 0.25)) -> torch.Tensor:
    """With probability p per image, fill a random rectangle of x [N, 1, H, W] (0..255) with
    uniform noise."""
    inside = random_boxes(len(x), *x.shape[-2:], p, generator, area)
    noise = 255 * torch.rand(x.shape, generator=generator)
    return torch.where(inside.unsqueeze(1), noise, x)


def random_boxes(n: int, h: int, w: int, p: float, generator: torch.Generator,
                 area: tuple[float, float]) -> torch.Tensor:
    """[N, H, W] bool: with probability p per image, a random rectangle inside the image (its
    share of the area drawn uniform in `area`, aspect 1/3..3 log-uniform; sides rounded to
    whole pixels and clipped to the image, so the share lands a little either side of `area`:
    1.5-26.5% of a 28 px image for (0.02, 0.25)), else nothing. Masks are built by
    broadcasting, no per-image loop."""
    rand = lambda: torch.rand(n, generator=generator)  # noqa: E731 - [N] uniforms
    size = (area[0] + (area[1] - area[0]) * rand()) * h * w  # pixels
    aspect = torch.exp((2 * rand() - 1) * torch.log(torch.tensor(3.0)))  # 1/3..3, log-uniform
    eh = (size * aspect).sqrt().round().clamp(1, h)
    ew = (size / aspect).sqrt().round().clamp(1, w)
    top = (rand() * (h - eh + 1)).floor()
    left = (rand() * (w - ew + 1)).floor()
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
              & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)))
    return inside & (rand() < p).view(n, 1, 1)


def cutmix(x: torch.Tensor, targets: torch.Tensor, p: float, label_smoothing: float,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (Yun et al. 2019) over an epoch in shuffled order: with probability p, image i
    of x [N, H, W] (uint8) gets a random box (any share of the area) of image i - 1 pasted
    in, and its target becomes the two targets mixed by the pasted share. Labels [N] become
    label-smoothed one-hot distributions first; distributions [N, 10] are mixed as they are.
    Returns (images, targets [N, 10])."""
    if not targets.is_floating_point():
        targets = F.one_hot(targets, len(CLASS_NAMES)).float()
        targets = targets * (1 - label_smoothing) + label_smoothing / len(CLASS_NAMES)
    box = random_boxes(len(x), *x.shape[-2:], p, generator, (0.0, 1.0))
    share = box.flatten(1).float().mean(1, keepdim=True)  # [N, 1]: the partner's part
    mixed = torch.where(box, x.roll(1, 0), x)
    return mixed, targets * (1 - share) + targets.roll(1, 0) * share


def dye(x: torch.Tensor, p: float, generator: torch.Generator, periods: tuple[float, float]
        = (0.8, 4.0), supersample: int = 3) -> torch.Tensor:
    """With probability p per image, dye the article in x [N, 1, H, W] (0..255) with stripes
    (horizontal, vertical or diagonal) or checks: its brightness is multiplied by the pattern's
    shade, one band 10-90% as bright as the other, then scaled back to its old peak (as
    `preprocess` stretches a photo). The pattern is drawn `supersample` times finer and
    area-averaged, as a photo's shrink averages it; periods (output pixels) are log-uniform."""
    chosen = (torch.rand(len(x), generator=generator) < p).nonzero().squeeze(1)
    n, (h, w) = len(chosen), x.shape[-2:]
    if n == 0:
        return x
    rand = lambda: torch.rand(n, 1, 1, generator=generator)  # noqa: E731 - [n, 1, 1] uniforms
    period = periods[0] * (periods[1] / periods[0]) ** rand()
    angle = torch.pi / 4 * torch.randint(4, (n, 1, 1), generator=generator)
    rows = ((torch.arange(h * supersample) + 0.5) / supersample).view(1, -1, 1)
    cols = ((torch.arange(w * supersample) + 0.5) / supersample).view(1, 1, -1)
    along = cols * angle.cos() + rows * angle.sin()
    across = rows * angle.cos() - cols * angle.sin()

    def bands(position: torch.Tensor) -> torch.Tensor:  # 0/1 bands with soft edges
        return (torch.sin(2 * torch.pi * (position / period + rand())) * 4 + 0.5).clamp(0, 1)

    checks = rand() < 0.5
    mask = torch.where(checks, (bands(along) + bands(across)) / 2, bands(along))
    mask = F.avg_pool2d(mask.unsqueeze(1), supersample)  # [n, 1, H, W]
    low = 0.1 + 0.8 * rand().unsqueeze(1)  # the darker shade's brightness, relative
    swap = rand().unsqueeze(1) < 0.5
    shade = torch.where(swap, low + (1 - low) * mask, 1 - (1 - low) * mask)
    article = x[chosen]
    dyed = article * shade
    peak = article.amax((1, 2, 3), keepdim=True)
    dyed = dyed * peak / dyed.amax((1, 2, 3), keepdim=True).clamp_min(1e-3)
    return x.index_copy(0, chosen, dyed)


def alternating_mirror(n: int, seed: int, epoch: int) -> torch.Tensor:
    """Which of n training images [N] bool are mirrored in `epoch` (1-based) under airbench's
    alternating flip: a seeded random half in odd epochs, the other half in even ones."""
    first = torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5
    return first ^ (epoch % 2 == 0)


def augment_all(images: torch.Tensor, aug: Augment, generator: torch.Generator) -> torch.Tensor:
    """Augment a whole (shuffled) training set for one epoch, in chunks."""
    return torch.cat([augment(images[i:i + CHUNK], aug, generator)
                      for i in range(0, len(images), CHUNK)])
