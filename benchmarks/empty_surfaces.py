"""Benchmark: photos of an empty floor, bed, wall or door, which hold no garment.

    python benchmarks/empty_surfaces.py [--model best] [--backend auto] [--out FILE]

Writes benchmarks/results/empty_surfaces.json unless --out says otherwise.

The empty surfaces are the 55 crops listed in empty_surfaces.csv: parts of the real
validation photos (clothing-dataset-small) beside their garment. Candidates were the strips
beside the garment's box as the cut-out finds it, at least a fifth of the photo across and at
most 2:1, two per photo; each was looked at, and only those showing no garment nor part of one
were kept (floors, carpets, tiles, walls, doors, a cushion; 43 left out). Each crop goes
through `predict` as a picture of its own, once with the "nothing stood out" rule off and once
with it on (`UnsurePolicy.frame`, FRAME_CONFIDENCE): the share answered with a class is what
a user photographing an empty surface gets.

The rule's cost is measured on the in-class photos (the seven folders of the 10 classes): how
many it newly turns into "no garment found". Its threshold is chosen here on the train split
(`choice`): the largest that newly flags at most BUDGET of the in-class train photos that
are not unsure already. FRAME_CONFIDENCE is that choice, rounded down.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import common

from fashion_cnn.files import file_sha256
from fashion_cnn.models import DEFAULT_MODEL, model_name
from fashion_cnn.photos import OUT_OF_CLASS_FOLDERS, checksums_summary, find_photos_dir, list_photos
from fashion_cnn.predict import (
    BACKENDS,
    FRAME_CONFIDENCE,
    LOW,
    NO_GARMENT,
    NOT_A_CLASS,
    Classifier,
    Prediction,
)
from fashion_cnn.preprocess import WHOLE_FRAME, decode_image

CROPS = common.HERE / "empty_surfaces.csv"  # photo (under the photos folder), left, top, right,
# bottom: pixels of the photo as `decode_image` reads it (EXIF-turned, full size)
BUDGET = 0.005  # the rule may newly flag this share of the in-class train photos


def crops(root: Path) -> list[Any]:
    """The empty surfaces, as Pillow images."""
    with open(CROPS, newline="") as f:
        rows = list(csv.DictReader(f))
    return [decode_image(root / r["photo"]).crop(
        tuple(int(r[k]) for k in ("left", "top", "right", "bottom"))) for r in rows]


def replace_frame(classifier: Classifier, frame: float | None) -> Classifier:
    """`classifier` with the "nothing stood out" rule at `frame` (None: off)."""
    classifier.policy = replace(classifier.policy, frame=frame)
    return classifier


def in_class_photos(root: Path, split: str) -> list[Path]:
    return [path for path, folder in list_photos(root, split) if folder not in OUT_OF_CLASS_FOLDERS]


def verdicts(predictions: list[Prediction]) -> dict[str, Any]:
    """How many pictures got a class, and how many were unsure for each reason."""
    n = len(predictions)
    count = {reason: sum(p.unsure_reason == reason for p in predictions)
             for reason in (NO_GARMENT, NOT_A_CLASS, LOW)}
    answered = sum(not p.unsure for p in predictions)
    return {"n": n, "answered_with_a_class": answered / n, "answered": answered,
            **{reason: k for reason, k in count.items()}}


def choose(classifier: Classifier, photos: list[Path]) -> dict[str, Any]:
    """The largest frame threshold that newly flags at most BUDGET of `photos` (in-class train
    photos), with the rule off while they are classified."""
    predictions = list(classifier.iter_classify([str(p) for p in photos]))
    scores = sorted(p.in_class for p in predictions
                    if not p.unsure and WHOLE_FRAME in p.warnings)
    allowed = int(BUDGET * len(photos))
    chosen = scores[allowed] if allowed < len(scores) else 1.0  # flags in_class < chosen
    return {"split": "train", "budget": BUDGET, "in_class_photos": len(photos),
            "whole_frame_not_unsure": len(scores), "allowed": allowed, "chosen": chosen}


def score(classifier: Classifier, frame: float | None, pictures: list[Any],
          photos: list[Path]) -> dict[str, Any]:
    """The empty surfaces' and the in-class photos' verdicts with the rule at `frame`."""
    replace_frame(classifier, frame)
    empty = list(classifier.iter_classify(pictures))
    kept = list(classifier.iter_classify([str(p) for p in photos]))
    return {"frame": frame, "empty_surfaces": verdicts(empty), "in_class_photos": verdicts(kept)}


def main() -> None:
    parser = common.parser(__doc__, "empty_surfaces", data=False)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    args = parser.parse_args()
    root = find_photos_dir()
    classifier = Classifier(args.model, backend=args.backend)
    if classifier.policy.threshold is None:
        sys.exit(f"{args.model} has no in-class threshold: the rule does not apply to it.")
    train = in_class_photos(root, "train")
    choice = choose(replace_frame(classifier, None), train)
    print(f"chosen on train: {choice}", file=sys.stderr)
    pictures, validation = crops(root), in_class_photos(root, "validation")
    rows = [score(classifier, frame, pictures, validation) for frame in (None, FRAME_CONFIDENCE)]
    for r in rows:
        print(f"frame {r['frame']}: {r['empty_surfaces']} / {r['in_class_photos']}",
              file=sys.stderr)
    result = {"model": model_name(args.model), "backend": classifier.backend,
              "checkpoint": classifier.meta["path"], "frame_confidence": FRAME_CONFIDENCE,
              "choice": choice, "validation": rows, "crops_sha256": file_sha256(CROPS),
              "photo_checksums": {s: checksums_summary(root, s, list_photos(root, s))
                                  for s in ("train", "validation")}}
    common.write_result(args.out, result, seed=None, checksums={})


if __name__ == "__main__":
    main()
