"""Benchmark: interpolating the weights of a model and its photo fine-tune (WiSE-FT).

    python benchmarks/weight_interpolation.py [--base runs/wise/best-photos-seed0/model.pt]
        [--tuned runs/photo-views7-crop0-seed0] [--alphas 0 0.25 0.5 0.75 1]
        [--retaken 4] [--runs runs/interpolated] [--out benchmarks/results/...json]

Wortsman et al. 2022 ("Robust fine-tuning of zero-shot models") keep what a model knew before
a fine-tune by averaging its weights with the fine-tuned ones: theta = (1 - alpha) base +
alpha tuned. Here the base is the default shipped until 2026-12-04 (recorded as `best`; its
files, rebuilt as a run folder, are in runs/wise/best-photos-seed0) and the tuned model its
fine-tune with retaken views of the real photos (benchmarks/photo_views.py's V = 7, crop 0),
which gains on the real photos and lost 0.2 points of Fashion-MNIST test accuracy. Both come
from the same weights, so their average is a working network; batch-norm statistics are
averaged too. Alpha 0.25 shipped as the default (scripts/ship_model.py --average-with) until
2026-12-05, when a longer fine-tune of it replaced it (docs/design.md).

Every alpha is written as a checkpoint into RUNS/alpha{alpha} (its "unsure" threshold chosen
on the real validation photos, as training chooses it) and scored on validation splits only,
with the base's test-time mirror: Fashion-MNIST's (the base's own held-out 6,000), the real
validation photos, and the same photos retaken RETAKEN times (benchmarks/real_photos.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from common import load_data, parser, write_result
from photo_views import photo_figures
from real_photos import retaken

from fashion_cnn.evaluate import loss_and_accuracy
from fashion_cnn.models import interpolate_weights, load_checkpoint, save_checkpoint
from fashion_cnn.photos import find_photos_dir, list_photos
from fashion_cnn.predict import Classifier
from fashion_cnn.training.run import run_split, score_on_photos, unsure_rule


def scored(alpha: float, tuned_state: dict[str, torch.Tensor], args: Any, data: Any,
           val_idx: torch.Tensor, photos: list[tuple[Path, str]]) -> dict[str, Any]:
    """One alpha's checkpoint (written to RUNS/alpha{alpha}) and its validation figures."""
    base, meta = load_checkpoint(args.base)  # afresh: interpolate works in place
    interpolate_weights(base, tuned_state, alpha)
    images, labels = data.train_images[val_idx], data.train_labels[val_idx]
    figures = {"fashion_mnist_val_accuracy": loss_and_accuracy(base, images, labels)[1]}
    base.tta = False
    figures["fashion_mnist_val_accuracy_without_tta"] = loss_and_accuracy(base, images,
                                                                          labels)[1]
    base.tta = meta["arch_kwargs"].get("tta", False)
    photo_scores = score_on_photos(base, progress=False)
    path = args.runs / f"alpha{alpha:g}" / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, base, config=meta["config"],
                    metrics={"val_accuracy": figures["fashion_mnist_val_accuracy"]},
                    data_checksums=meta["data_checksums"], unsure=unsure_rule(photo_scores),
                    calibration=meta.get("calibration"))
    again = retaken(Classifier(path, backend="torch"), photos, args.retaken).score()
    return {"alpha": alpha, **figures, "photos": photo_figures(photo_scores),
            "retaken": photo_figures(again)}


def main() -> None:
    p = parser(__doc__, "weight_interpolation", runs="runs/interpolated")
    p.add_argument("--base", default="runs/wise/best-photos-seed0/model.pt")
    p.add_argument("--tuned", default="runs/photo-views7-crop0-seed0")
    p.add_argument("--alphas", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1])
    p.add_argument("--retaken", type=int, default=4)
    args = p.parse_args()
    data = load_data(args)
    _, meta = load_checkpoint(args.base)
    _, val_idx = run_split(len(data.train_labels), meta["config"])
    photos = list_photos(find_photos_dir(), "validation")
    tuned_state = load_checkpoint(args.tuned)[0].state_dict()
    rows = []
    for alpha in args.alphas:
        rows.append(scored(alpha, tuned_state, args, data, val_idx, photos))
        fm, r, a = (rows[-1][k] for k in ("fashion_mnist_val_accuracy", "photos", "retaken"))
        print(f"alpha {alpha:g}: Fashion-MNIST val {100 * fm:.2f}%"
              f"; photos {100 * r['strict_accuracy']:.1f}% / {100 * r['lenient_accuracy']:.1f}%"
              f" / {r['out_of_class_auroc']:.3f} / {100 * r['out_of_class_rejection']:.1f}%"
              f"; retaken {100 * a['strict_accuracy']:.1f}%", file=sys.stderr)
    write_result(args.out, {"base": str(args.base), "tuned": str(args.tuned),
                            "retaken_views": args.retaken, "rows": rows}, seed=None,
                 checksums=data.checksums)


if __name__ == "__main__":
    main()
