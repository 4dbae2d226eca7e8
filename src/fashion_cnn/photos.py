"""Real phone photos of clothes (the "clothing dataset (subset)"), as the project uses them.

The photos live in `../shared/datasets/clothing-dataset-small` (or `$CLOTHING_PHOTOS_DIR`):
`train/` and `validation/`, one folder per label, and `SHA256SUMS` listing every file. Each
folder maps to a label *code*:

- 0..9: the one Fashion-MNIST class the folder is (t-shirt, pants, dress, outwear, shirt);
- 10, 11: a set of classes, any of which is right (longsleeve, shoes);
- 12: none of the 10 classes (hat, shorts, skirt): the model should say "not mine".

`LABEL_SETS[code]` is the row of classes that count as right for a code. Scoring
(`score_photos`) reports the three numbers every result uses: strict accuracy (single-class
folders), lenient accuracy (all in-class folders, sets counted), and the AUROC of the
in-class score between in-class and out-of-class folders; plus a per-folder table and the
operating point that keeps 95% of in-class pictures.

`load_photos` turns a split into model inputs through `fashion_cnn.preprocess.preprocess`
(exactly what `predict` feeds the model) and caches them, keyed by the preprocessing.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance

from . import preprocess as preprocess_module
from .data import CACHE_ROOT, CLASS_NAMES
from .errors import FashionCNNError
from .files import cached_tensor, content_key, file_sha256
from .preprocess import PreprocessConfig, decode_image, model_input

# ---------------------------------------------------------------------------------------------
# The dataset's facts, in one place.

ENV_DIR = "CLOTHING_PHOTOS_DIR"
RELATIVE_DIR = Path("..") / "shared" / "datasets" / "clothing-dataset-small"
REPO_DIR = Path(__file__).resolve().parents[2]  # the checkout, when installed in editable mode
CACHE_DIR = CACHE_ROOT / "photos"
SUMS_FILE = "SHA256SUMS"
SPLITS = ("train", "validation")
EXPECTED_COUNTS = {"train": 3068, "validation": 341}  # checked when SHA256SUMS is absent

SET_LONGSLEEVE, SET_SHOES, OUT_OF_CLASS = 10, 11, 12
N_CODES = 13
FOLDER_CODES: dict[str, int] = {
    "t-shirt": 0, "pants": 1, "dress": 3, "outwear": 4, "shirt": 6,
    "longsleeve": SET_LONGSLEEVE, "shoes": SET_SHOES,
    "hat": OUT_OF_CLASS, "shorts": OUT_OF_CLASS, "skirt": OUT_OF_CLASS,
}
CODE_CLASSES: dict[int, tuple[int, ...]] = {  # the classes that count as right, per code
    **{c: (c,) for c in range(len(CLASS_NAMES))},
    SET_LONGSLEEVE: (0, 2, 6),  # T-shirt/top, Pullover, Shirt
    SET_SHOES: (5, 7, 9),  # Sandal, Sneaker, Ankle boot
    OUT_OF_CLASS: (),
}
STRICT_FOLDERS = tuple(f for f, c in FOLDER_CODES.items() if c < len(CLASS_NAMES))
IN_CLASS_FOLDERS = tuple(f for f, c in FOLDER_CODES.items() if c != OUT_OF_CLASS)
OUT_OF_CLASS_FOLDERS = tuple(f for f, c in FOLDER_CODES.items() if c == OUT_OF_CLASS)


def _label_sets() -> torch.Tensor:
    sets = torch.zeros(N_CODES, len(CLASS_NAMES), dtype=torch.bool)
    for code, classes in CODE_CLASSES.items():
        sets[code, list(classes)] = True
    return sets


LABEL_SETS = _label_sets()  # bool [13, 10]: row = code, True where a class counts as right
KEEP_IN_CLASS = 0.95  # the operating point keeps this share of in-class pictures
# A photo retaken (`photo_view`): the phone turned by up to this many degrees, up to this share
# of the width and of the height cut off (the benchmark's retaken photos; training views take
# TrainConfig.photo_crop), light, contrast and colour changed by up to this share
TURN_DEGREES, CROP, LIGHT = 10.0, 0.1, 0.25


# ---------------------------------------------------------------------------------------------
# Finding and listing the photos


def find_photos_dir() -> Path:
    """$CLOTHING_PHOTOS_DIR, else ../shared/datasets/clothing-dataset-small beside the current
    directory or the repository; raises FashionCNNError saying what to set."""
    if value := os.environ.get(ENV_DIR):
        directory = Path(value).expanduser()
        if not all((directory / split).is_dir() for split in SPLITS):
            raise FashionCNNError(f"${ENV_DIR} points to {directory}, which lacks "
                                  f"{' and '.join(SPLITS)} folders. Point it to the "
                                  "clothing-dataset-small folder.")
        return directory
    candidates = [Path.cwd() / RELATIVE_DIR, REPO_DIR / RELATIVE_DIR]
    for directory in candidates:
        if all((directory / split).is_dir() for split in SPLITS):
            return directory.resolve()
    raise FashionCNNError(f"The clothing photos were not found (looked in ${ENV_DIR}, "
                          f"{', '.join(str(c) for c in candidates)}). Set {ENV_DIR} to the "
                          "clothing-dataset-small folder (with train/ and validation/).")


def _listed_sums(root: Path, split: str) -> dict[str, str] | None:
    """relative path -> SHA-256 for the split's files in SHA256SUMS (None: no such file)."""
    sums = root / SUMS_FILE
    if not sums.is_file():
        return None
    listed = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if name.startswith(f"{split}/"):
            listed[name] = digest
    return listed


