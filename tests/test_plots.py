"""The figures: each writes a readable PNG for any size of input it can get."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from fashion_cnn.plots import mistakes_grid


@pytest.mark.parametrize("count", [0, 3, 7, 10])
def test_mistakes_grid_takes_any_number_of_mistakes(count: int, tmp_path: Path) -> None:
    # evaluate --plots asks for the 25 worst, but a good model on a small set has fewer
    images = torch.randint(0, 256, (12, 28, 28), dtype=torch.uint8)
    mistakes = [{"index": i, "label": i % 10, "predicted": (i + 1) % 10, "confidence": 0.9}
                for i in range(count)]
    path = tmp_path / "mistakes.png"
    mistakes_grid(images, mistakes, path)
    with Image.open(path) as png:
        rows = max(1, -(-count // 5))
        assert png.height > png.width * rows / 5 * 0.9  # one row of panels per 5 mistakes
