"""Benchmark: garments lying on their side, with and without turning them upright first.

    python benchmarks/upright.py [--model best] [--backend torch] [--out FILE]

Every Fashion-MNIST image and nearly every photo of clothing-dataset-small shows its garment
upright; a user's photo of trousers lying across a bed does not. Each real validation photo
is decoded as `predict` decodes it, then turned by 0, 90, 180 and 270 degrees
counter-clockwise, and classified through `predict.Classifier` twice: as it comes
(`upright=False`) and with the orientation network turning sure ones back (`upright=True`,
orientation.py). Scored as real_photos.py scores (strict, lenient, out-of-class AUROC), with
the share of pictures turned back. The default's Fashion-MNIST validation images (dataset form,
all upright) are classified both ways too: what the step costs where nothing is turned.
Validation splits only.
"""

from __future__ import annotations

import sys
from typing import Any

import common
import torch
from PIL import Image

from fashion_cnn.models import DEFAULT_MODEL, model_name
from fashion_cnn.photos import FOLDER_CODES, find_photos_dir, list_photos, score_photos
from fashion_cnn.predict import Classifier, Prediction, was_turned_back
from fashion_cnn.preprocess import decode_image
from fashion_cnn.training.run import run_split

ANGLES = (0, 90, 180, 270)  # degrees counter-clockwise, as PIL's Image.rotate turns
PIL_TURN = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
            270: Image.Transpose.ROTATE_270}


def share_turned(predictions: list[Prediction]) -> float:
    """The share of pictures that `predict` turned upright before classifying them."""
    return sum(was_turned_back(p.warnings) for p in predictions) / len(predictions)


def photo_row(classifier: Classifier, pictures: list[Image.Image], codes: list[int],
              folders: list[str]) -> dict[str, Any]:
    """The pictures' scores (score_photos) and how many were turned back."""
    predictions = list(classifier.iter_classify(pictures))
    probabilities, in_class = common.scored(predictions)
    s = score_photos(probabilities, torch.tensor(codes), in_class, folders)
    return {"n": s["n"], "strict_accuracy": s["strict_accuracy"],
            "lenient_accuracy": s["lenient_accuracy"],
            "out_of_class_auroc": s["out_of_class_auroc"],
            "turned_back": share_turned(predictions)}


def dataset_row(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor
                ) -> dict[str, Any]:
    """Fashion-MNIST images (dataset form) through `predict`: accuracy and share turned."""
    pictures = [Image.fromarray(im.numpy()) for im in images]
    predictions = list(classifier.iter_classify(pictures))
    right = [p.index == int(y) for p, y in zip(predictions, labels, strict=True)]
    return {"n": len(right), "accuracy": sum(right) / len(right),
            "turned_back": share_turned(predictions)}


def main() -> None:
    p = common.parser(__doc__, "upright")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--backend", default="torch")
    args = p.parse_args()
    data = common.load_data(args)
    photos = list_photos(find_photos_dir(), "validation")
    classifiers = {upright: Classifier(args.model, backend=args.backend, upright=upright)
                   for upright in (False, True)}
    config = classifiers[False].config  # decoded as predict decodes a file
    decoded = [decode_image(path, config.max_pixels, config.work_size) for path, _ in photos]
    codes = [FOLDER_CODES[f] for _, f in photos]
    folders = [f for _, f in photos]
    meta = classifiers[False].meta
    _, val = run_split(len(data.train_labels), meta["config"])
    rows = []
    for upright, classifier in classifiers.items():
        for turn in ANGLES:
            pictures = [im.transpose(PIL_TURN[turn]) if turn else im for im in decoded]
            rows.append({"upright": upright, "turn": turn,
                         **photo_row(classifier, pictures, codes, folders)})
            r = rows[-1]
            print(f"upright {upright}, turned {turn}: strict {r['strict_accuracy']:.3f} "
                  f"lenient {r['lenient_accuracy']:.3f} AUROC {r['out_of_class_auroc']:.3f} "
                  f"turned back {r['turned_back']:.3f}", file=sys.stderr)
        rows.append({"upright": upright, "turn": 0, "fashion_mnist_validation": dataset_row(
            classifier, data.train_images[val], data.train_labels[val])})
        print(f"upright {upright}: Fashion-MNIST validation "
              f"{rows[-1]['fashion_mnist_validation']}", file=sys.stderr)
    common.write_result(args.out, {"model": model_name(args.model),
                                   "checkpoint": meta["path"], "backend": args.backend,
                                   "rows": rows}, seed=None, checksums=data.checksums)


if __name__ == "__main__":
    main()
