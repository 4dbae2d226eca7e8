"""Benchmark: the faithful seed recipe (batch 32, SGD 0.01/0.9, 10 epochs) - images/s per epoch
and final test accuracy - for fashion-cnn's training paths (the fused step, the default, and
plain PyTorch autograd) beside the original Keras model, all run one after another on the
same machine.

    python benchmarks/train_seed.py [--epochs 10] [--seed 0] [--keras auto|skip]
        [--paths fused,plain,channels_last] [--out benchmarks/results/train_seed.json]

--keras auto: installs tensorflow-cpu==2.21.0 into .venv-keras (once) and times
benchmarks/keras_seed.py there; if that is impossible the JSON says why and quotes the last
recorded Keras figure, marked as such.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from fashion_cnn.data import load_fashion_mnist
from fashion_cnn.files import write_json
from fashion_cnn.provenance import provenance
from fashion_cnn.train import TrainConfig, run_training

HERE = Path(__file__).resolve().parent
KERAS_VENV = HERE.parent / ".venv-keras"
KERAS_PACKAGE = "tensorflow-cpu==2.21.0"
# Last figure measured on this kind of machine (2 cores), for when TensorFlow cannot install.
KERAS_LAST_RECORDED = {"images_per_second": 5939, "epoch_seconds": 9.1,
                       "source": "benchmarks/results/train_seed.json of 2026-11-25 (Keras 3.15.1 / "
                                 "TF 2.21.0, 2-core development machine)"}


PATHS = {"fused": {}, "plain": {"fused": False},
         "channels_last": {"fused": False, "channels_last": True}}


def fashion_cnn_run(data, epochs: int, seed: int, path: str) -> dict:
    config = TrainConfig(epochs=epochs, seed=seed, **PATHS[path])
    with tempfile.TemporaryDirectory() as tmp:
        m = run_training(config, data, Path(tmp) / "run", progress=False, log=lambda _: None)
    per_epoch = [m["n_train"] / e["epoch_seconds"] for e in m["epochs"]]
    return {"epoch_seconds": [e["epoch_seconds"] for e in m["epochs"]],
            "images_per_second": per_epoch,
            "median_images_per_second": statistics.median(per_epoch),
            "train_seconds": m["train_seconds"], "n_train": m["n_train"],
            "val_accuracy": m["val_accuracy"], "test_accuracy": m["test_accuracy"],
            "test_eval_seconds": m["test_eval_seconds"], "config": m["config"]}


def keras_python() -> tuple[Path | None, str]:
    """Python of a venv with TensorFlow, installing it if needed -> (path or None, why not)."""
    python = KERAS_VENV / "bin" / "python"
    check = [str(python), "-c", "import tensorflow"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(KERAS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", KERAS_PACKAGE], check=True,
                       capture_output=True, timeout=1800)
    except (subprocess.SubprocessError, OSError) as err:
        return None, f"could not install {KERAS_PACKAGE}: {err}"
    return python, ""


def keras_run(python: Path, data_dir: Path, epochs: int, seed: int) -> dict:
    out = subprocess.run([str(python), str(HERE / "keras_seed.py"), str(data_dir),
                          "--epochs", str(epochs), "--seed", str(seed)],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["median_images_per_second"] = statistics.median(result["images_per_second"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keras", choices=["auto", "skip"], default="auto")
    parser.add_argument("--paths", default="fused,plain",
                        help=f"comma-separated, from: {', '.join(PATHS)}")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "train_seed.json")
    args = parser.parse_args()

    paths = args.paths.split(",")
    if unknown := set(paths) - set(PATHS):
        parser.error(f"unknown --paths {unknown}; choose from {', '.join(PATHS)}")

    data = load_fashion_mnist(offline=True)
    result = {**provenance(args.seed, data.checksums), "runs": {}}
    runs = result["runs"]
    for path in paths:
        print(f"fashion-cnn {path}, faithful recipe ...", file=sys.stderr)
        runs[path] = fashion_cnn_run(data, args.epochs, args.seed, path)
    if args.keras == "auto":
        python, why = keras_python()
        if python is not None:
            print("keras reference ...", file=sys.stderr)
            result["keras"] = keras_run(python, data.directory, args.epochs, args.seed)
            result["keras"]["status"] = "measured in this run"
        else:
            result["keras"] = {**KERAS_LAST_RECORDED, "status": f"last recorded figure; {why}",
                               "median_images_per_second": KERAS_LAST_RECORDED[
                                   "images_per_second"]}
        keras = result["keras"]["median_images_per_second"]
        result["speedup_vs_keras"] = {path: r["median_images_per_second"] / keras
                                      for path, r in runs.items()}
    write_json(args.out, result)
    for path, r in runs.items():
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
