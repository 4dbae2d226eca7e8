"""Benchmark: time to accuracy - official test accuracy against elapsed training time, for one
recipe on several seeds, and the curve of every recipe measured so far.

    python benchmarks/time_to_accuracy.py --recipe NAME [--seeds 0 1] [--epochs N]
        [--runs runs/time_to_accuracy] [--out benchmarks/results/time_to_accuracy_NAME.json]
        [--data-dir DIR]
    python benchmarks/time_to_accuracy.py --plot-only   # redraw docs/time_to_accuracy.png

Each seed trains `recipe_config(NAME, seed=N, epochs=...)` in this process into
RUNS/NAME-seedN (a finished run there is reused, an interrupted one resumed). After every
epoch's validation a hook scores the official test set (for the `best` architecture also with
its test-time augmentation: the mirror image, and shifts where the recipe sets `tta_shift`)
into the epoch's record; that time is not training time. The test set
selects nothing: the curve follows the validation-selected checkpoint, i.e. at each epoch the
test accuracy of the epoch with the best validation accuracy so far. `minutes` is cumulative
`epoch_seconds` (shuffling, augmentation and steps; no validation, no test scoring) / 60.
`minutes_to_95`: the first such minute at which the selected test accuracy is >= 95%.

The figure (docs/time_to_accuracy.png) draws every results/time_to_accuracy_*.json, one line
per recipe and seed, with reference points read from the recorded results of the Keras seed
CNN and of our seed CNN (REFERENCES), and a dashed line at 95%.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import common
from torch import nn

from fashion_cnn.data import FashionMNIST
from fashion_cnn.errors import FashionCNNError
from fashion_cnn.evaluate import loss_and_accuracy
from fashion_cnn.training import RECIPES, TrainConfig, recipe_config, run_training
from fashion_cnn.training.run import run_finished, saved_config

ROOT = common.HERE.parent
PLOT = ROOT / "docs" / "time_to_accuracy.png"
TARGET = 0.95  # the mark: 95% on the official test set

Record = dict[str, Any]

# Reference points: (label, file under the repository, keys to its test accuracy, keys to its
# training seconds). Read from the recorded results, never copied here.
REFERENCES = [
    ("Keras seed CNN (faithful recipe)", "benchmarks/results/train_seed.json",
     ("keras", "test_accuracy"), ("keras", "train_seconds")),
    ("our seed CNN (faithful recipe, fused step)", "benchmarks/results/train_seed.json",
     ("runs", "fused", "test_accuracy"), ("runs", "fused", "train_seconds")),
    # its config predates the fused step: the plain autograd path (TrainConfig.from_dict)
    ("shipped seed model (faithful recipe, plain path)",
     "src/fashion_cnn/weights/seed/metrics.json",
     ("training_run", "test_accuracy"), ("training_run", "train_seconds")),
]


# ---------------------------------------------------------------------------------------------
# Training with the test set scored after every epoch


@contextlib.contextmanager
def test_time_augmentation(model: nn.Module, on: bool) -> Iterator[None]:
    """The model's test-time augmentation (BestCNN.tta) set to `on` inside, restored after."""
    before = model.tta
    model.tta = on
    try:
        yield
    finally:
        model.tta = before


def score_test_set(data: FashionMNIST) -> Callable[[nn.Module, Record], None]:
    """The after_epoch hook: the epoch's official test accuracy into its record (and, for a
    model with test-time augmentation, `test_accuracy_tta` with it on), and the 1-minute
    load average as the epoch ends (this training included: a quiet machine shows ~1-2)."""
    def score(model: nn.Module, record: Record) -> None:
        record["load_average"] = os.getloadavg()[0]
        if not hasattr(model, "tta"):
            record["test_accuracy"] = loss_and_accuracy(
                model, data.test_images, data.test_labels)[1]
            return
        for key, on in (("test_accuracy", False), ("test_accuracy_tta", True)):
            with test_time_augmentation(model, on):
                record[key] = loss_and_accuracy(model, data.test_images, data.test_labels)[1]
    return score


def train_or_load(config: TrainConfig, data: FashionMNIST, out: Path,
                  progress: bool = True) -> Record:
    """metrics.json of the run of `config` in `out`: read if finished, resumed if interrupted,
    else trained; the test set scored after every epoch. A run of another config there, or
    one made without the scores, is refused (remove it to start again)."""
    if run_finished(out):
        metrics = json.loads((out / "metrics.json").read_text())
        _check_run(out, metrics["config"], config)
        print(f"reusing {out}", file=sys.stderr)
    else:
        resume = (out / "config.json").is_file()
        if resume:
            _check_run(out, asdict(saved_config(out / "config.json")), config)
        metrics = run_training(None if resume else config, data, out, resume=resume,
                               progress=progress, after_epoch=score_test_set(data))
    if any("test_accuracy" not in e for e in metrics["epochs"]):
        raise FashionCNNError(f"{out} was trained without the per-epoch test scores; remove "
                              "it and run again.")
    return metrics


