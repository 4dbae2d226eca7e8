"""Benchmark: accuracy on "product photos" made from the official test images, next to clean.

    python benchmarks/photo_accuracy.py [--model seed] [--n 10000] [--seed 0]
        [--write DIR] [--out benchmarks/results/photo_accuracy_<model>_<split>.json]
        [--data-dir DIR]

Each test image is turned back into a shop-style photo by `photo_style`: negated to a coloured
article on a light, slightly tinted background, enlarged 4-16x with a random filter, placed
off-centre with random margins, given mild lighting fall-off and sensor noise, then encoded as
JPEG (quality 55-95), PNG (some with a transparent background), WebP, BMP, GIF or TIFF. The
bytes go through the same path as `fashion-cnn predict` (decode -> preprocess -> model).
Reported: clean accuracy, photo accuracy, the gap, and the photo accuracy per format and per
enlargement. The photos are seeded, so every model is scored on the same set.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import common
import numpy as np
from PIL import Image

from fashion_cnn.evaluate import predict_logits
from fashion_cnn.predict import Classifier
from fashion_cnn.preprocess import PreprocessConfig
from fashion_cnn.training import split_indices

FORMATS = ["JPEG"] * 10 + ["PNG"] * 3 + ["PNG-alpha", "WEBP", "WEBP", "BMP", "GIF", "TIFF"]
FILTERS = [Image.Resampling.BICUBIC, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS]


def photo_style(x: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str, int]:
    """28x28 dataset image -> (encoded photo, format name, enlargement factor)."""
    scale = int(rng.integers(4, 17))
    size = 28 * scale
    ink = np.asarray(Image.fromarray(x).resize((size, size), FILTERS[rng.integers(3)]),
                     np.float32)[..., None] / 255.0  # [size, size, 1], 1 = article
    background = rng.uniform(215, 255, 3) * rng.uniform(0.97, 1.0)
    if rng.random() < 0.5:
        colour = rng.uniform(0, 110, 3)  # dark, near-neutral article
    else:
        colour = rng.uniform(0, 200, 3) * np.eye(3)[rng.integers(3)] + rng.uniform(0, 60, 3)
    margins = rng.uniform(0.1, 0.8, 4) * size  # left, top, right, bottom
    width, height = int(size + margins[0] + margins[2]), int(size + margins[1] + margins[3])
    canvas = np.zeros((height, width, 1), np.float32)
    left, top = int(margins[0]), int(margins[1])
    canvas[top:top + size, left:left + size] = ink
    photo = background * (1 - canvas) + colour * canvas
    fall_off = 1 - rng.uniform(0, 0.04) * np.linspace(0, 1, width)[None, :, None]  # lighting
    photo = photo * fall_off + rng.normal(0, rng.uniform(0, 4), photo.shape)
    img = Image.fromarray(photo.clip(0, 255).astype(np.uint8))

    fmt = FORMATS[rng.integers(len(FORMATS))]
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=int(rng.integers(55, 96)))
    elif fmt == "PNG-alpha":  # the article cut out on a transparent background
        alpha = Image.fromarray((canvas[..., 0] * 255).clip(0, 255).astype(np.uint8))
        rgba = img.convert("RGBA")
        rgba.putalpha(alpha.point(lambda a: 255 if a > 8 else 0))
        rgba.save(buf, "PNG")
    elif fmt == "GIF":
        img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(buf, "GIF")
    else:
        img.save(buf, fmt)
    return buf.getvalue(), fmt, scale


def override(config: PreprocessConfig, settings: list[str]) -> PreprocessConfig:
    """Apply KEY=VALUE overrides (typed like the field they replace)."""
    changes = {}
    for item in settings:
        key, _, value = item.partition("=")
        current = getattr(config, key)
        changes[key] = (value.lower() in ("1", "true", "yes") if isinstance(current, bool)
                        else type(current)(value))
    return replace(config, **changes)


def examples_figure(classifier: Classifier, photos: list, labels, path: Path) -> None:
    """Top row: the photos; bottom row: the 28x28 input the model saw, with its answer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fashion_cnn.data import CLASS_NAMES
    from fashion_cnn.files import save_figure

    results = classifier.classify([p[0] for p in photos])
    fig, axes = plt.subplots(2, len(photos), figsize=(2 * len(photos), 4.4))
    for k, (r, (_, fmt, _), y) in enumerate(zip(results, photos, labels, strict=True)):
        axes[0, k].imshow(r.input.original)
        axes[0, k].set_title(fmt, fontsize=9)
        axes[1, k].imshow(r.input.image, cmap="gray", vmin=0, vmax=255)
        ok = "" if r.index == int(y) else f" (true: {CLASS_NAMES[int(y)]})"
        axes[1, k].set_title(f"{r.label}{ok}", fontsize=8, color="k" if not ok else "r")
    for ax in axes.flat:
        ax.axis("off")
    save_figure(fig, path)


