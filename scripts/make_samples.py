"""Build the app's sample gallery: 3 official test images per class as light-background photos.

    python scripts/make_samples.py   -> src/fashion_cnn/samples/*.jpg and LICENSE.md

The first three test images of each class (in file order, not chosen by how the model does),
negated to a dark article on a light background, enlarged 8x with bicubic smoothing, placed
off-centre on a slightly warm canvas and saved as JPEG: the kind of picture a shop shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fashion_cnn.data import CLASS_NAMES, load_fashion_mnist
from fashion_cnn.files import atomic_path

PER_CLASS = 3
OUT = Path(__file__).resolve().parents[1] / "src" / "fashion_cnn" / "samples"


def as_photo(image: np.ndarray, k: int) -> Image.Image:
    article = Image.fromarray(255 - image).resize((224, 224), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (288, 272), 246).convert("RGB")
    canvas.paste(article.convert("RGB"), (16 + 12 * k, 12 + 8 * k))
    return canvas


def main() -> None:
    data = load_fashion_mnist(offline=True)
    OUT.mkdir(parents=True, exist_ok=True)
    for c, name in enumerate(CLASS_NAMES):
        indices = (data.test_labels == c).nonzero().flatten()[:PER_CLASS].tolist()
        for k, i in enumerate(indices):
            slug = name.lower().replace("/", "-").replace(" ", "-")
            with atomic_path(OUT / f"{slug}-{k + 1}.jpg") as tmp:
                as_photo(data.test_images[i].numpy(), k).save(tmp, "JPEG", quality=88)
    (OUT / "LICENSE.md").write_text(
        "# Sample pictures\n\nMade by `scripts/make_samples.py` from images of the Fashion-MNIST "
        "test set\n(Zalando Research, https://github.com/zalandoresearch/fashion-mnist), "
        "MIT licence,\nCopyright (c) 2017 Zalando SE. Each is a test image negated, enlarged "
        "8x and placed\non a light canvas. The first three test images of each class are used.\n")
    print(f"{len(CLASS_NAMES) * PER_CLASS} samples -> {OUT}")


if __name__ == "__main__":
    main()
