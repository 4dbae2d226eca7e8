"""Benchmark: a model on real phone photos of clothes (clothing-dataset-small).

    python benchmarks/real_photos.py [--model best|seed|CHECKPOINT]
        [--split validation|train|both] [--backend auto|torch|...] [--retaken V]
        [--set KEY=VALUE] [--out FILE]

Writes benchmarks/results/real_photos_<model>_<split>.json unless --out says otherwise.

Every photo FILE goes through `fashion_cnn.predict.Classifier` (read, decode, preprocess,
model), the same path as `fashion-cnn predict`, so this measures what users get. Scored as
`fashion_cnn.photos.score_photos` does (see ../shared/README.md): strict accuracy, lenient
accuracy, the out-of-class AUROC of the in-class score (the Prediction's own `in_class` when
it has one, else the top probability), a per-folder table, and the operating point keeping
95% of in-class pictures. With --split both, validation is also scored at the threshold
chosen on train (`at_train_threshold`), an honest estimate of that operating point.

With --retaken V (default 4), each photo is also "retaken" V times (`photos.photo_view`: the
phone turned by up to 10 degrees, up to 10% of the width and height cut off, light and colour
changed; seeded, so every model meets the same pictures) and the V * N pictures are scored
together under `retaken`: what the same garments get when photographed a little differently.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common
import numpy as np
import torch

from fashion_cnn.models import DEFAULT_MODEL, SHIPPED_MODELS, model_name
from fashion_cnn.photos import (
    FOLDER_CODES,
    checksums_summary,
    find_photos_dir,
    list_photos,
    photo_view,
    score_photos,
)
from fashion_cnn.predict import BACKENDS, Classifier
from fashion_cnn.preprocess import decode_image

RETAKE_SEED = 2026  # the retaken views' seed: the same pictures for every model


@dataclass
class Classified:
    """A split's photo files through the classifier (pictures that failed are left out)."""

    probabilities: torch.Tensor  # float [N, 10]
    codes: torch.Tensor  # int64 [N]
    in_class: torch.Tensor  # float [N]
    folders: list[str]
    own_in_class: bool  # the predictions carried their own in-class score
    errors: dict[str, str]  # path -> error, for files that could not be classified
    seconds: float

    def score(self, threshold: float | None = None) -> dict[str, Any]:
        return score_photos(self.probabilities, self.codes, self.in_class, self.folders,
                            threshold)


def classify_split(classifier: Classifier, photos: list[tuple[Path, str]]) -> Classified:
    """Classify photo files by path, as `fashion-cnn predict FOLDER` does."""
    return _classified(classifier, [path for path, _ in photos], photos)


def retaken(classifier: Classifier, photos: list[tuple[Path, str]], views: int) -> Classified:
    """Classify `views` retaken pictures of each photo (photo_view, seeded by RETAKE_SEED,
    the photo's index and the view), decoded as `predict` decodes the file."""
    config = classifier.config
    pictures, labelled = [], []
    for i, (path, folder) in enumerate(photos):
        img = decode_image(path, config.max_pixels, config.work_size)
        pictures += [photo_view(img, np.random.default_rng([RETAKE_SEED, i, v]))
                     for v in range(views)]
        labelled += [(path, folder)] * views
    return _classified(classifier, pictures, labelled)


def _classified(classifier: Classifier, pictures: list[Any],
                photos: list[tuple[Path, str]]) -> Classified:
    """Classify pictures (paths or images), photos[i] naming picture i's file and folder."""
    start = time.perf_counter()
    predictions = list(classifier.iter_classify(pictures))
    seconds = time.perf_counter() - start
    ok = [(p, folder) for p, (_, folder) in zip(predictions, photos, strict=True)
          if not p.error]
    probabilities, in_class = common.scored([p for p, _ in ok])
    return Classified(
        probabilities=probabilities, codes=torch.tensor([FOLDER_CODES[f] for _, f in ok]),
        in_class=in_class,
        folders=[f for _, f in ok],
        own_in_class=any(getattr(p, "in_class", None) is not None for p, _ in ok),
        errors={str(path): p.error for p, (path, _) in zip(predictions, photos, strict=True)
                if p.error}, seconds=seconds)


