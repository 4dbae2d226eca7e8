"""Benchmark: the measured effect of each augmentation flag on the seed model.

    python benchmarks/augment_ablation.py [--runs runs/aug] [--n 3000]
        [--out benchmarks/results/augment_ablation.json]

Trains the seed model (10 epochs, seed 0, faithful recipe otherwise) once per setting below,
resuming or reusing finished runs in --runs, then scores each on the validation split: clean
accuracy, and accuracy on photo-style versions of the same validation images
(benchmarks/photo_accuracy.py --split val, the current default preprocessing). Choices are made
on these numbers; each run's official test accuracy is listed too, as measured once at the end
of its training.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from fashion_cnn.files import write_json
from fashion_cnn.preprocess import PreprocessConfig

HERE = Path(__file__).resolve().parent
SETTINGS = {
    "none": [],
    "flip": ["--flip"],
    "geom": ["--shift", "2", "--scale", "0.1"],
    "tone": ["--contrast", "0.3", "--sharpness", "0.6", "--noise", "8"],
    "light": ["--flip", "--shift", "1", "--scale", "0.05", "--contrast", "0.15", "--noise", "4"],
    "photo": ["--augment", "photo"],
}


def train(run: Path, flags: list[str]) -> None:
    exe = str(Path(sys.executable).with_name("fashion-cnn"))
    if (run / "model.pt").is_file():
        return
    args = ["--resume", str(run)] if (run / "config.json").is_file() else ["--out", str(run),
                                                                            *flags]
    subprocess.run([exe, "train", "--quiet", *args], check=True)


def photo_score(run: Path, n: int) -> dict:
    # Score with today's default preprocessing, whatever the run's checkpoint recorded.
    defaults = [f"--set={k}={v}" for k, v in PreprocessConfig().to_dict().items()]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "photo.json"
        subprocess.run([sys.executable, str(HERE / "photo_accuracy.py"), "--model", str(run),
                        "--split", "val", "--n", str(n), "--out", str(out), *defaults],
                       check=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs/aug"))
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "augment_ablation.json")
    args = parser.parse_args()
    table = {}
    for name, flags in SETTINGS.items():
        run = args.runs / name
        train(run, flags)
        metrics = json.loads((run / "metrics.json").read_text())
        photo = photo_score(run, args.n)
        table[name] = {"flags": flags, "config": metrics["config"],
                       "val_accuracy": metrics["val_accuracy"],
                       "val_clean_accuracy_first_n": photo["clean_accuracy"],
                       "val_photo_accuracy": photo["photo_accuracy"],
                       "val_gap_points": photo["gap_points"],
                       "test_accuracy": metrics["test_accuracy"],
                       "train_seconds": metrics["train_seconds"]}
        print(f"{name:<6} val {100 * metrics['val_accuracy']:.2f}%  photo-style val "
              f"{100 * photo['photo_accuracy']:.2f}%  test {100 * metrics['test_accuracy']:.2f}%",
              file=sys.stderr)
    write_json(args.out, {"n_photo_images": args.n, "settings": table})


if __name__ == "__main__":
    main()
