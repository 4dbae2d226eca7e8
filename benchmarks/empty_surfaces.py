"""Benchmark: photos of an empty floor, bed, wall or door, which hold no garment.

    python benchmarks/empty_surfaces.py [--model best] [--backend auto] [--out FILE]

Writes benchmarks/results/empty_surfaces.json unless --out says otherwise.

The empty surfaces are the 55 crops listed in empty_surfaces.csv: parts of the real
validation photos (clothing-dataset-small) beside their garment. Candidates were the strips
beside the garment's box as the cut-out finds it, at least a fifth of the photo across and at
most 2:1, two per photo; each was looked at, and only those showing no garment nor part of one
were kept (floors, carpets, tiles, walls, doors, a cushion; 43 left out). Each crop goes
through `predict` as a picture of its own (`surfaces`): what a user photographing an empty
surface gets. Right is any unsure verdict; "no garment found" is the truest.

Then rules for "no garment found", each with what it catches and costs, read from every
picture's score with `predict`'s own rule off (`predict.BARE_SURFACES`):
- `spread_rule`, the one `predict` ships (`predict.bare_surface`): a picture in which nothing
  stood out from the edges (the WHOLE_FRAME warning: the whole picture was classified), whose
  colours hardly vary (`preprocess.colour_spread` below S) and that scores in_class below T.
  The bars are chosen on train (`chosen`): of those taking the label from at most MAX_COST of
  its in-class pictures (`labels_lost`), the ones leaving the fewest empty surfaces answered
  with a class, then answering the most "no garment found".
- `rule`, dropped: whole-frame and in_class below T, no colour test; "one surface" also asks
  that no part of its edge differs from the rest (no second cut-out).
The cost is counted on in-class pictures: the photos of the seven in-class folders as taken
and retaken (`photos.photo_view`: turned, up to 10% cut off, so the garment often fills the
frame), 2 views each on train (where bars are chosen) and `real_photos.py`'s 4 views each on
validation.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import common
import numpy as np
from real_photos import RETAKE_SEED

from fashion_cnn import predict
from fashion_cnn.files import file_sha256
from fashion_cnn.models import model_name
from fashion_cnn.photos import (
    OUT_OF_CLASS_FOLDERS,
    checksums_summary,
    find_photos_dir,
    list_photos,
    photo_view,
)
from fashion_cnn.predict import LOW, NO_GARMENT, NOT_A_CLASS, Classifier
from fashion_cnn.preprocess import WHOLE_FRAME, colour_spread, decode_image

CROPS = common.HERE / "empty_surfaces.csv"  # photo (under the photos folder), left, top, right,
# bottom: pixels of the photo as `decode_image` reads it (EXIF-turned, full size)
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)  # the rules' in_class bars tried
SPREADS = (6.0, 8.0, 10.0, 12.0)  # the spread rule's colour-spread bars tried
MAX_COST = 0.002  # the spread rule's bars may take the label from this share of in-class
# train pictures at most (answered or unsure: accuracy counts an unsure picture's label too)
VIEWS = {"train": 2, "validation": 4}  # retaken views of each in-class photo
TRAIN_VIEW_SEED = 777  # train's views; validation's are real_photos.py's (RETAKE_SEED)


def crops(root: Path) -> list[Any]:
    """The empty surfaces, as Pillow images."""
    with open(CROPS, newline="") as f:
        rows = list(csv.DictReader(f))
    return [decode_image(root / r["photo"]).crop(
        tuple(int(r[k]) for k in ("left", "top", "right", "bottom"))) for r in rows]


def in_class_pictures(classifier: Classifier, root: Path, split: str) -> Iterator[Any]:
    """The split's in-class photos as taken (paths), then VIEWS[split] retaken views of each,
    made as they are classified (thousands of decoded photos need not sit in memory)."""
    photos = [path for path, folder in list_photos(root, split)
              if folder not in OUT_OF_CLASS_FOLDERS]
    seed = RETAKE_SEED if split == "validation" else TRAIN_VIEW_SEED
    config = classifier.config
    yield from (str(p) for p in photos)
    for i, path in enumerate(photos):
        img = decode_image(path, config.max_pixels, config.work_size)
        yield from (photo_view(img, np.random.default_rng([seed, i, v]))
                    for v in range(VIEWS[split]))


def features(classifier: Classifier, pictures: Iterable[Any],
             rule: bool = False) -> list[dict[str, Any]]:
    """What the rules look at, per picture: its verdict, in_class, whether the whole picture
    was classified, its colour spread if so, and whether it had a second cut-out (kept
    inputs: `edge_image`); with `predict`'s own rule on (`rule`) or off."""
    predict.BARE_SURFACES = rule
    try:
        return [{"answered": not p.unsure, "reason": p.unsure_reason, "in_class": p.in_class,
                 "whole": WHOLE_FRAME in p.warnings, "second": p.input.edge_image is not None,
                 "spread": (colour_spread(p.input.original, classifier.config)
                            if WHOLE_FRAME in p.warnings else None)}
                for p in classifier.iter_classify(pictures, keep_inputs=True)]
    finally:
        predict.BARE_SURFACES = True