def _files_on_disk(root: Path, split: str) -> list[tuple[Path, str]]:
    """(path, folder) of every non-hidden file in the split's label folders, sorted."""
    base = root / split
    if not base.is_dir():
        raise FashionCNNError(f"{base} does not exist; splits here are {', '.join(SPLITS)}.")
    found = []
    for folder in sorted(p.name for p in base.iterdir() if p.is_dir()):
        if folder not in FOLDER_CODES:
            raise FashionCNNError(f"{base / folder} is not a known label folder; expected "
                                  f"{', '.join(FOLDER_CODES)}.")
        found += [(f, folder) for f in sorted((base / folder).iterdir())
                  if f.is_file() and not f.name.startswith(".")]
    return found


def list_photos(root: Path, split: str, verify: bool = True) -> list[tuple[Path, str]]:
    """(path, folder) of every photo of a split, sorted; checked against SHA256SUMS (every
    file listed, present and with its hash) or, without that file, against the known count."""
    photos = _files_on_disk(root, split)
    if not verify:
        return photos
    listed = _listed_sums(root, split)
    if listed is None:
        expected = EXPECTED_COUNTS.get(split)
        if expected is not None and len(photos) != expected:
            raise FashionCNNError(f"{root / split} holds {len(photos)} photos, expected "
                                  f"{expected}; re-copy the clothing-dataset-small folder.")
        return photos
    on_disk = {_relative(root, p): p for p, _ in photos}
    problems = sorted(set(listed) ^ set(on_disk))
    problems += [n for n in sorted(set(listed) & set(on_disk))
                 if file_sha256(on_disk[n]) != listed[n]]
    if problems:
        raise FashionCNNError(f"{len(problems)} photo(s) of {root / split} do not match "
                              f"{root / SUMS_FILE} (missing, extra or changed), e.g. "
                              f"{', '.join(problems[:3])}; re-copy the folder.")
    return photos


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def checksums_summary(root: Path, split: str, photos: Sequence[tuple[Path, str]]
                      ) -> dict[str, Any]:
    """What a result records about the photos: split, count, and one SHA-256 over the
    `sha256  path` lines of the split's files (the same lines as in SHA256SUMS, whose hashes
    are used when it lists a file: `list_photos` has verified them)."""
    listed = _listed_sums(root, split) or {}
    names = [_relative(root, p) for p, _ in photos]
    lines = "".join(f"{listed.get(n) or file_sha256(p)}  {n}\n"
                    for n, (p, _) in zip(names, photos, strict=True))
    return {"split": split, "photos": len(photos),
            "files_sha256": hashlib.sha256(lines.encode()).hexdigest(),
            "per_folder": dict(sorted(Counter(f for _, f in photos).items()))}


# ---------------------------------------------------------------------------------------------
# Loading as model inputs, cached


@dataclass
class PhotoSet:
    """A split as model inputs: images uint8 [N, 28, 28], codes int64 [N], folder and path
    of each picture, and the checksums summary of the files."""

    images: torch.Tensor
    codes: torch.Tensor
    folders: list[str]
    paths: list[Path]
    checksums: dict[str, Any]


