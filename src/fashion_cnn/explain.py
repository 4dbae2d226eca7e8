"""Which pixels drove a prediction: SmoothGrad saliency, for any model, and a heat-map overlay.

SmoothGrad (Smilkov et al., 2017) averages the input gradient of the class score over noisy
copies of the image, which removes most of the speckle of a plain gradient. All copies go
through the model as one batch, so an explanation costs one forward and one backward pass.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn


def saliency(net: nn.Module, image: np.ndarray, target: int, samples: int = 16,
             noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """Importance of each pixel for class `target`: float [28, 28] in [0, 1].

    `image` is the uint8 [28, 28] model input; `noise` is the std of the added noise as a
    fraction of the 0..255 range.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(np.asarray(image), dtype=torch.float32).expand(samples, -1, -1)
    x = (x + noise * 255.0 * torch.randn(x.shape, generator=g)).requires_grad_(True)
    with torch.enable_grad():
        score = net(x)[:, target].sum()
        (grad,) = torch.autograd.grad(score, x)
    heat = grad.abs().mean(0)
    return (heat / heat.max().clamp(min=1e-12)).numpy()


def overlay(image: np.ndarray, heat: np.ndarray, size: int = 224,
            alpha: float = 0.55) -> Image.Image:
    """The 28x28 input, enlarged to `size`, with `heat` drawn over it (inferno colour map)."""
    from matplotlib import colormaps

    base = np.asarray(Image.fromarray(image).convert("RGB").resize((size, size),
                                                                     Image.Resampling.NEAREST))
    heat_img = Image.fromarray((heat * 255).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BILINEAR)
    coloured = colormaps["inferno"](np.asarray(heat_img) / 255.0)[..., :3] * 255
    blend = (1 - alpha) * base + alpha * coloured
    return Image.fromarray(blend.clip(0, 255).astype(np.uint8))