def main() -> None:
    parser = common.parser(__doc__, None)
    parser.add_argument("--model", default=None, help="checkpoint or shipped name")
    parser.add_argument("--n", type=int, default=10_000, help="test images to use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=["test", "val"], default="test",
                        help="val: the model's own validation split of the training set, for "
                        "making choices; test: the official test set, for reporting")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preprocessing setting, e.g. --set stretch=false")
    parser.add_argument("--write", type=Path, help="also save the photos in this folder")
    parser.add_argument("--examples", type=Path, help="PNG: 8 photos and what the model saw")
    args = parser.parse_args()

    data = common.load_data(args)
    classifier = Classifier(args.model)
    classifier.config = override(classifier.config, args.set)
    if args.split == "val":
        config = classifier.meta["config"]
        _, val = split_indices(len(data.train_labels), config["val_fraction"], config["seed"])
        images, labels = data.train_images[val][: args.n], data.train_labels[val][: args.n]
    else:
        images, labels = data.test_images[: args.n], data.test_labels[: args.n]
    name = args.model or classifier.meta["arch"]
    clean = (predict_logits(classifier.net, images).argmax(1) == labels).float().mean().item()

    rng = np.random.default_rng(args.seed)
    photos = [photo_style(x.numpy(), rng) for x in images]
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for i, (blob, fmt, _) in enumerate(photos):
            suffix = {"PNG-alpha": "png", "JPEG": "jpg"}.get(fmt, fmt.lower())
            (args.write / f"{i:05d}-{labels[i]}.{suffix}").write_bytes(blob)

    start = time.perf_counter()
    predictions = classifier.classify([p[0] for p in photos], [str(i) for i in range(len(photos))],
                                      keep_inputs=False)
    seconds = time.perf_counter() - start
    right = [p.index == int(y) for p, y in zip(predictions, labels, strict=True)]
    by_format, by_scale = defaultdict(list), defaultdict(list)
    for ok, (_, fmt, scale) in zip(right, photos, strict=True):
        by_format[fmt].append(ok)
        by_scale[f"{4 * ((scale - 4) // 4) + 4}-{4 * ((scale - 4) // 4) + 7}x"].append(ok)
    photo = statistics.mean(right)
    result = {
        "model": name, "checkpoint": classifier.meta["path"], "split": args.split,
        "preprocessing": classifier.config.to_dict(),
        "n_images": len(photos),
        "clean_accuracy": clean, "photo_accuracy": photo, "gap_points": 100 * (clean - photo),
        "errors": sum(p.error is not None for p in predictions),
        "photo_accuracy_by_format": {k: statistics.mean(v) for k, v in sorted(by_format.items())},
        "photo_accuracy_by_enlargement": {k: statistics.mean(v)
                                          for k, v in sorted(by_scale.items())},
        "seconds_per_photo": seconds / len(photos),
    }
    if args.examples:
        examples_figure(classifier, photos[:8], labels[:8], args.examples)
    out = args.out or common.RESULTS / f"photo_accuracy_{Path(name).stem}_{args.split}.json"
    common.write_result(out, result, seed=args.seed, checksums=data.checksums)
    print(f"{name} ({args.split}): clean {100 * clean:.2f}%, photo-style {100 * photo:.2f}% "
          f"(gap {result['gap_points']:.2f} points) on {len(photos):,} images -> {out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