def cache_key(split: str, config: PreprocessConfig, files_sha256: str) -> str:
    """Changes whenever the split's files, the preprocessing settings or the preprocessing
    code change."""
    return content_key(files_sha256.encode(), [split, config.to_dict()],
                       [preprocess_module.__file__])


def load_photos(split: str, config: PreprocessConfig | None = None,
                cache_dir: Path | None = CACHE_DIR, root: Path | None = None,
                progress: bool = True) -> PhotoSet:
    """A split of the photos through `preprocess` (as `predict` does), from the cache when it
    holds this split made with this preprocessing; `cache_dir=None` never caches."""
    config = config or PreprocessConfig()
    root = root or find_photos_dir()
    photos = list_photos(root, split)
    checksums = checksums_summary(root, split, photos)
    cache = None
    if cache_dir is not None:
        key = cache_key(split, config, checksums["files_sha256"])
        cache = Path(cache_dir) / f"{split}-{key}.pt"
    images = cached_tensor(cache, lambda: _preprocess_all([p for p, _ in photos], config, split,
                                                          progress))
    codes = torch.tensor([FOLDER_CODES[f] for _, f in photos], dtype=torch.int64)
    return PhotoSet(images=images, codes=codes, folders=[f for _, f in photos],
                    paths=[p for p, _ in photos], checksums=checksums)


def load_photo_views(photos: PhotoSet, views: int, seed: int, crop: float = CROP,
                     config: PreprocessConfig | None = None, cache_dir: Path | None = CACHE_DIR,
                     workers: int = 2, progress: bool = True) -> torch.Tensor:
    """uint8 [views, N, 28, 28]: each photo of `photos` retaken `views` times (`photo_view`
    with `crop`, view v of photo i seeded by (seed, i, v)) and converted by `preprocess`;
    cached like `load_photos`, keyed also by the seed, the count, the crop and this module's
    code."""
    config = config or PreprocessConfig()
    cache = None
    if cache_dir is not None:
        key = content_key(photos.checksums["files_sha256"].encode(),
                          [photos.checksums["split"], config.to_dict(), seed, views, crop],
                          [preprocess_module.__file__, __file__])
        cache = Path(cache_dir) / f"{photos.checksums['split']}-views-{key}.pt"
    tasks = [(path, i, seed, views, crop, config) for i, path in enumerate(photos.paths)]
    return cached_tensor(cache, lambda: _convert_views(tasks, workers, progress))


def _convert_views(tasks: list[tuple[Path, int, int, int, float, PreprocessConfig]],
                   workers: int, progress: bool) -> torch.Tensor:
    """The views of every photo, in worker processes (forked: Pillow and OpenCV only)."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    with ProcessPoolExecutor(workers) as pool, tqdm(
            total=len(tasks), desc="photo views", unit="photo", disable=not progress,
            leave=False) as bar:
        parts = []
        for part in pool.map(_photo_views, tasks, chunksize=16):
            parts.append(part)
            bar.update()
    return torch.from_numpy(np.stack(parts, axis=1))  # [views, N, 28, 28]


def _photo_views(task: tuple[Path, int, int, int, float, PreprocessConfig]) -> np.ndarray:
    """One photo's views as model inputs, uint8 [views, 28, 28]."""
    path, index, seed, views, crop, config = task
    img = decode_image(path, config.max_pixels, config.work_size)
    return np.stack([model_input(photo_view(img, np.random.default_rng([seed, index, v]), crop),
                                 config) for v in range(views)])


def photo_view(img: Image.Image, rng: np.random.Generator, crop: float = CROP) -> Image.Image:
    """The photo as the phone might have taken it again: turned by up to TURN_DEGREES
    (cropped to the part that holds no fill), then up to `crop` of the width and of the height
    cut off, brighter or darker, more or less contrast and colour (LIGHT). The random draws
    do not depend on `crop`: the same rng gives the same turn and light at any crop."""
    angle = rng.uniform(-TURN_DEGREES, TURN_DEGREES)
    slope = abs(math.tan(math.radians(angle)))
    w, h = img.size
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR)
    inner = (int(h * slope / 2) + 1, int(w * slope / 2) + 1)  # fill-free margin: x, y (px)
    keep = rng.uniform(1 - crop, 1, size=2)  # share of the width and of the height kept
    cw, ch = int((w - 2 * inner[0]) * keep[0]), int((h - 2 * inner[1]) * keep[1])
    x0 = inner[0] + int(rng.uniform(0, w - 2 * inner[0] - cw))
    y0 = inner[1] + int(rng.uniform(0, h - 2 * inner[1] - ch))
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhance(img).enhance(rng.uniform(1 - LIGHT, 1 + LIGHT))
    return img


