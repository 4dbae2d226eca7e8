"""Benchmark: accuracy on "product photos" made from the official test images, next to clean.

    python benchmarks/photo_accuracy.py [--model seed] [--n 10000] [--seed 0] [--hard]
        [--split test|val] [--write DIR] [--examples PNG] [--set KEY=VALUE]
        [--out benchmarks/results/photo_accuracy[_hard]_<model>_<split>.json] [--data-dir DIR]

Each test image is turned back into a shop-style photo by `photo_style`: negated to a coloured
article on a light, slightly tinted background, enlarged 4-16x with a random filter, placed
off-centre with random margins, given mild lighting fall-off and sensor noise, then encoded as
JPEG (quality 55-95), PNG (some with a transparent background), WebP, BMP, GIF or TIFF. The
bytes go through the same path as `fashion-cnn predict` (decode -> preprocess -> model).
Reported: clean accuracy, photo accuracy, the gap, and the photo accuracy per format and per
enlargement. The photos are seeded, so every model is scored on the same set.

That set is easy: an enlarged 28x28 image on an even background, which the conversion can
all but invert. `--hard` renders `hard_photo` instead: the scene is drawn large (the article
smoothly enlarged, softened, dyed plain, striped or checked; a tinted 80-100% grey backdrop
of paper, fabric or wood; a soft drop shadow; 5-20% uneven light; random place and size),
then shrunk by area averaging to a 300-1200 px photo, blurred, given sensor noise and saved
as JPEG, PNG or WebP. Its result adds the accuracy per background, pattern, light gradient,
blur, backdrop grey and photo size, and how many photos each of those has.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path

import common
import numpy as np
import torch
from PIL import Image, ImageFilter

from fashion_cnn.data import FashionMNIST
from fashion_cnn.evaluate import predict_logits
from fashion_cnn.predict import Classifier
from fashion_cnn.preprocess import PreprocessConfig
from fashion_cnn.training import split_indices

FORMATS = ["JPEG"] * 10 + ["PNG"] * 3 + ["PNG-alpha", "WEBP", "WEBP", "BMP", "GIF", "TIFF"]
FILTERS = [Image.Resampling.BICUBIC, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS]


def photo_style(x: np.ndarray, rng: np.random.Generator) -> tuple[bytes, dict[str, str]]:
    """28x28 dataset image -> (encoded photo, its format and enlargement bin)."""
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
    low = 4 * ((scale - 4) // 4) + 4
    return buf.getvalue(), {"format": fmt, "enlargement": f"{low}-{low + 3}x"}


# ---------------------------------------------------------------------------------------------
# The hard set (--hard): a scene rendered large, then shrunk like a camera picture

HARD_FORMATS = ["JPEG"] * 6 + ["PNG"] * 2 + ["WEBP"] * 2
BACKGROUNDS = ["plain", "paper", "fabric", "wood"]
PATTERNS = ["solid", "solid", "stripes", "checks"]
MAX_RENDER = 1600  # longest side of the scene before it is shrunk to the photo's size


def bin_label(value: float, edges: list[float], unit: str = "") -> str:
    """The bin of `value` among consecutive `edges`, e.g. 0.12 in [0.05, 0.1, 0.15] -> '10-15%'."""
    scale = 100 if unit == "%" else 1
    for lo, hi in pairwise(edges):
        if value < hi:
            return f"{lo * scale:g}-{hi * scale:g}{unit}"
    return f"{edges[-2] * scale:g}-{edges[-1] * scale:g}{unit}"


def grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """float32 row and column coordinates, [H, 1] and [1, W], for broadcasting."""
    return (np.arange(shape[0], dtype=np.float32)[:, None],
            np.arange(shape[1], dtype=np.float32)[None, :])


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """float32 noise of about unit spread that varies over `cell` pixels (a coarse random grid,
    bicubic-enlarged to `shape`)."""
    h, w = shape
    coarse = rng.standard_normal((max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)),
                                 dtype=np.float32)
    return np.asarray(Image.fromarray(coarse, "F").resize((w, h), Image.Resampling.BICUBIC))


def fine_noise(rng: np.random.Generator, shape: tuple[int, int], radius: float) -> np.ndarray:
    """float32 per-pixel noise of about unit spread, blurred over `radius` pixels (fibres)."""
    raw = rng.normal(128, 40, shape).clip(0, 255).astype(np.uint8)
    blurred = Image.fromarray(raw).filter(ImageFilter.GaussianBlur(radius))
    out = np.asarray(blurred, np.float32) - 128
    return out / max(float(out.std()), 1e-3)


def surface_texture(kind: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Relative brightness changes [H, W] of a backdrop: paper, fabric weave, wood grain or none."""
    h, w = shape
    ys, xs = grid(shape)
    if kind == "paper":  # blotches and fibres
        return (rng.uniform(0.01, 0.03) * smooth_noise(rng, shape, max(h, w) / 12)
                + rng.uniform(0.01, 0.03) * fine_noise(rng, shape, 1.0))
    if kind == "fabric":  # a weave a few pixels across, unevenly dyed
        period = rng.uniform(3, 9)
        weave = np.sin(2 * np.pi * xs / period) * np.sin(2 * np.pi * ys / period)
        return rng.uniform(0.02, 0.05) * (weave + 0.5 * smooth_noise(rng, shape, period * 6))
    if kind == "wood":  # grain: stripes along one axis, warped
        angle = rng.uniform(0, np.pi)
        across = (xs * np.cos(angle) + ys * np.sin(angle)) / rng.uniform(12, 50)
        warp = 1.5 * smooth_noise(rng, shape, max(h, w) / 4)
        grain = np.sin(2 * np.pi * (across + warp))
        return rng.uniform(0.03, 0.07) * (0.7 * grain + 0.3 * fine_noise(rng, shape, 1.5))
    return np.zeros(shape, np.float32)


