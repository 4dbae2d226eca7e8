"""Benchmark: the peak learning rate of the real-photo fine-tuning of the default model.

    python benchmarks/photo_finetune.py [--lrs 0.02 0.01 0.005] [--runs runs]
        [--init best] [--out benchmarks/results/photo_finetune.json]

Each learning rate fine-tunes INIT through `fashion-cnn train --recipe best --init INIT
--photos --epochs 4 --lr LR --out RUNS/photo-finetune-lrLR` (a finished run with that
config is reused) and is scored on the two validation splits only: Fashion-MNIST's (held out
from its training set) and the real photos' (strict, lenient, out-of-class AUROC, without
test-time augmentation). The choice in scripts/ship_model.py (`PHOTO_TUNING`) is made here,
never on a test set; each run's test accuracy is not read.
"""

from __future__ import annotations

from pathlib import Path

from common import parser, train_or_reuse, write_result

from fashion_cnn.training import recipe_config

EPOCHS = 4


def run(lr: float, init: str, out: Path) -> dict:
    """metrics.json of the fine-tuning at peak learning rate `lr` (reused when finished)."""
    return train_or_reuse(
        out, recipe_config(None, model="best", init=init, photos=True, epochs=EPOCHS, lr=lr),
        ["--recipe", "best", "--init", init, "--photos", "--epochs", str(EPOCHS),
         "--lr", str(lr), "--no-test"])


def main() -> None:
    p = parser(__doc__, "photo_finetune", data=False, runs="runs")
    p.add_argument("--lrs", type=float, nargs="+", default=[0.02, 0.01, 0.005])
    p.add_argument("--init", default="best")
    args = p.parse_args()
    runs = {}
    for lr in args.lrs:
        m = run(lr, args.init, args.runs / f"photo-finetune-lr{lr}")
        photos = m["photos"]["validation"]
        runs[str(lr)] = {
            "command": m["command"], "git_commit": m["git_commit"], "date": m["date"],
            "fashion_mnist_val_accuracy": m["val_accuracy"],
            "train_seconds": m["train_seconds"],
            **{k: photos[k] for k in ("strict_accuracy", "lenient_accuracy",
                                      "out_of_class_auroc")},
            "out_of_class_rejection": photos["at_threshold"]["out_of_class_rejection"]}
        print(f"lr {lr}: Fashion-MNIST val {100 * m['val_accuracy']:.2f}%, photos strict "
              f"{100 * photos['strict_accuracy']:.1f}%, lenient "
              f"{100 * photos['lenient_accuracy']:.1f}%, AUROC "
              f"{photos['out_of_class_auroc']:.3f}")
    write_result(args.out, {"init": args.init, "epochs": EPOCHS, "runs": runs}, seed=0,
                 checksums=m["data_checksums"])


if __name__ == "__main__":
    main()
