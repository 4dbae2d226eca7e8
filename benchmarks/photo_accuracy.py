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
enlargement; per class, clean and photo accuracy and the photos' commonest mistakes. The
photos are seeded, so every model is scored on the same set.

That set is easy: an enlarged 28x28 image on an even background, which the conversion can
all but invert. `--hard` renders `fashion_cnn.render.hard_photo` instead: the scene drawn
large (the article dyed plain, striped or checked on a textured, tinted 80-100% grey backdrop,
a soft drop shadow, 5-20% uneven light), shrunk by area averaging to a 300-1200 px photo,
blurred, given sensor noise and saved as JPEG, PNG or WebP. Its result adds the accuracy per
background, pattern, light gradient, blur, backdrop grey and photo size, how many photos each
of those has, and the accuracy on the articles alone (`render.article_alone`: drawn as the
photos draw them, then cropped and shrunk to 28 px with no dye, room, camera or cut-out), which
splits the gap into the article's rendering (clean -> alone) and the rest (alone -> photos).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
import numpy as np
import torch
from PIL import Image

from fashion_cnn.data import CLASS_NAMES, FashionMNIST
from fashion_cnn.evaluate import confusion_matrix, predict_logits
from fashion_cnn.predict import Classifier
from fashion_cnn.render import article_alone, hard_photo
from fashion_cnn.training import run_split

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


def examples_figure(classifier: Classifier, photos: list[tuple[bytes, dict[str, str]]],
                    labels: np.ndarray, path: Path, hard: bool = False) -> None:
    """Top row: the photos; bottom row: the 28x28 input the model saw, with its answer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        _, val = run_split(len(data.train_labels), classifier.meta["config"])
        return data.train_images[val][:n], data.train_labels[val][:n]
    return data.test_images[:n], data.test_labels[:n]


def alone_answers(classifier: Classifier, images: torch.Tensor, seed: int) -> torch.Tensor:
    """The answers [N] on the articles alone (`render.article_alone`), drawn with their own
    random stream so the photos stay the same."""
    rng = np.random.default_rng([seed, 1])
    alone = torch.from_numpy(np.stack([article_alone(x.numpy(), rng) for x in images]))
    return predict_logits(classifier.logits, alone).argmax(1)


def by_class(labels: torch.Tensor, answers: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Per class present: its images, the accuracy of each set of answers ([N] class
    indices, -1 for none; e.g. clean, alone, photos), and the photos' two most common wrong
    answers with their share of the class (ties: the later class first, no answer last)."""
    names = [*CLASS_NAMES, "none"]  # the last column (and names[-1]): no answer
    confusions = {key: confusion_matrix(labels, torch.where(a < 0, len(CLASS_NAMES), a),
                                        len(names)) for key, a in answers.items()}
    out = {}
    for k, name in enumerate(CLASS_NAMES):
        row = confusions["photos"][k].tolist()
        n = sum(row)
        if not n:
            continue
        # (count, answer) with no answer as -1, as given: a tie puts it after every class
        wrong = sorted(((c, j if j < len(CLASS_NAMES) else -1) for j, c in enumerate(row)
                        if c and j != k), reverse=True)
        out[name] = {"n": n, **{f"{key}_accuracy": (c[k, k] / n).item()
                                for key, c in confusions.items()},
                     "photo_mistakes": [[names[j], c / n] for c, j in wrong[:2]]}
    return out


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
    common.preprocess_flag(parser)
    parser.add_argument("--write", type=Path, help="also save the photos in this folder")
    parser.add_argument("--examples", type=Path, help="PNG: 8 photos and what the model saw")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    data = common.load_data(args)
    classifier = Classifier(args.model)
    classifier.config = common.override(classifier.config, args.set)
    images, labels = evaluation_set(data, classifier, args.split, args.n)
    name = args.model or classifier.meta["arch"]
    # on the same backend as the photos: the gap is the photos' alone
    clean_answers = predict_logits(classifier.logits, images).argmax(1)
    clean = (clean_answers == labels).float().mean().item()

    stream = PhotoStream(hard_photo if args.hard else photo_style,
                         np.random.default_rng(args.seed), args.write)
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    predictions = list(classifier.iter_classify(stream.photos(images, labels),
                                                [str(i) for i in range(len(images))]))
    seconds = time.perf_counter() - start - stream.render_seconds
    photo_answers = torch.tensor([-1 if p.index is None else p.index for p in predictions])
    right = (photo_answers == labels).tolist()
    groups = by_condition(right, stream.conditions)
    photo = statistics.mean(right)
    result = {
        "model": name, "checkpoint": classifier.meta["path"], "backend": classifier.backend,
        "split": args.split,
        "preprocessing": classifier.config.to_dict(),
        "n_images": len(right),
        "clean_accuracy": clean, "photo_accuracy": photo, "gap_points": 100 * (clean - photo),
        "errors": sum(p.error is not None for p in predictions),
        **{f"photo_accuracy_by_{key}": {k: statistics.mean(v) for k, v in values.items()}
           for key, values in groups.items()},
        "seconds_per_photo": seconds / len(right),
    }
    answers = {"clean": clean_answers, "photos": photo_answers}
    if args.hard:
        answers["alone"] = alone_answers(classifier, images, args.seed)
        result = {"set": "hard", **result,
                  "article_alone_accuracy": (answers["alone"] == labels).float().mean().item(),
                  "photos_by_condition": {key: {k: len(v) for k, v in values.items()}
                                          for key, values in groups.items()}}
    result["by_class"] = by_class(labels, answers)
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