def lighting(rng: np.random.Generator, shape: tuple[int, int], strength: float) -> np.ndarray:
    """Light falling off by `strength` (0.1: the darkest spot gets 10% less) across the scene:
    a linear gradient in a random direction or, one time in three, a spotlight."""
    h, w = shape
    ys, xs = grid(shape)
    if rng.random() < 1 / 3:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.sqrt(((xs - cx) / w) ** 2 + ((ys - cy) / h) ** 2)
    else:
        angle = rng.uniform(0, 2 * np.pi)
        t = xs * np.cos(angle) + ys * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return (1 - np.float32(strength) * t).astype(np.float32)[..., None]


def garment_colours(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """RGB [size, size, 3] of the cloth: one colour, stripes or checks in two shades."""
    if rng.random() < 0.5:
        base = rng.uniform(0, 110, 3)  # dark, near-neutral
    else:
        base = rng.uniform(0, 200, 3) * np.eye(3)[rng.integers(3)] + rng.uniform(0, 60, 3)
    second = (base * rng.uniform(0.4, 0.8) if rng.random() < 0.5
              else base + (255 - base) * rng.uniform(0.3, 0.7))
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    ys, xs = grid((size, size))
    period = size * rng.uniform(0.03, 0.1)
    if pattern == "stripes":
        angle = rng.choice([0, np.pi / 2, np.pi / 4])
        mask = stripe(xs * np.cos(angle) + ys * np.sin(angle), period)
    elif pattern == "checks":
        mask = (stripe(xs, period) + stripe(ys, period)) / 2
    else:
        mask = np.zeros((size, size), np.float32)
    cloth = base * (1 - mask[..., None]) + second * mask[..., None]
    return cloth.astype(np.float32), pattern


def stripe(position: np.ndarray, period: float) -> np.ndarray:
    """0/1 bands `period` pixels apart along `position`, with soft (anti-aliased) edges."""
    return np.clip(np.sin(2 * np.pi * position / period) * 4 + 0.5, 0, 1).astype(np.float32)


def article_layers(x: np.ndarray, size: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """28x28 image -> (coverage [size, size] in 0..1, silhouette [size, size] uint8) at the
    render size: enlarged smoothly (bicubic or Lanczos), edges softened, tone curve bent."""
    method = [Image.Resampling.BICUBIC, Image.Resampling.LANCZOS][rng.integers(2)]
    big = Image.fromarray(x).resize((size, size), method)
    big = big.filter(ImageFilter.GaussianBlur(size / 28 * rng.uniform(0.25, 0.6)))
    ink = np.asarray(big, np.float32) / 255
    coverage = ink ** rng.uniform(0.8, 1.25)
    silhouette = ((ink > 0.08) * 255).astype(np.uint8)
    return coverage, silhouette


def drop_shadow(silhouette: np.ndarray, shape: tuple[int, int], corner: tuple[int, int],
                rng: np.random.Generator) -> np.ndarray:
    """Shade [H, W] in 0..1 (1: full light) of a soft shadow cast by the article, offset
    down and sideways; drawn at a quarter of the size (it is blurry anyway) and enlarged."""
    h, w = shape
    size = silhouette.shape[0]
    small = Image.new("L", (max(1, w // 4), max(1, h // 4)))
    offset = rng.uniform(-0.03, 0.05, 2) * size
    mask = Image.fromarray(silhouette).resize((max(1, size // 4),) * 2, Image.Resampling.BOX)
    small.paste(mask, (int((corner[0] + offset[0]) / 4), int((corner[1] + offset[1]) / 4)))
    small = small.filter(ImageFilter.GaussianBlur(size * rng.uniform(0.01, 0.04)))
    shadow = np.asarray(small.resize((w, h), Image.Resampling.BILINEAR), np.float32) / 255
    return 1 - np.float32(rng.uniform(0.08, 0.3)) * shadow


def encode_hard(img: Image.Image, rng: np.random.Generator) -> tuple[bytes, str]:
    """The photo as JPEG (quality 50-95), PNG or WebP (quality 60-95)."""
    fmt = HARD_FORMATS[rng.integers(len(HARD_FORMATS))]
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=int(rng.integers(50, 96)))
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=int(rng.integers(60, 96)))
    else:
        img.save(buf, "PNG", compress_level=1)  # the same pixels as level 6, sooner
    return buf.getvalue(), fmt


def hard_photo(x: np.ndarray, rng: np.random.Generator) -> tuple[bytes, dict[str, str]]:
    """28x28 dataset image -> (encoded photo, its conditions), the hard way.

    The scene is rendered at up to MAX_RENDER pixels: the article enlarged smoothly and dyed
    (solid, stripes or checks), on an off-white to mid-grey tinted backdrop (80-100% grey) with
    a paper, fabric or wood texture, a soft drop shadow and 5-20% uneven light, at a random
    place and size; then an area-averaging shrink by 1.3-2.2x to a 300-1200 px photo, camera
    blur, sensor noise and a lossy or lossless encoding.
    """
    long_side = int(rng.integers(300, 1201))
    shrink = min(rng.uniform(1.3, 2.2), MAX_RENDER / long_side)
    aspect = rng.uniform(0.67, 1.5)  # width / height
    out = ((long_side, round(long_side / aspect)) if aspect >= 1
           else (round(long_side * aspect), long_side))
    w, h = round(out[0] * shrink), round(out[1] * shrink)

    grey, kind = rng.uniform(0.8, 1.0), BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    backdrop = (255 * grey * (1 + rng.uniform(-0.05, 0.05, 3))).astype(np.float32)  # tinted
    surface = 1 + surface_texture(kind, rng, (h, w)).astype(np.float32)

    size = int(min(w, h) * rng.uniform(0.45, 0.85))
    margin = int(0.03 * min(w, h))
    left = int(rng.integers(margin, w - size - margin + 1))
    top = int(rng.integers(margin, h - size - margin + 1))
    coverage, silhouette = article_layers(x, size, rng)
    surface *= drop_shadow(silhouette, (h, w), (left, top), rng)
    scene = surface[..., None] * backdrop
    cloth, pattern = garment_colours(rng, size)
    box = scene[top:top + size, left:left + size]
    a = coverage[..., None]
    scene[top:top + size, left:left + size] = box * (1 - a) + cloth * a

    gradient = rng.uniform(0.05, 0.2)
    scene *= lighting(rng, (h, w), gradient)
    img = Image.fromarray(scene.clip(0, 255).astype(np.uint8)).resize(out, Image.Resampling.BOX)
    blur = rng.uniform(0, 2.0)  # camera blur, in photo pixels
    if blur > 0.1:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    noise = np.float32(rng.uniform(1, 6))  # sensor noise: grey and per-channel parts
    pixels = (np.asarray(img, np.float32)
              + noise * rng.standard_normal((out[1], out[0], 1), np.float32)
              + noise / 2 * rng.standard_normal((out[1], out[0], 3), np.float32))
    blob, fmt = encode_hard(Image.fromarray(pixels.clip(0, 255).astype(np.uint8)), rng)
    return blob, {
        "format": fmt, "background": kind, "pattern": pattern,
        "gradient": bin_label(gradient, [0.05, 0.1, 0.15, 0.2], "%"),
        "blur": bin_label(blur, [0, 0.5, 1, 1.5, 2], " px"),
        "grey": bin_label(grey, [0.8, 0.9, 1.0], "%"),
        "size": bin_label(long_side, [300, 600, 900, 1200], " px"),
    }


def override(config: PreprocessConfig, settings: list[str]) -> PreprocessConfig:
    """Apply KEY=VALUE overrides (typed like the field they replace)."""
    changes = {}
    for item in settings:
        key, _, value = item.partition("=")
        current = getattr(config, key)
        changes[key] = (value.lower() in ("1", "true", "yes") if isinstance(current, bool)
                        else type(current)(value))
    return replace(config, **changes)


def examples_figure(classifier: Classifier, photos: list[tuple[bytes, dict[str, str]]],
                    labels: np.ndarray, path: Path, hard: bool = False) -> None:
    """Top row: the photos; bottom row: the 28x28 input the model saw, with its answer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fashion_cnn.data import CLASS_NAMES
    from fashion_cnn.files import save_figure

    results = classifier.classify([blob for blob, _ in photos])
    fig, axes = plt.subplots(2, len(photos), figsize=(2 * len(photos), 4.4))
    for k, (r, (_, cond), y) in enumerate(zip(results, photos, labels, strict=True)):
        axes[0, k].imshow(r.input.original)
        title = f"{cond['format']}, {cond['background']}" if hard else cond["format"]
        axes[0, k].set_title(title, fontsize=9)
        axes[1, k].imshow(r.input.image, cmap="gray", vmin=0, vmax=255)
        ok = "" if r.index == int(y) else f" (true: {CLASS_NAMES[int(y)]})"
        axes[1, k].set_title(f"{r.label}{ok}", fontsize=8, color="k" if not ok else "r")
    for ax in axes.flat:
        ax.axis("off")
    save_figure(fig, path)


Render = Callable[[np.ndarray, np.random.Generator], tuple[bytes, dict[str, str]]]


@dataclass
class PhotoStream:
    """Photos rendered one at a time as the classifier reads them (so thousands of large
    photos never sit in memory together), with each one's conditions kept, the first few
    kept whole for the figure, and all saved to `write` if given."""

    render: Render
    rng: np.random.Generator
    write: Path | None = None
    keep: int = 8
    conditions: list[dict[str, str]] = field(default_factory=list)
    first: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    render_seconds: float = 0.0

    def photos(self, images: torch.Tensor, labels: torch.Tensor) -> Iterator[bytes]:
        """The encoded photos of `images`, in order."""
        for i, x in enumerate(images):
            start = time.perf_counter()
            blob, cond = self.render(x.numpy(), self.rng)
            self.render_seconds += time.perf_counter() - start
            self.conditions.append(cond)
            if len(self.first) < self.keep:
                self.first.append((blob, cond))
            if self.write:
                suffix = {"PNG-alpha": "png", "JPEG": "jpg"}.get(cond["format"],
                                                                 cond["format"].lower())
                (self.write / f"{i:05d}-{int(labels[i])}.{suffix}").write_bytes(blob)
            yield blob


def by_condition(right: list[bool], conditions: list[dict[str, str]]
                 ) -> dict[str, dict[str, list[bool]]]:
    """Right/wrong answers grouped by each condition and its value, values in name order."""
    groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for ok, cond in zip(right, conditions, strict=True):
        for key, value in cond.items():
            groups[key][value].append(ok)
    return {key: dict(sorted(values.items())) for key, values in groups.items()}


def evaluation_set(data: FashionMNIST, classifier: Classifier, split: str, n: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n images and labels of the test set or of the model's own validation split."""
    if split == "val":
        config = classifier.meta["config"]
        _, val = split_indices(len(data.train_labels), config["val_fraction"], config["seed"])
        return data.train_images[val][:n], data.train_labels[val][:n]
    return data.test_images[:n], data.test_labels[:n]


def parse_args() -> argparse.Namespace:
    parser = common.parser(__doc__, None)
    parser.add_argument("--model", default=None, help="checkpoint or shipped name")
    parser.add_argument("--n", type=int, default=10_000, help="test images to use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=["test", "val"], default="test",
                        help="val: the model's own validation split of the training set, for "
                        "making choices; test: the official test set, for reporting")
    parser.add_argument("--hard", action="store_true",
                        help="the hard set: rendered large and shrunk, textured backdrops, "
                        "uneven light, shadows, blur (see hard_photo)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preprocessing setting, e.g. --set stretch=false")
    parser.add_argument("--write", type=Path, help="also save the photos in this folder")
    parser.add_argument("--examples", type=Path, help="PNG: 8 photos and what the model saw")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    data = common.load_data(args)
    classifier = Classifier(args.model)
    classifier.config = override(classifier.config, args.set)
    images, labels = evaluation_set(data, classifier, args.split, args.n)
    name = args.model or classifier.meta["arch"]
    clean = (predict_logits(classifier.net, images).argmax(1) == labels).float().mean().item()

    stream = PhotoStream(hard_photo if args.hard else photo_style,
                         np.random.default_rng(args.seed), args.write)
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    predictions = list(classifier.iter_classify(stream.photos(images, labels),
                                                [str(i) for i in range(len(images))]))
    seconds = time.perf_counter() - start - stream.render_seconds
    right = [p.index == int(y) for p, y in zip(predictions, labels, strict=True)]
    groups = by_condition(right, stream.conditions)
    photo = statistics.mean(right)
    result = {
        "model": name, "checkpoint": classifier.meta["path"], "split": args.split,
        "preprocessing": classifier.config.to_dict(),
        "n_images": len(right),
        "clean_accuracy": clean, "photo_accuracy": photo, "gap_points": 100 * (clean - photo),
        "errors": sum(p.error is not None for p in predictions),
        **{f"photo_accuracy_by_{key}": {k: statistics.mean(v) for k, v in values.items()}
           for key, values in groups.items()},
        "seconds_per_photo": seconds / len(right),
    }
    if args.hard:
        result = {"set": "hard", **result,
                  "photos_by_condition": {key: {k: len(v) for k, v in values.items()}
                                          for key, values in groups.items()}}
    if args.examples:
        examples_figure(classifier, stream.first, labels[:stream.keep], args.examples, args.hard)
    stem = f"photo_accuracy{'_hard' if args.hard else ''}_{Path(name).stem}_{args.split}"
    out = args.out or common.RESULTS / f"{stem}.json"
    common.write_result(out, result, seed=args.seed, checksums=data.checksums)
    print(f"{name} ({args.split}{', hard' if args.hard else ''}): clean {100 * clean:.2f}%, "
          f"photo-style {100 * photo:.2f}% (gap {result['gap_points']:.2f} points) on "
          f"{len(right):,} images -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
