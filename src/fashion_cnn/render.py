"""Synthetic photos of Fashion-MNIST images, made hard: what a phone photo does to a garment.

`hard_photo` renders a 28x28 dataset image as a photo: the scene drawn large (the article
smoothly enlarged, softened, dyed plain, striped or checked; a tinted 80-100% grey backdrop of
paper, fabric or wood; a soft drop shadow; 5-20% uneven light; random place and size), then
shrunk by area averaging to a 300-1200 px photo, blurred, given sensor noise and saved as JPEG,
PNG or WebP. Nothing in it can be inverted by the preprocessing: the article's own grey levels
survive only as how much of the dye covers the backdrop.

Two users: `benchmarks/photo_accuracy.py --hard` scores a model on such photos of the test set
(or the validation split), and on their articles alone (`article_alone`: how much of the gap
is the article's rendering rather than the room), and training (`--synthetic N`,
`training.run.training_set`) adds photos of N training images, rendered smaller
(`TRAINING_SIZES`: the preprocessing works on a copy a few hundred pixels across anyway) and
converted by the model's preprocessing.
"""

from __future__ import annotations

import io
from concurrent.futures import ProcessPoolExecutor
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from tqdm import tqdm

from . import preprocess as preprocess_module
from .data import CACHE_ROOT
from .files import cached_tensor, content_key
from .preprocess import PreprocessConfig, bounding_box, fit_centred, model_input

HARD_FORMATS = ["JPEG"] * 6 + ["PNG"] * 2 + ["WEBP"] * 2
BACKGROUNDS = ["plain", "paper", "fabric", "wood"]
PATTERNS = ["solid", "solid", "stripes", "checks"]
MAX_RENDER = 1600  # longest side of the scene before it is shrunk to the photo's size
PHOTO_SIZES = (300, 1200)  # the photo's long side, px (the benchmark's range)
TRAINING_SIZES = (160, 420)  # for training: the preprocessing shrinks photos to about 256 px
# and finds the garment on a 96 px copy, so larger renders would only cost time


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


ARTICLE_ALONE_SIZES = (150, 600)  # px: the article's side in `article_alone`'s scene


def article_alone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28x28 dataset image -> uint8 [28, 28]: the article as `hard_photo` draws it (enlarged,
    softened, tone curve bent: `article_layers`), cropped to its silhouette and area-shrunk to
    28 px with nothing else of a photo: no dye, backdrop, light, shadow, camera or cut-out.
    A model's loss on these is the article rendering's share of the hard set's gap."""
    coverage, silhouette = article_layers(x, int(rng.integers(*ARTICLE_ALONE_SIZES)), rng)
    if not silhouette.any():
        return np.zeros_like(x)
    return fit_centred(255 * coverage[bounding_box(silhouette > 0)], x.shape[0])


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


def hard_photo(x: np.ndarray, rng: np.random.Generator, sizes: tuple[int, int] = PHOTO_SIZES
               ) -> tuple[bytes, dict[str, str]]:
    """28x28 dataset image -> (encoded photo, its conditions), the hard way.

    The scene is rendered at up to MAX_RENDER pixels: the article enlarged smoothly and dyed
    (solid, stripes or checks), on an off-white to mid-grey tinted backdrop (80-100% grey) with
    a paper, fabric or wood texture, a soft drop shadow and 5-20% uneven light, at a random
    place and size; then an area-averaging shrink by 1.3-2.2x to a photo `sizes` px on its
    long side (300-1200), camera blur, sensor noise and a lossy or lossless encoding.
    """
    long_side = int(rng.integers(sizes[0], sizes[1] + 1))
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


# ---------------------------------------------------------------------------------------------
# A training set of such photos, as the model will see them (rendered, then preprocessed)

CACHE_DIR = CACHE_ROOT / "synthetic"
CHUNK = 200  # images per task handed to a worker process


def synthetic_photos(images: torch.Tensor, seed: int, config: PreprocessConfig | None = None,
                     cache_dir: Path | None = CACHE_DIR, workers: int = 2,
                     progress: bool = True,
                     sizes: tuple[int, int] = TRAINING_SIZES) -> torch.Tensor:
    """uint8 [N, 28, 28] dataset images -> uint8 [N, size, size]: each rendered as a hard photo
    (`sizes` px on its long side) and converted by `preprocess`, exactly as `predict` would
    see it.

    Image i's photo depends only on (seed, i), so the result does not depend on `workers`.
    Cached under `cache_dir` by the images, seed, settings and this code (render.py and
    preprocess.py); `cache_dir=None` never caches."""
    config = config or PreprocessConfig()
    x = np.ascontiguousarray(images.numpy())
    cache = (None if cache_dir is None
             else Path(cache_dir) / f"{_cache_key(x, seed, config, sizes)}.pt")
    return cached_tensor(cache, lambda: _render_all(x, seed, config, sizes, workers, progress))


def _render_all(x: np.ndarray, seed: int, config: PreprocessConfig, sizes: tuple[int, int],
                workers: int, progress: bool) -> torch.Tensor:
    """uint8 [N, 28, 28] images -> their synthetic photos as model inputs, in worker processes."""
    chunks = [(x[i:i + CHUNK], seed, i, config, sizes) for i in range(0, len(x), CHUNK)]
    # Linux forks the workers (no re-import of the caller's script); they use numpy, Pillow
    # and OpenCV only, never torch's thread pool
    with ProcessPoolExecutor(workers) as pool, tqdm(
            total=len(x), desc="synthetic photos", unit="photo", disable=not progress,
            leave=False) as bar:
        parts = []
        for part in pool.map(_render_chunk, chunks):
            parts.append(part)
            bar.update(len(part))
    return torch.from_numpy(np.concatenate(parts) if parts else x.copy())


def _render_chunk(task: tuple[np.ndarray, int, int, PreprocessConfig, tuple[int, int]]
                  ) -> np.ndarray:
    """A worker's share: images [n, 28, 28] starting at index `start` -> model inputs."""
    images, seed, start, config, sizes = task
    out = np.zeros((len(images), config.size, config.size), np.uint8)
    for j, x in enumerate(images):
        blob, _ = hard_photo(x, np.random.default_rng([seed, start + j]), sizes)
        out[j] = model_input(blob, config)
    return out


def _cache_key(images: np.ndarray, seed: int, config: PreprocessConfig,
               sizes: tuple[int, int]) -> str:
    return content_key(images.tobytes(), [seed, config.to_dict(), list(sizes)],
                       (__file__, preprocess_module.__file__))
