"""Benchmark: `fashion-cnn train --model seed --recipe fast` on several seeds - official test
accuracy and `train_seconds` of each run, against the targets (TARGET_ACCURACY reached in at
most TARGET_SECONDS of training).

    python benchmarks/fast_recipe.py [--seeds 0 1 2] [--runs runs]
        [--out benchmarks/results/fast_recipe.json] [--data-dir DIR]

Each seed trains through the real command into RUNS/fast-seedN (a finished run there with the
current recipe is reused, not retrained); the JSON collects their metrics.json figures.
"""

from __future__ import annotations

import common

TARGET_ACCURACY, TARGET_SECONDS = 0.91, 30.0


def main() -> None:
    args = common.parser(__doc__, "fast_recipe", seeds=[0, 1, 2], runs="runs").parse_args()
    runs = {seed: common.cli_training(args.runs / f"fast-seed{seed}", "fast", seed,
                                      args.data_dir) for seed in args.seeds}
    first = runs[args.seeds[0]]
    per_seed = {seed: {"test_accuracy": m["test_accuracy"], "val_accuracy": m["val_accuracy"],
                       "train_seconds": m["train_seconds"],
                       "images_per_second": m["images_per_second"],
                       "git_commit": m["git_commit"], "date": m["date"]}
                for seed, m in runs.items()}
    result = {
        "recipe": {k: v for k, v in first["config"].items() if k != "seed"},
        "command": "fashion-cnn train --model seed --recipe fast --seed N",
        "runs": per_seed,
        "targets": {"test_accuracy": TARGET_ACCURACY, "train_seconds": TARGET_SECONDS},
        "all_met": all(r["test_accuracy"] >= TARGET_ACCURACY
                       and r["train_seconds"] <= TARGET_SECONDS for r in per_seed.values()),
    }
    common.write_result(args.out, result, seed=args.seeds[0], checksums=first["data_checksums"])
    for seed, r in per_seed.items():
        print(f"seed {seed}: test {100 * r['test_accuracy']:.2f}%, validation "
              f"{100 * r['val_accuracy']:.2f}%, {r['train_seconds']:.1f} s of training")
    print(f"targets (>= {100 * TARGET_ACCURACY:.1f}% in <= {TARGET_SECONDS:.0f} s) met on every "
          f"seed: {result['all_met']} -> {args.out}")


if __name__ == "__main__":
    main()
