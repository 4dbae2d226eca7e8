"""Benchmark: what distilling the speed-run ensemble into one model buys, on the validation split.

    python benchmarks/distillation.py [--students 0 0.5 1] [--runs runs/distill]
        [--teacher-runs runs/ensemble-speedrun] [--out benchmarks/results/distillation.json]
        [--data-dir DIR]

The teacher is benchmarks/ensemble_size.py's run (`--recipe speedrun --members 5 --seed 0`:
five speed-run members on seed 0's validation split; trained, resumed or reused). A student
`W[:EPOCHS]` is `fashion-cnn train --recipe speedrun --seed 0 --split-seed 0 --teacher
TEACHER --distill W [--epochs EPOCHS]` in RUNS/w{W}-e{EPOCHS}; W = 0 is the same run without
a teacher, the student's baseline: the same seed (that of the teacher's member 0), so the two
differ only in what they train towards. Finished runs are reused. Everything is scored on
that validation split (the test set is not looked at) under the view settings of
benchmarks/tta_views.py. A student's cost is its own training minutes plus the teacher's
answers on the training images plus the teacher's training.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import common
from ensemble_size import train as train_teacher
from tta_views import score as views_score

from fashion_cnn.training import recipe_config

RECIPE = "speedrun"


def student(spec: str, teacher: Path, runs: Path) -> tuple[Path, dict[str, Any]]:
    """Train (or reuse) the student `W[:EPOCHS]` (W = 0: the recipe alone, no teacher); its
    folder and metrics."""
    weight, _, epochs = spec.partition(":")
    options: dict[str, Any] = {"seed": 0, "split_seed": 0}
    if float(weight):
        options |= {"teacher": str(teacher), "distill": float(weight)}
    if epochs:
        options["epochs"] = int(epochs)
    config = recipe_config(RECIPE, **options)
    out = runs / f"w{float(weight):g}-e{config.epochs}"
    args = ["--recipe", RECIPE, *(arg for name, value in options.items()
                                  for arg in (f"--{name.replace('_', '-')}", str(value))),
            "--no-test"]
    return out, common.train_or_reuse(out, config, args)


def validation_accuracy(path: Path, data: Any) -> dict[str, float]:
    """A checkpoint's accuracy on its run's validation split: no views, the mirror, and the
    mirror with the recipe's shifts (benchmarks/tta_views.py)."""
    return views_score(path, data, [recipe_config(RECIPE).tta_shift])["val_accuracy"]


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, "distillation", runs="runs/distill")
    parser.add_argument("--students", nargs="+", default=["0", "0.5", "1"],
                        help="W[:EPOCHS]: the teacher's share of the target (0: no teacher), "
                        "and the epochs (default: the recipe's)")
    parser.add_argument("--teacher-runs", type=Path, default=Path("runs/ensemble-speedrun"))
    args = parser.parse_args(argv)
    train_teacher(RECIPE, 5, args.teacher_runs)
    teacher = args.teacher_runs / "model.pt"
    trained = [student(spec, teacher, args.runs) for spec in args.students]
    data = common.load_data(args)
    ensemble = json.loads((args.teacher_runs / "metrics.json").read_text())
    result = {
        "recipe": RECIPE,
        "teacher": {"path": str(teacher), "members": ensemble["config"]["members"],
                    "train_minutes": ensemble["train_seconds"] / 60,
                    "val_accuracy": validation_accuracy(teacher, data)},
        "students": [{"path": str(out), "command": m["command"],
                      "distill": m["config"]["distill"] if "teacher" in m else 0.0,
                      "epochs": m["config"]["epochs"],
                      "train_minutes": m["train_seconds"] / 60,
                      **({"teacher_minutes": m["teacher"]["seconds"] / 60,
                          "teacher_agreement": m["teacher"]["agreement"]}
                         if "teacher" in m else {}),
                      "val_accuracy": validation_accuracy(out / "model.pt", data)}
                     for out, m in trained],
    }
    common.write_result(args.out, result, seed=0, checksums=data.checksums)
    print(f"-> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
