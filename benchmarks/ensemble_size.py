"""Benchmark: what an ensemble buys, by its number of members, on the validation split.

    python benchmarks/ensemble_size.py [--recipe speedrun] [--members 5]
        [--runs runs/ensemble-speedrun] [--out benchmarks/results/ensemble_size.json]
        [--data-dir DIR]

Trains `fashion-cnn train --recipe RECIPE --members K --seed 0 --out RUNS` (member k is a run
of its own in RUNS/member{k}, seed k, all on seed 0's validation split; finished members are
reused, an unfinished one resumes), then scores the ensembles of the first k members, k = 1..K,
on that validation split (the test set is not looked at): their logits averaged without
test-time views, with the mirror image, and with the recipe's shifts too (the settings of
benchmarks/tta_views.py). Training time grows with k: the ensemble of k members costs the
sum of their training minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import common
import torch
from tta_views import view_settings

from fashion_cnn.evaluate import predict_logits
from fashion_cnn.models import load_checkpoint
from fashion_cnn.training import recipe_config, run_split


def train(recipe: str, members: int, runs: Path) -> None:
    """The ensemble run in `runs`: reused when finished, resumed when started, else begun."""
    if (runs / "model.pt").is_file():
        return
    resume = ["--resume", str(runs)] if (runs / "config.json").is_file() else []
    args = resume or ["--recipe", recipe, "--members", str(members), "--seed", "0",
                      "--out", str(runs)]
    subprocess.run([common.FASHION_CNN, "train", *args, "--no-test"], check=True)


def score(runs: Path, data: Any) -> dict[str, Any]:
    """Each member's and each first-k ensemble's validation accuracy under every view setting;
    members' training minutes."""
    ensemble, meta = load_checkpoint(runs)
    config = meta["config"]
    _, val = run_split(len(data.train_labels), config)
    images, labels = data.train_images[val], data.train_labels[val]
    shift = config.get("tta_shift", 0)
    settings = view_settings([shift] if shift else [])  # none, flip, and the recipe's shifts
    logits = {name: [] for name in settings}  # setting -> per member [N, 10]
    for member in ensemble.members:
        for name, (member.tta, member.tta_shift) in settings.items():
            logits[name].append(predict_logits(member, images))
    runs_of = [json.loads((runs / f"member{k}" / "metrics.json").read_text())
               for k in range(len(ensemble.members))]
    minutes = [run["train_seconds"] / 60 for run in runs_of]

    def accuracy(x: torch.Tensor) -> float:
        return (x.argmax(1) == labels).float().mean().item()

    sizes = []
    for k in range(1, len(ensemble.members) + 1):
        sizes.append({"members": k, "train_minutes": sum(minutes[:k]),
                      "val_accuracy": {name: accuracy(torch.stack(v[:k]).mean(0))
                                       for name, v in logits.items()}})
        print(f"{k} members, {sizes[-1]['train_minutes']:.1f} min: " + ", ".join(
            f"{name} {100 * a:.2f}%" for name, a in sizes[-1]["val_accuracy"].items()),
            file=sys.stderr)
    single = [{"seed": run["config"]["seed"], "command": run["command"],
               "train_minutes": m,
               "val_accuracy": {name: accuracy(v[k]) for name, v in logits.items()}}
              for k, (run, m) in enumerate(zip(runs_of, minutes, strict=True))]
    return {"config": config, "n_val": len(val), "members": single, "ensembles": sizes}


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, "ensemble_size", runs="runs/ensemble-speedrun")
    parser.add_argument("--recipe", default="speedrun")
    parser.add_argument("--members", type=int, default=5)
    args = parser.parse_args(argv)
    recipe_config(args.recipe, members=args.members)  # a bad recipe fails before training
    train(args.recipe, args.members, args.runs)
    data = common.load_data(args)
    result = {"recipe": args.recipe, **score(args.runs, data)}
    common.write_result(args.out, result, seed=0, checksums=data.checksums)
    print(f"-> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
