"""Benchmark: photos of things that are not clothing, through `predict`.

    python benchmarks/other_things.py [--model best] [--backend auto] [--out FILE]

Writes benchmarks/results/other_things.json unless --out says otherwise.

A user may photograph anything; a cat, a coffee cup or a meadow should not come back as
"T-shirt/top 80%". The pictures are every photo of something real that three packages bundle,
none of them showing a garment: scikit-image's `skimage/data` (an astronaut, a cat, coffee,
coins, a horse, a rocket, a motorcycle, bricks, grass, gravel, the moon, the Hubble deep
field, a retina, text, ...), scikit-learn's two sample images (a temple, a flower) and
Debian's mate-backgrounds nature photos (meadows, flowers, a ladybird, dunes, wood, rain).
Install them with `pip install scikit-image scikit-learn` and `apt-get install
mate-backgrounds`; the file records each picture's SHA-256.

Right is any unsure verdict ("not one of the 10 classes", "no garment found", "low
confidence"); a class answered without one is wrong. Each picture goes through `predict` under
the unsure rule the model ships with and under FORMER_RULE, the rule the default shipped with
until 2026-12-07 (the top probability, its threshold chosen the same way), so the file shows
what the energy score changed. Nothing is chosen here: the unsure rule is chosen on the real
photos' validation split (training/run.py's `unsure_rule`), these pictures only check it.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import common

from fashion_cnn import predict
from fashion_cnn.files import file_sha256
from fashion_cnn.models import model_name
from fashion_cnn.predict import LOW, NO_GARMENT, NOT_A_CLASS, Classifier, UnsurePolicy

SKIMAGE = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "chessboard_RGB.png",
           "clock_motion.png", "coffee.png", "coins.png", "color.png", "grass.png",
           "gravel.png", "horse.png", "hubble_deep_field.jpg", "logo.png", "moon.png",
           "motorcycle_left.png", "page.png", "retina.jpg", "rocket.jpg", "text.png")
SKLEARN = ("china.jpg", "flower.jpg")
MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")  # Debian's mate-backgrounds
# The default's unsure rule until 2026-12-07: the top probability below this threshold
# (chosen on the real validation photos to keep 95% of in-class), and the bare-surface rule's
# in_class bar on that score.
FORMER_RULE = {"score": "max_softmax", "threshold": 0.42413315176963806, "bare_in_class": 0.8}


def pictures() -> dict[str, Path]:
    """The pictures by name (package/file), or SystemExit saying what to install."""
    try:
        import skimage
        import sklearn.datasets
    except ImportError:
        raise SystemExit("needs scikit-image and scikit-learn: pip install scikit-image "
                         "scikit-learn") from None
    found = {**{f"scikit-image/{name}": Path(skimage.__file__).parent / "data" / name
                for name in SKIMAGE},
             **{f"scikit-learn/{name}": Path(sklearn.datasets.__file__).parent / "images" / name
                for name in SKLEARN},
             **{f"mate-backgrounds/{p.name}": p for p in sorted(MATE_NATURE.glob("*.jpg"))}}
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing or not MATE_NATURE.is_dir():
        raise SystemExit(f"missing pictures ({', '.join(missing) or MATE_NATURE}); install "
                         "scikit-image, scikit-learn and Debian's mate-backgrounds")
    return found


def answers(classifier: Classifier, paths: dict[str, Path]) -> list[dict[str, Any]]:
    """What `predict` answers for each picture."""
    return [{"picture": name, "label": p.label, "confidence": p.confidence,
             "in_class": p.in_class, "unsure": p.unsure, "reason": p.unsure_reason}
            for name, p in zip(paths, classifier.classify(list(paths.values())), strict=True)]


def under_former_rule(classifier: Classifier, paths: dict[str, Path]) -> list[dict[str, Any]]:
    """`answers` with FORMER_RULE instead of the model's own unsure rule."""
    former = copy.copy(classifier)
    former.policy = UnsurePolicy(threshold=FORMER_RULE["threshold"], score=FORMER_RULE["score"])
    shipped_bar = predict.BARE_IN_CLASS
    predict.BARE_IN_CLASS = FORMER_RULE["bare_in_class"]
    try:
        return answers(former, paths)
    finally:
        predict.BARE_IN_CLASS = shipped_bar


def verdicts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many pictures were answered with a class, and unsure for each reason."""
    return {"n": len(rows), "answered": sum(not r["unsure"] for r in rows),
            **{reason: sum(r["reason"] == reason for r in rows)
               for reason in (NO_GARMENT, NOT_A_CLASS, LOW)}}


def main() -> None:
    parser = common.parser(__doc__, "other_things", data=False)
    common.classifier_flags(parser)
    args = parser.parse_args()
    paths = pictures()
    classifier = Classifier(args.model, backend=args.backend)
    shipped, former = answers(classifier, paths), under_former_rule(classifier, paths)
    print(f"other things: {verdicts(shipped)}; under the former rule {verdicts(former)}",
          file=sys.stderr)
    result = {"model": model_name(args.model), "backend": classifier.backend,
              "checkpoint": classifier.meta["path"], "unsure_rule": classifier.meta.get("unsure"),
              "verdicts": verdicts(shipped), "former_rule": FORMER_RULE,
              "verdicts_former_rule": verdicts(former),
              "pictures": [{**row, "sha256": file_sha256(path), "former": {
                  k: old[k] for k in ("label", "confidence", "in_class", "unsure", "reason")}}
                  for path, row, old in zip(paths.values(), shipped, former, strict=True)]}
    common.write_result(args.out, result, seed=None, checksums={})


if __name__ == "__main__":
    main()