def flagged(row: dict[str, Any], bar: float, one_surface: bool = False,
            spread: float | None = None) -> bool:
    """Would the rule call this picture "no garment found"? (`spread`: the spread rule's
    colour bar; None: the dropped rule, without it)"""
    return (row["whole"] and row["in_class"] is not None and row["in_class"] < bar
            and not (one_surface and row["second"])
            and (spread is None or row["spread"] < spread))


def rule_rows(surfaces: list[dict], kept: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """For each bar and variant: empty surfaces still answered with a class, and the share of
    in-class pictures answered now that the rule would newly turn away."""
    rows = []
    for one_surface in (False, True):
        for bar in THRESHOLDS:
            row = {"bar": bar, "one_surface": one_surface,
                   "surfaces_answered": sum(r["answered"] and not flagged(r, bar, one_surface)
                                            for r in surfaces)}
            for split, pictures in kept.items():
                row[f"{split}_newly_turned_away"] = sum(
                    r["answered"] and flagged(r, bar, one_surface) for r in pictures
                ) / len(pictures)
            rows.append(row)
    return rows


def spread_rule_rows(surfaces: list[dict],
                     kept: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """For each pair of bars: the empty surfaces still answered with a class and those then
    "no garment found", and the share of in-class pictures answered now that the rule would
    newly turn away."""
    rows = []
    for spread in SPREADS:
        for bar in THRESHOLDS:
            row = {"spread": spread, "bar": bar,
                   "surfaces_answered": sum(r["answered"] and not flagged(r, bar, spread=spread)
                                            for r in surfaces),
                   "surfaces_no_garment": sum(r["reason"] == NO_GARMENT
                                              or flagged(r, bar, spread=spread)
                                              for r in surfaces)}
            for split, pictures in kept.items():
                row[f"{split}_newly_turned_away"] = sum(
                    r["answered"] and flagged(r, bar, spread=spread) for r in pictures
                ) / len(pictures)
                row[f"{split}_labels_lost"] = sum(  # unsure ones too: their label counts
                    r["reason"] != NO_GARMENT and flagged(r, bar, spread=spread)
                    for r in pictures) / len(pictures)
            rows.append(row)
    return rows


def chosen(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The spread rule's bars chosen on train: of those taking the label from at most MAX_COST
    of its in-class pictures, the ones leaving the fewest empty surfaces answered, then
    answering the most "no garment found" (the truest answer), then the cheaper."""
    best = min((r for r in rows if r["train_labels_lost"] <= MAX_COST),
               key=lambda r: (r["surfaces_answered"], -r["surfaces_no_garment"],
                              r["train_labels_lost"]))
    return {"spread": best["spread"], "bar": best["bar"]}


def verdicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How many pictures got a class, were unsure for each reason, were classified whole."""
    return {"n": len(rows), "answered": sum(r["answered"] for r in rows),
            **{reason: sum(r["reason"] == reason for r in rows)
               for reason in (NO_GARMENT, NOT_A_CLASS, LOW)},
            "whole_frame": sum(r["whole"] for r in rows),
            "second_cut_out": sum(r["second"] for r in rows)}


def main() -> None:
    parser = common.parser(__doc__, "empty_surfaces", data=False)
    common.classifier_flags(parser)
    args = parser.parse_args()
    root = find_photos_dir()
    classifier = Classifier(args.model, backend=args.backend)
    answered = features(classifier, crops(root), rule=True)  # what `predict` answers
    print(f"empty surfaces: {verdicts(answered)}", file=sys.stderr)
    surfaces = features(classifier, crops(root))  # every score, for the rules below
    kept = {split: features(classifier, in_class_pictures(classifier, root, split))
            for split in VIEWS}
    spread_rule = spread_rule_rows(surfaces, kept)
    shipped = {"spread": predict.BARE_SPREAD, "bar": predict.BARE_IN_CLASS}
    shipped_row = next(r for r in spread_rule if {k: r[k] for k in shipped} == shipped)
    if shipped_row["surfaces_no_garment"] != verdicts(answered)[NO_GARMENT]:
        raise SystemExit("predict's bare-surface rule does not answer as its bars here say")
    result = {"model": model_name(args.model), "backend": classifier.backend,
              "checkpoint": classifier.meta["path"], "surfaces": verdicts(answered),
              "surfaces_without_rule": verdicts(surfaces),
              "in_class_pictures": {s: {**verdicts(rows), "views_per_photo": VIEWS[s]}
                                    for s, rows in kept.items()},
              "spread_rule": spread_rule, "max_cost": MAX_COST,
              "chosen": chosen(spread_rule), "shipped": shipped,
              "rule": rule_rows(surfaces, kept), "crops_sha256": file_sha256(CROPS),
              "photo_checksums": {s: checksums_summary(root, s, list_photos(root, s))
                                  for s in VIEWS}}
    common.write_result(args.out, result, seed=TRAIN_VIEW_SEED, checksums={})


if __name__ == "__main__":
    main()