def _check_run(out: Path, found: dict[str, Any], expected: TrainConfig) -> None:
    if found != asdict(expected):
        raise FashionCNNError(f"{out} holds a run of another config (another --epochs?); "
                              "remove it or pass another --runs.")


# ---------------------------------------------------------------------------------------------
# From a run's history to the curve and its time to 95%


def curve(history: list[Record]) -> list[Record]:
    """Per epoch: cumulative training minutes, validation and test accuracy, and the test
    accuracy of the validation-selected checkpoint (the best validation accuracy so far; a tie
    keeps the earlier epoch; without a validation split, the epoch's own model)."""
    points, minutes, best_val, chosen = [], 0.0, float("-inf"), None
    for h in history:
        minutes += h["epoch_seconds"] / 60
        if h["val_accuracy"] is None or h["val_accuracy"] > best_val:
            best_val = best_val if h["val_accuracy"] is None else h["val_accuracy"]
            chosen = h
        point = {"epoch": h["epoch"], "minutes": minutes, "val_accuracy": h["val_accuracy"],
                 "test_accuracy": h["test_accuracy"], "selected_epoch": chosen["epoch"],
                 "selected_test_accuracy": chosen["test_accuracy"]}
        if "test_accuracy_tta" in h:
            point["test_accuracy_tta"] = h["test_accuracy_tta"]
            point["selected_test_accuracy_tta"] = chosen["test_accuracy_tta"]
        points.append(point)
    return points


def minutes_to(points: list[Record], target: float = TARGET,
               key: str = "selected_test_accuracy") -> float | None:
    """The first cumulative training minutes at which points' `key` is >= target (None:
    never)."""
    return next((p["minutes"] for p in points if p[key] >= target), None)


def seed_result(metrics: Record, out: Path) -> Record:
    """One seed's record in the result: the curve, totals and time to 95%."""
    points = curve(metrics["epochs"])
    last = points[-1]
    result = {"run": str(out), "epochs": points, "train_minutes": last["minutes"],
              "final_test_accuracy": metrics["test_accuracy"],
              "selected_epoch": last["selected_epoch"],
              "selected_test_accuracy": last["selected_test_accuracy"],
              "minutes_to_95": minutes_to(points),
              "git_commit": metrics["git_commit"], "date": metrics["date"]}
    if "test_accuracy_tta" in last:
        result["selected_test_accuracy_tta"] = last["selected_test_accuracy_tta"]
        result["minutes_to_95_tta"] = minutes_to(points, key="selected_test_accuracy_tta")
    return result


def over_seeds(seeds: dict[str, Record], suffix: str = "") -> Record:
    """Whether every seed reaches 95% (key minutes_to_95 + suffix), and the slowest's time."""
    times = [s[f"minutes_to_95{suffix}"] for s in seeds.values()]
    reached = all(t is not None for t in times)
    return {f"all_seeds_reach_95{suffix}": reached,
            f"worst_minutes_to_95{suffix}": max(times) if reached else None}


def reference_points(root: Path = ROOT) -> list[Record]:
    """REFERENCES as read from their files now; a missing file or key leaves its point out."""
    points = []
    for label, name, acc_keys, seconds_keys in REFERENCES:
        try:
            data = json.loads((root / name).read_text())
            accuracy, seconds = _dig(data, acc_keys), _dig(data, seconds_keys)
        except (OSError, KeyError, TypeError, ValueError):
            continue
        points.append({"label": label, "test_accuracy": accuracy,
                       "train_minutes": seconds / 60,
                       "source": f"{name}: {'.'.join(acc_keys)}, {'.'.join(seconds_keys)}"})
    return points


