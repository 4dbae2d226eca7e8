"""Benchmark: `fashion-cnn train --model seed --recipe fast` on several seeds - official test
accuracy and `train_seconds` of each run, against the targets (>= 91.0% in <= 30 s).

    python benchmarks/fast_recipe.py [--seeds 0 1 2] [--runs runs]
        [--out benchmarks/results/fast_recipe.json]

Each seed trains through the real command into RUNS/fast-seedN (a finished run there with the
current recipe is reused, not retrained); the JSON collects their metrics.json figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from fashion_cnn.files import write_json
from fashion_cnn.provenance import provenance
from fashion_cnn.training import recipe_config

HERE = Path(__file__).resolve().parent
TARGET_ACCURACY, TARGET_SECONDS = 0.91, 30.0


def run_seed(seed: int, out: Path, recipe: str = "fast", **flags: bool) -> dict:
    """metrics.json of `fashion-cnn train --model seed --recipe RECIPE --seed SEED [--FLAG]`
    run into `out` (reused if a finished run there has that config)."""
    expected = asdict(recipe_config(recipe, seed=seed, **flags))
    metrics_path = out / "metrics.json"
    if metrics_path.is_file() and json.loads(metrics_path.read_text())["config"] == expected:
        print(f"seed {seed}: reusing {out}", file=sys.stderr)
    else:
        command = [str(Path(sys.executable).parent / "fashion-cnn"), "train", "--model", "seed",
                   "--recipe", recipe, "--seed", str(seed), "--out", str(out), "--quiet",
                   *(f"--{'' if on else 'no-'}{name.replace('_', '-')}"
                     for name, on in flags.items())]
        if out.exists():
            subprocess.run(["rm", "-rf", str(out)], check=True)
        subprocess.run(command, check=True)
    return json.loads(metrics_path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "fast_recipe.json")
    args = parser.parse_args()

    runs = {seed: run_seed(seed, args.runs / f"fast-seed{seed}") for seed in args.seeds}
    first = runs[args.seeds[0]]
    per_seed = {seed: {"test_accuracy": m["test_accuracy"], "val_accuracy": m["val_accuracy"],
                       "train_seconds": m["train_seconds"],
                       "images_per_second": m["images_per_second"],
                       "git_commit": m["git_commit"], "date": m["date"]}
                for seed, m in runs.items()}
    result = {
        **provenance(args.seeds[0], first["data_checksums"]),
        "recipe": {k: v for k, v in first["config"].items() if k != "seed"},
        "command": "fashion-cnn train --model seed --recipe fast --seed N",
        "runs": per_seed,
        "targets": {"test_accuracy": TARGET_ACCURACY, "train_seconds": TARGET_SECONDS},
        "all_met": all(r["test_accuracy"] >= TARGET_ACCURACY
                       and r["train_seconds"] <= TARGET_SECONDS for r in per_seed.values()),
    }
    write_json(args.out, result)
    for seed, r in per_seed.items():
        print(f"seed {seed}: test {100 * r['test_accuracy']:.2f}%, validation "
              f"{100 * r['val_accuracy']:.2f}%, {r['train_seconds']:.1f} s of training")
    print(f"targets (>= {100 * TARGET_ACCURACY:.1f}% in <= {TARGET_SECONDS:.0f} s) met on every "
          f"seed: {result['all_met']} -> {args.out}")


if __name__ == "__main__":
    main()
