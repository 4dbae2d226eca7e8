"""Build the app's sample gallery: 3 official test images per class as light-background photos.

    python scripts/make_samples.py [--out DIR] [--data-dir DIR]
        -> src/fashion_cnn/samples/*.jpg and LICENSE.md

The first three test images of each class (in file order, not chosen by how the model does),
negated to a dark article on a light background, enlarged 8x with bicubic smoothing, placed
off-centre on a slightly warm canvas and saved as JPEG: the kind of picture a shop shows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from fashion_cnn.data import CLASS_NAMES, load_fashion_mnist
from fashion_cnn.files import atomic_path

PER_CLASS = 3
OUT = Path(__file__).resolve().parents[1] / "src" / "fashion_cnn" / "samples"


def as_photo(image: np.ndarray, k: int, background: int = 246) -> Image.Image:
    """Dark article on a plain light background (ink = 1 - pixel / 255, so the background
    around the article is exactly the canvas colour), placed off-centre."""
    canvas = np.zeros((272, 288), np.float32)
    big = np.asarray(Image.fromarray(image).resize((224, 224), Image.Resampling.BICUBIC))
    x, y = 16 + 12 * k, 12 + 8 * k
    canvas[y:y + 224, x:x + 224] = big
    photo = background * (1.0 - canvas / 255.0)
    return Image.fromarray(photo.clip(0, 255).astype(np.uint8)).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help="default: the package's samples")
    parser.add_argument("--data-dir", type=Path, help="folder with the four .gz files")
    args = parser.parse_args()
    out = args.out
    data = load_fashion_mnist(args.data_dir, offline=True)
    out.mkdir(parents=True, exist_ok=True)
    for c, name in enumerate(CLASS_NAMES):
        indices = (data.test_labels == c).nonzero().flatten()[:PER_CLASS].tolist()
        for k, i in enumerate(indices):
            slug = name.lower().replace("/", "-").replace(" ", "-")
            with atomic_path(out / f"{slug}-{k + 1}.jpg") as tmp:
                as_photo(data.test_images[i].numpy(), k).save(tmp, "JPEG", quality=88)
    (out / "LICENSE.md").write_text(
        "# Sample pictures\n\nMade by `scripts/make_samples.py` from images of the Fashion-MNIST "
        "test set\n(Zalando Research, https://github.com/zalandoresearch/fashion-mnist), "
        "MIT licence,\nCopyright (c) 2017 Zalando SE. Each is a test image negated, enlarged "
        "8x and placed\non a light canvas. The first three test images of each class are used.\n")
    print(f"{len(CLASS_NAMES) * PER_CLASS} samples -> {out}")


if __name__ == "__main__":
    main()