def _preprocess_all(paths: list[Path], config: PreprocessConfig, split: str,
                    progress: bool) -> torch.Tensor:
    """uint8 [N, 28, 28]: every picture through `preprocess`, with a progress bar."""
    from tqdm import tqdm

    images = np.zeros((len(paths), config.size, config.size), np.uint8)
    for i, path in enumerate(tqdm(paths, desc=f"photos {split}", unit="photo",
                                  disable=not progress, leave=False)):
        images[i] = model_input(path, config)
    return torch.from_numpy(images)


# ---------------------------------------------------------------------------------------------
# Scoring


def auroc(scores: torch.Tensor | np.ndarray, positive: torch.Tensor | np.ndarray
          ) -> float | None:
    """Area under the ROC curve of `scores` for the `positive` (bool) items, from ranks with
    ties averaged (Mann-Whitney U); None when either group is empty."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # 1-based, tied scores share their mean rank
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _mean(values: torch.Tensor) -> float | None:
    return float(values.double().mean()) if len(values) else None


def keep_threshold(in_class: torch.Tensor, codes: torch.Tensor,
                   keep: float = KEEP_IN_CLASS) -> float:
    """The in-class score at or above which `keep` of the in-class pictures lie."""
    scores = in_class[codes != OUT_OF_CLASS].sort(descending=True).values
    if not len(scores):
        return float("-inf")
    return float(scores[max(1, math.ceil(keep * len(scores))) - 1])


def score_photos(probabilities: torch.Tensor, codes: torch.Tensor,
                 in_class: torch.Tensor | None = None, folders: Sequence[str] | None = None,
                 threshold: float | None = None) -> dict[str, Any]:
    """The standard scores of predictions on photos.

    probabilities float [N, 10]; codes int64 [N]; in_class float [N] (higher = more likely
    one of the 10 classes; default: the top probability); folders: each picture's folder, for
    the per-folder table (default: grouped by code); threshold: the in-class score below
    which a picture is rejected (default: the one keeping 95% of in-class pictures here).
    """
    probabilities, codes = torch.as_tensor(probabilities), torch.as_tensor(codes)
    predicted = probabilities.argmax(1)
    in_class = probabilities.max(1).values if in_class is None else torch.as_tensor(in_class)
    right = LABEL_SETS[codes, predicted]
    strict, inside = codes < len(CLASS_NAMES), codes != OUT_OF_CLASS
    threshold = keep_threshold(in_class, codes) if threshold is None else threshold
    kept = in_class >= threshold
    groups = list(folders) if folders is not None else [f"code {int(c)}" for c in codes]
    return {
        "n": len(codes),
        "strict_accuracy": _mean(right[strict]),
        "lenient_accuracy": _mean(right[inside]),
        "out_of_class_auroc": auroc(in_class, inside),
        "at_threshold": {
            "threshold": threshold,
            "in_class_coverage": _mean(kept[inside]),
            "out_of_class_rejection": _mean(~kept[~inside]),
            "strict_accuracy_kept": _mean(right[strict & kept]),
            "lenient_accuracy_kept": _mean(right[inside & kept]),
        },
        "per_folder": per_folder(groups, codes, predicted, right, kept),
    }


def per_folder(groups: list[str], codes: torch.Tensor, predicted: torch.Tensor,
               right: torch.Tensor, kept: torch.Tensor, top: int = 3) -> dict[str, Any]:
    """Per folder: n, accuracy (None for out-of-class folders), share kept at the threshold
    and the `top` most common predicted classes with their shares."""
    table = {}
    for group in sorted(set(groups), key=lambda g: (FOLDER_CODES.get(g, N_CODES), g)):
        mask = torch.tensor([g == group for g in groups])
        n = int(mask.sum())
        common = Counter(int(p) for p in predicted[mask]).most_common(top)
        table[group] = {
            "n": n,
            "accuracy": None if bool((codes[mask] == OUT_OF_CLASS).all()) else _mean(right[mask]),
            "kept": _mean(kept[mask]),
            "predicted": [[CLASS_NAMES[c], k / n] for c, k in common],
        }
    return table