def summary_line(name: str, split: str, s: dict[str, Any]) -> str:
    t = s["at_threshold"]
    return (f"{name:<8} {split:<10} {s['n']:>5} {100 * s['strict_accuracy']:>6.1f}% "
            f"{100 * s['lenient_accuracy']:>7.1f}% {s['out_of_class_auroc']:>6.3f} "
            f"{100 * t['out_of_class_rejection']:>9.1f}% "
            f"{100 * t['lenient_accuracy_kept']:>10.1f}%")


def print_table(name: str, results: dict[str, dict[str, Any]]) -> None:
    """The three numbers per split, then the per-folder table of each split, on stderr."""
    print(f"{'model':<8} {'split':<10} {'n':>5} {'strict':>7} {'lenient':>8} {'AUROC':>6} "
          f"{'reject@95':>10} {'lenient@95':>11}", file=sys.stderr)
    for split, s in results.items():
        print(summary_line(name, split, s), file=sys.stderr)
        if "retaken" in s:
            print(summary_line(name, f"{split} x{s['retaken']['views']}", s["retaken"]),
                  file=sys.stderr)
    for split, s in results.items():
        print(f"\n{split}: folder       n  accuracy  kept@95  most common answers",
              file=sys.stderr)
        for folder, row in s["per_folder"].items():
            acc = "    -   " if row["accuracy"] is None else f"{100 * row['accuracy']:>7.1f}%"
            common_answers = ", ".join(f"{c} {100 * share:.0f}%" for c, share in row["predicted"])
            print(f"  {folder:<12} {row['n']:>4} {acc} {100 * row['kept']:>7.1f}%  "
                  f"{common_answers}", file=sys.stderr)


def main() -> None:
    parser = common.parser(__doc__, None, data=False)
    parser.add_argument("--model", default=None,
                        help=f"a shipped model ({', '.join(SHIPPED_MODELS)}) or a checkpoint "
                        f"(default: {DEFAULT_MODEL})")
    parser.add_argument("--split", choices=("validation", "train", "both"), default="validation")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="what runs the model (default: what `predict` runs)")
    parser.add_argument("--retaken", type=int, default=4, metavar="V",
                        help="also score V retaken pictures of each photo (0: none)")
    common.preprocess_flag(parser)
    args = parser.parse_args()

    root = find_photos_dir()
    classifier = Classifier(args.model, backend=args.backend)
    classifier.config = common.override(classifier.config, args.set)
    name = model_name(args.model)
    splits = ["train", "validation"] if args.split == "both" else [args.split]
    results, checksums = {}, {}
    for split in splits:
        photos = list_photos(root, split)
        classified = classify_split(classifier, photos)
        if classified.errors:
            print(f"{split}: {len(classified.errors)} photo(s) could not be classified and are "
                  "left out (see 'errors')", file=sys.stderr)
        results[split] = {**classified.score(), "errors": classified.errors,
                          "seconds": classified.seconds,
                          "in_class_score": ("Prediction.in_class" if classified.own_in_class
                                             else "top probability")}
        checksums[split] = checksums_summary(root, split, photos)
        if args.retaken:
            again = retaken(classifier, photos, args.retaken)
            results[split]["retaken"] = {**again.score(), "views": args.retaken,
                                         "seed": RETAKE_SEED, "errors": again.errors}
        if split == "validation" and "train" in results:
            threshold = results["train"]["at_threshold"]["threshold"]
            results[split]["at_train_threshold"] = classified.score(threshold)["at_threshold"]
    result = {"model": name, "arch": classifier.meta["arch"], "backend": classifier.backend,
              "preprocessing": classifier.config.to_dict(),
              "checkpoint": classifier.meta["path"], "photos_dir": str(root),
              "photo_checksums": checksums, **results}
    out = args.out or common.RESULTS / f"real_photos_{name}_{args.split}.json"
    common.write_result(out, result, seed=None, checksums={})
    print_table(name, results)
    print(f"-> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
