"""Benchmark: the faithful seed recipe (batch 32, SGD 0.01/0.9, 10 epochs) - images/s per epoch
and final test accuracy - for fashion-cnn's training paths (the fused step with its numba
kernels, the default; the same with fc1's products in bfloat16, --bf16; the fused step with
torch operations, --no-numba; plain PyTorch autograd, --no-fused) beside the original Keras
model, all run one after another on the same machine. The machine is shared and its speed
drifts from epoch to epoch, so with --rounds R every path and Keras run R times, taking turns;
each figure is the median over all their epochs, and each round's own ratio to Keras is kept
too.

    python benchmarks/train_seed.py [--epochs 10] [--seed 0] [--rounds 1] [--keras auto|skip]
        [--paths plain,fused_torch,fused,fused_bf16,fused_2threads,channels_last] [--busy 0]
        [--out benchmarks/results/train_seed.json] [--data-dir DIR]

--busy N keeps N busy-loop processes running throughout (common.busy_neighbours): a machine
where other programs want cores. fused_2threads is the default path with its thread count
fixed at 2 instead of automatic (threads.py).

--keras auto: installs tensorflow-cpu==2.21.0 into .venv-keras (once) and times
benchmarks/keras_seed.py there (common.keras_python); if that is impossible the JSON says why
and quotes the last Keras figure measured by this benchmark (the newest train_seed*.json in
benchmarks/results), marked as such.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

import common

from fashion_cnn.training import recipe_config, run_training

PATHS = {"fused": {}, "fused_bf16": {"bf16": True}, "fused_torch": {"numba": False},
         "fused_2threads": {"threads": 2},
         "plain": {"fused": False},
         "channels_last": {"fused": False, "channels_last": True}}


def fashion_cnn_run(data, epochs: int, seed: int, path: str) -> dict:
    """One training run of a path with the faithful recipe: images/s per epoch and accuracy."""
    config = recipe_config("faithful", epochs=epochs, seed=seed, **PATHS[path])
    with tempfile.TemporaryDirectory() as tmp:
        m = run_training(config, data, Path(tmp) / "run", progress=False, log=lambda _: None)
    per_epoch = [m["n_train"] / e["epoch_seconds"] for e in m["epochs"]]
    return {"epoch_seconds": [e["epoch_seconds"] for e in m["epochs"]],
            "images_per_second": per_epoch,
            "median_images_per_second": statistics.median(per_epoch),
            "train_seconds": m["train_seconds"], "n_train": m["n_train"],
            "val_accuracy": m["val_accuracy"], "test_accuracy": m["test_accuracy"],
            "test_eval_seconds": m["test_eval_seconds"], "config": m["config"]}


def summarize(runs: list[dict]) -> dict:
    """One path's rounds -> the first round's record, with images/s and epoch times over all
    rounds (the median is over every epoch of every round) and each round's accuracy."""
    per_epoch = [v for run in runs for v in run["images_per_second"]]
    return {**runs[0], "images_per_second": per_epoch,
            "epoch_seconds": [v for run in runs for v in run["epoch_seconds"]],
            "median_images_per_second": statistics.median(per_epoch),
            "train_seconds_per_round": [run["train_seconds"] for run in runs],
            "test_accuracy_per_round": [run.get("test_accuracy") for run in runs]}


def last_keras_record() -> dict | None:
    """The Keras figure of the newest result here that measured Keras on a quiet machine (no
    --busy), with where it came from, for when TensorFlow cannot be installed; else None."""
    measured = []
    for path in common.RESULTS.glob("train_seed*.json"):
        result = json.loads(path.read_text())
        keras = result.get("keras", {})
        if keras.get("status") == "measured in this run" and not result.get("busy_processes"):
            measured.append((result["date"], path, keras))
    if not measured:
        return None
    date, path, keras = max(measured, key=lambda m: m[0])
    return {"images_per_second": keras["median_images_per_second"],
            "epoch_seconds": statistics.median(keras["epoch_seconds"]),
            "source": f"benchmarks/results/{path.name} of {date[:10]} ({keras['framework']}, "
                      f"median of {len(keras['train_seconds_per_round'])} runs)"}


def main() -> None:
    parser = common.parser(__doc__, "train_seed", rounds=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keras", choices=["auto", "skip"], default="auto")
    parser.add_argument("--paths", type=common.comma_list(list(PATHS)),
                        default=["plain", "fused_torch", "fused", "fused_bf16"],
                        help=f"comma-separated, from: {', '.join(PATHS)}")
    parser.add_argument("--busy", type=int, default=0, help="busy-loop processes beside")
    args = parser.parse_args()

    paths = args.paths
    data = common.load_data(args)
    python, why = common.keras_python() if args.keras == "auto" else (None, "--keras skip")
    result = {"rounds": args.rounds, "busy_processes": args.busy, "runs": {}}
    rounds: dict[str, list[dict]] = {path: [] for path in paths}
    keras_rounds: list[dict] = []
    with common.busy_neighbours(args.busy):
        for r in range(1, args.rounds + 1):  # the paths and Keras take turns
            for path in paths:
                print(f"round {r}: fashion-cnn {path}, faithful recipe ...", file=sys.stderr)
                rounds[path].append(fashion_cnn_run(data, args.epochs, args.seed, path))
            if python is not None:
                print(f"round {r}: keras reference ...", file=sys.stderr)
                keras_rounds.append(common.keras_run(python, data.directory, args.epochs,
                                                     args.seed))
    result["runs"] = {path: summarize(runs) for path, runs in rounds.items()}
    if keras_rounds:
        result["keras"] = {**summarize(keras_rounds), "status": "measured in this run"}
    elif args.keras == "auto" and (last := last_keras_record()):
        result["keras"] = {**last, "status": f"last recorded figure; {why}",
                           "median_images_per_second": last["images_per_second"]}
    if "keras" in result:
        keras = result["keras"]["median_images_per_second"]
        result["speedup_vs_keras"] = {path: r["median_images_per_second"] / keras
                                      for path, r in result["runs"].items()}
        if keras_rounds:  # each round's ratio, its paths against its own Keras run
            result["speedup_vs_keras_per_round"] = {
                path: [statistics.median(run["images_per_second"])
                       / statistics.median(k["images_per_second"])
                       for run, k in zip(runs, keras_rounds, strict=True)]
                for path, runs in rounds.items()}
    common.write_result(args.out, result, seed=args.seed, checksums=data.checksums)
    for path, r in result["runs"].items():
        line = (f"fashion-cnn {path}: {r['median_images_per_second']:,.0f} images/s (median "
                f"epoch), test accuracy {100 * r['test_accuracy']:.2f}%")
        if "keras" in result:
            line += f", x{result['speedup_vs_keras'][path]:.2f} Keras"
        print(line)
    if "keras" in result:
        k = result["keras"]
        accuracy = f", {100 * k['test_accuracy']:.2f}%" if "test_accuracy" in k else ""
        print(f"keras: {k['median_images_per_second']:,.0f} images/s{accuracy} ({k['status']})")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
