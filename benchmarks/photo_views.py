"""Benchmark: retaken views of the real train photos in the default's photo fine-tuning.

    python benchmarks/photo_views.py [--variants 0 3:0 7:0 7:0.1] [--seeds 0 1] [--runs runs]
        [--init best] [--retaken 4] [--out benchmarks/results/photo_views.json]

Each (views V, crop C, seed S) fine-tunes INIT as scripts/ship_model.py does
(`PHOTO_TUNING`) with `--photo-views V --photo-crop C --photo-repeat max(4, V + 1) --seed S`
into RUNS/photo-views{V}-crop{C}-seed{S} (a finished run with that config is reused). Every
seed holds out the shipped default's own Fashion-MNIST validation split (seed 0's; other
seeds pass `--split-seed 0`). V = 0 is the fine-tuning without views: each photo shown 4
times per epoch as converted once. A variant is V:C (V alone: C = 0).

Scored on validation splits only: Fashion-MNIST's; the real validation photos as they are
(the run's own scores, no test-time views); and the same photos retaken RETAKEN times each
(benchmarks/real_photos.py's `retaken`: turned, cropped, relit; the same pictures for every
run): what a model gets when the garment is photographed a little differently.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from common import parser, train_or_reuse, write_result
from real_photos import retaken

from fashion_cnn.photos import find_photos_dir, list_photos
from fashion_cnn.predict import Classifier
from fashion_cnn.training import recipe_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from ship_model import PHOTO_TUNING  # noqa: E402  (the shipping script's fine-tuning)


def run(views: int, crop: float, seed: int, init: str, out: Path) -> dict[str, Any]:
    """metrics.json of the fine-tuning with `views` retaken views per photo, each cutting off
    up to `crop` (reused when finished)."""
    repeat = max(4, views + 1)
    split = -1 if seed == 0 else 0  # -1: the seed's own, which for seed 0 is split 0
    options = {**PHOTO_TUNING, "init": init, "photo_views": views, "photo_crop": crop,
               "photo_repeat": repeat, "seed": seed, "split_seed": split}
    args = ["--recipe", "best", "--init", init, "--photos", "--synthetic",
            str(PHOTO_TUNING["synthetic"]), "--epochs", str(PHOTO_TUNING["epochs"]),
            "--lr", str(PHOTO_TUNING["lr"]), "--photo-views", str(views),
            "--photo-crop", f"{crop:g}",
            "--photo-repeat", str(repeat), "--seed", str(seed), "--split-seed", str(split),
            "--no-test"]
    return train_or_reuse(out, recipe_config("best", **options), args)


def photo_figures(scores: dict[str, Any]) -> dict[str, float]:
    """The four figures of a photo score: strict, lenient, AUROC, rejection at 95%."""
    return {**{k: scores[k] for k in ("strict_accuracy", "lenient_accuracy",
                                      "out_of_class_auroc")},
            "out_of_class_rejection": scores["at_threshold"]["out_of_class_rejection"]}


def main() -> None:
    p = parser(__doc__, "photo_views", data=False, runs="runs")
    p.add_argument("--variants", nargs="+", default=["0", "3:0", "7:0", "7:0.1"],
                   help="retaken views V and their crop C, as V:C")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--init", default="best")
    p.add_argument("--retaken", type=int, default=4)
    args = p.parse_args()
    photos = list_photos(find_photos_dir(), "validation")
    runs = {}
    variants = [(int(v), float(c or 0)) for v, _, c in (x.partition(":") for x in args.variants)]
    for views, crop in variants:
        for seed in args.seeds:
            out = args.runs / f"photo-views{views}-crop{crop:g}-seed{seed}"
            m = run(views, crop, seed, args.init, out)
            again = retaken(Classifier(out / "model.pt", backend="torch"), photos,
                            args.retaken).score()
            key = f"{views}/{crop:g}/{seed}"
            runs[key] = {
                "views": views, "crop": crop, "seed": seed, "command": m["command"],
                "git_commit": m["git_commit"], "train_seconds": m["train_seconds"],
                "fashion_mnist_val_accuracy": m["val_accuracy"],
                "photos": photo_figures(m["photos"]["validation"]),
                "retaken": photo_figures(again)}
            r, a = runs[key]["photos"], runs[key]["retaken"]
            print(f"views {views} crop {crop:g} seed {seed}: "
                  f"Fashion-MNIST val {100 * m['val_accuracy']:.2f}%; "
                  f"photos {100 * r['strict_accuracy']:.1f}% / {100 * r['lenient_accuracy']:.1f}%"
                  f" / {r['out_of_class_auroc']:.3f}; retaken {100 * a['strict_accuracy']:.1f}% "
                  f"/ {100 * a['lenient_accuracy']:.1f}% / {a['out_of_class_auroc']:.3f}",
                  file=sys.stderr)
    write_result(args.out, {"init": args.init, "tuning": PHOTO_TUNING,
                            "retaken_views": args.retaken, "runs": runs}, seed=None,
                 checksums=m["data_checksums"])


if __name__ == "__main__":
    main()
