"""Benchmark: which test-time views to average, chosen on validation. The test set is never
looked at here.

    python benchmarks/tta_views.py CHECKPOINT [CHECKPOINT ...] [--shifts 1 2]
        [--out benchmarks/results/tta_views.json] [--data-dir DIR]

For each checkpoint of the best model (trained with `fashion-cnn train` or a benchmark that
keeps its run), its own validation split is scored with no test-time augmentation, with the
mirror image (2 views, `tta`) and with the mirror and the picture moved by each of `--shifts`
pixels each way (10 views, `tta_shift`). The logits of the views are averaged, as the model
does it in `BestCNN.forward`. The summary is each setting's mean gain over the flip average.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import common

from fashion_cnn.evaluate import loss_and_accuracy
from fashion_cnn.models import load_checkpoint
from fashion_cnn.training import run_split


def view_settings(shifts: list[int]) -> dict[str, tuple[bool, int]]:
    """Setting name -> (tta, tta_shift)."""
    return {"none": (False, 0), "flip": (True, 0),
            **{f"flip + {s}-pixel shifts": (True, s) for s in shifts}}


def score(path: Path, data: Any, shifts: list[int]) -> dict[str, Any]:
    """Validation accuracy of one checkpoint under every view setting."""
    net, meta = load_checkpoint(path)
    if not hasattr(net, "tta_shift"):
        raise SystemExit(f"{path}: test-time views are for the best model, not {meta['arch']}")
    config = meta["config"]
    _, val = run_split(len(data.train_labels), config)
    images, labels = data.train_images[val], data.train_labels[val]
    accuracy = {}
    for name, (net.tta, net.tta_shift) in view_settings(shifts).items():
        accuracy[name] = loss_and_accuracy(net, images, labels)[1]
        print(f"{path}: {name} {100 * accuracy[name]:.2f}%", file=sys.stderr)
    return {"arch_kwargs": meta["arch_kwargs"], "seed": config["seed"],
            "epochs": config["epochs"], "val_accuracy": accuracy}


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, "tta_views")
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--shifts", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    data = common.load_data(args)
    runs = {str(path): score(path, data, args.shifts) for path in args.checkpoints}
    gains = {name: statistics.mean(r["val_accuracy"][name] - r["val_accuracy"]["flip"]
                                   for r in runs.values())
             for name in view_settings(args.shifts)}
    common.write_result(args.out, {"checkpoints": runs, "mean_gain_over_flip": gains},
                        seed=None, checksums=data.checksums)
    for name, gain in gains.items():
        print(f"{name}: {100 * gain:+.2f} points over flip averaging (validation, mean of "
              f"{len(runs)})", file=sys.stderr)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