def _dig(data: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        data = data[key]
    return data


def result_for(recipe: str, runs: dict[int, tuple[Record, Path]]) -> Record:
    """The JSON of one recipe's runs, by seed (metrics.json and run folder of each)."""
    seeds = {str(seed): seed_result(m, out) for seed, (m, out) in runs.items()}
    first = next(iter(runs.values()))[0]
    result = {"recipe": recipe,
              "config": {k: v for k, v in first["config"].items() if k != "seed"},
              "target_test_accuracy": TARGET, "seeds": seeds, **over_seeds(seeds)}
    if all("minutes_to_95_tta" in s for s in seeds.values()):
        result.update(over_seeds(seeds, "_tta"))
    loads = [e["load_average"] for m, _ in runs.values() for e in m["epochs"]
             if "load_average" in e]
    if loads:  # the minutes are only as quiet as the machine was
        result["load_average"] = [min(loads), max(loads)]  # lowest, highest at an epoch's end
    return {**result, "references": reference_points()}


# ---------------------------------------------------------------------------------------------
# The figure


def plot_curves(results_dir: Path = common.RESULTS, path: Path = PLOT) -> None:
    """Validation-selected test accuracy against training minutes, one line per recipe and
    seed of every time_to_accuracy_*.json in `results_dir` (dotted: with test-time
    augmentation), the reference points and 95%, written atomically to `path`."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    from fashion_cnn.files import save_figure

    fig, ax = plt.subplots(figsize=(8, 5))
    for colour, file in enumerate(sorted(results_dir.glob("time_to_accuracy_*.json"))):
        _plot_recipe(ax, json.loads(file.read_text()), f"C{colour}")
    for k, ref in enumerate(reference_points()):
        ax.scatter(ref["train_minutes"], 100 * ref["test_accuracy"], marker="*^sD"[k % 4],
                   s=90, color="black", zorder=3, label=ref["label"])
    ax.axhline(100 * TARGET, color="grey", linestyle="--", linewidth=1, label="95%")
    ax.set_xscale("log")
    ax.set(xlabel="training minutes (2-core CPU; log scale)",
           ylabel="test accuracy, validation-selected (%)",
           title="Time to accuracy on the official test set")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: no overlap
    save_figure(fig, path)


def _plot_recipe(ax: Any, result: Record, colour: str) -> None:
    """One line per seed of one recipe's result (solid, and dotted with test-time
    augmentation)."""
    for k, (seed, s) in enumerate(sorted(result["seeds"].items())):
        minutes = [p["minutes"] for p in s["epochs"]]
        style = ("-", "-.", ":", "--")[k % 4] if "selected_test_accuracy_tta" not in s else "-"
        ax.plot(minutes, [100 * p["selected_test_accuracy"] for p in s["epochs"]],
                color=colour, linestyle=style, marker=".", alpha=1 - 0.25 * (k % 3),
                label=f"{result['recipe']} recipe, seed {seed}")
        if "selected_test_accuracy_tta" in s:
            ax.plot(minutes, [100 * p["selected_test_accuracy_tta"] for p in s["epochs"]],
                    color=colour, linestyle=":", alpha=1 - 0.25 * (k % 3),
                    label=f"{result['recipe']} recipe, seed {seed}, {tta_short(result)}")


def tta_short(result: Record) -> str:
    """The legend's name for a recipe's test-time augmentation."""
    return "mirror + shifts" if result["config"].get("tta_shift") else "flip-averaged"


# ---------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.parser(__doc__, None, seeds=[0, 1], runs="runs/time_to_accuracy")
    p.add_argument("--recipe", choices=list(RECIPES), help="the recipe to train (required "
                   "unless --plot-only)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's)")
    p.add_argument("--plot-only", action="store_true",
                   help="only redraw docs/time_to_accuracy.png from the results files")
    args = p.parse_args(argv)
    if not args.plot_only and args.recipe is None:
        p.error("--recipe is required (or --plot-only)")
    if args.out is None and args.recipe:
        args.out = common.RESULTS / f"time_to_accuracy_{args.recipe}.json"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.plot_only:
        try:
            measure(args)
        except FashionCNNError as err:
            sys.exit(str(err))
    plot_curves(common.RESULTS, PLOT)
    print(f"-> {PLOT}")


def measure(args: argparse.Namespace) -> None:
    """Train (or reuse) every seed's run, write the result JSON and print a summary."""
    data = common.load_data(args)
    runs = {}
    for seed in args.seeds:
        out = args.runs / f"{args.recipe}-seed{seed}"
        config = recipe_config(args.recipe, seed=seed, epochs=args.epochs)
        runs[seed] = (train_or_load(config, data, out), out)
    result = result_for(args.recipe, runs)
    common.write_result(args.out, result, seed=args.seeds[0], checksums=data.checksums)
    for seed, s in result["seeds"].items():
        to_95 = s["minutes_to_95"]
        print(f"seed {seed}: {s['train_minutes']:.2f} min of training, selected test "
              f"{100 * s['selected_test_accuracy']:.2f}% (epoch {s['selected_epoch']}), 95% "
              + ("never" if to_95 is None else f"after {to_95:.2f} min"))
    print(f"every seed reaches 95%: {result['all_seeds_reach_95']} -> {args.out}")


if __name__ == "__main__":
    main()
