"""Benchmark: every shipped model on the official test set, beside published results.

    python benchmarks/accuracy.py [--out benchmarks/results/accuracy.json] [--data-dir DIR]

Per shipped model: test accuracy as shipped (and without test-time augmentation where the
model has it), parameters, file size, training time (from the checkpoint's metrics), and the
median milliseconds to classify one 28x28 picture with the model loaded (`Classifier`).
"""

from __future__ import annotations

import json
import statistics

import common
from PIL import Image

from fashion_cnn.evaluate import loss_and_accuracy
from fashion_cnn.models import (
    SHIPPED_MODELS,
    count_parameters,
    resolve_checkpoint,
    training_seconds,
)
from fashion_cnn.predict import Classifier

BOARD = "https://github.com/zalandoresearch/fashion-mnist#benchmark"
# Published test accuracies (the dataset's benchmark board, as quoted there)
ANCHORS = [
    {"model": "WRN-28-10 + random erasing (Zhong et al.)", "test_accuracy": 0.963,
     "source": BOARD},
    {"model": "WRN-28-10, crops and flips", "test_accuracy": 0.959, "source": BOARD},
    {"model": "MobileNet, flips", "test_accuracy": 0.950, "source": BOARD},
    {"model": "ResNet18, flips/translation/rotation", "test_accuracy": 0.949, "source": BOARD},
    {"model": "VGG16 (26M parameters)", "test_accuracy": 0.935, "source": BOARD},
    {"model": "best classic method (SVC, RBF kernel)", "test_accuracy": 0.897,
     "source": "https://github.com/zalandoresearch/fashion-mnist#benchmark (sklearn benchmark)"},
    {"model": "human (crowd-sourced, 1,000 test images)", "test_accuracy": 0.835,
     "source": BOARD},
]


def ms_per_image(classifier: Classifier, image: Image.Image, repeats: int = 200) -> float:
    """Median milliseconds of one `classify_one` call, after a warm-up call."""
    classifier.classify_one(image)
    return 1000 * statistics.median(common.timed(lambda: classifier.classify_one(image), repeats))


def score(name: str, data) -> dict:
    """One shipped model's row: accuracy (with and without TTA), size, speed."""
    classifier = Classifier(name)
    net, meta = classifier.net, classifier.meta
    checkpoint = resolve_checkpoint(name)
    shipped = json.loads((checkpoint.parent / "metrics.json").read_text())
    result = {"model": name, "arch": meta["arch"],
              "test_accuracy": loss_and_accuracy(net, data.test_images, data.test_labels)[1],
              "parameters": count_parameters(net),
              "file_mb": checkpoint.stat().st_size / 1e6,
              "weights": meta.get("weights_dtype"),
              "train_seconds": training_seconds(shipped),  # every run behind the weights
              "tta": getattr(net, "tta", False)}
    if result["tta"]:
        net.tta = False
        result["test_accuracy_without_tta"] = loss_and_accuracy(
            net, data.test_images, data.test_labels)[1]
        net.tta = True
    result["ms_per_image"] = ms_per_image(classifier,
                                          Image.fromarray(data.test_images[0].numpy()))
    return result


def main() -> None:
    args = common.parser(__doc__, "accuracy").parse_args()
    data = common.load_data(args)
    models = [score(name, data) for name in SHIPPED_MODELS]
    common.write_result(args.out, {"shipped": models, "published": ANCHORS}, seed=0,
                        checksums=data.checksums)
    for m in models:
        plain = (f" ({100 * m['test_accuracy_without_tta']:.2f}% without TTA)"
                 if m["tta"] else "")
        train = f"{m['train_seconds'] / 60:.1f} min" if m["train_seconds"] else "?"
        print(f"{m['model']:5s} {100 * m['test_accuracy']:.2f}%{plain}, "
              f"{m['parameters']:,} parameters, {m['file_mb']:.2f} MB, trained in {train}, "
              f"{m['ms_per_image']:.2f} ms per image")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
