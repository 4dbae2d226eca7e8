"""Benchmark: does --bf16 cost accuracy? The faithful recipe (`fashion-cnn train --model seed`)
on several seeds in float32 and with --bf16 (fc1's products in bfloat16): official test
accuracy and training time of each run, their means, and the foundation's target for the
seed model (>= 90.5% test accuracy).

    python benchmarks/bf16_accuracy.py [--seeds 0 1 2] [--runs runs]
        [--out benchmarks/results/bf16_accuracy.json] [--data-dir DIR]

Each run goes through the real command into RUNS/faithful-{float32,bf16}-seedN (a finished
run there with the same config is reused).
"""

from __future__ import annotations

import statistics

import common

TARGET_ACCURACY = 0.905  # the foundation's target for the seed model


def summarize(runs: dict[int, dict]) -> dict:
    """Per-seed test accuracy and training time of one setting, their mean and spread."""
    accuracies = [m["test_accuracy"] for m in runs.values()]
    return {"test_accuracy": {seed: m["test_accuracy"] for seed, m in runs.items()},
            "train_seconds": {seed: m["train_seconds"] for seed, m in runs.items()},
            "mean_test_accuracy": statistics.mean(accuracies),
            "std_test_accuracy": statistics.pstdev(accuracies),
            "seeds_meeting_target": sum(a >= TARGET_ACCURACY for a in accuracies)}


def main() -> None:
    args = common.parser(__doc__, "bf16_accuracy", seeds=[0, 1, 2], runs="runs").parse_args()
    result: dict = {"command": "fashion-cnn train --model seed --seed N [--bf16]",
                    "target_test_accuracy": TARGET_ACCURACY}
    for name, bf16 in (("float32", False), ("bf16", True)):
        runs = {seed: common.cli_training(args.runs / f"faithful-{name}-seed{seed}", "faithful",
                                          seed, args.data_dir, bf16=bf16)
                for seed in args.seeds}
        result[name] = summarize(runs)
    common.write_result(args.out, result, seed=args.seeds[0],
                        checksums=runs[args.seeds[0]]["data_checksums"])
    for name in ("float32", "bf16"):
        r = result[name]
        print(f"{name}: test accuracy " + " / ".join(
            f"{100 * a:.2f}%" for a in r["test_accuracy"].values())
            + f" (mean {100 * r['mean_test_accuracy']:.2f}%); training "
            + " / ".join(f"{s:.1f}" for s in r["train_seconds"].values()) + " s")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
