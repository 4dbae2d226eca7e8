"""Benchmark: the measured effect of each augmentation flag on the seed model.

    python benchmarks/augment_ablation.py [--runs runs/aug] [--n 3000]
        [--out benchmarks/results/augment_ablation.json] [--data-dir DIR]

Trains the seed model (10 epochs, seed 0, faithful recipe otherwise) once per setting below,
resuming or reusing finished runs in --runs, then scores each on the validation split: clean
accuracy, and accuracy on photo-style versions of the same validation images
(benchmarks/photo_accuracy.py --split val, the current default preprocessing). Choices are made
on these numbers; each run's official test accuracy is listed too, as measured once at the end
of its training. The JSON starts with the provenance (command, date, git commit, versions,
seed, and the checksums of the data the runs trained on).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import common

from fashion_cnn.preprocess import PreprocessConfig

SETTINGS = {
    "none": [],
    "flip": ["--flip"],
    "geom": ["--shift", "2", "--scale", "0.1"],
    "tone": ["--contrast", "0.3", "--sharpness", "0.6", "--noise", "8"],
    "light": ["--flip", "--shift", "1", "--scale", "0.05", "--contrast", "0.15", "--noise", "4"],
    "photo": ["--augment", "photo"],
}


def train(run: Path, flags: list[str], data: list[str]) -> None:
    """`fashion-cnn train FLAGS` into `run`: nothing if it finished, resumed if interrupted;
    data: the --data-dir flag, if any."""
    if (run / "model.pt").is_file():
        return
    args = ["--resume", str(run)] if (run / "config.json").is_file() else ["--out", str(run),
                                                                            *flags]
    subprocess.run([common.FASHION_CNN, "train", "--quiet", *args, *data], check=True)


def photo_score(run: Path, n: int, data: list[str]) -> dict:
    """photo_accuracy.py's result for the run on its first n validation images, scored with
    today's default preprocessing whatever the run's checkpoint recorded."""
    defaults = [f"--set={k}={v}" for k, v in PreprocessConfig().to_dict().items()]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "photo.json"
        subprocess.run([sys.executable, str(common.HERE / "photo_accuracy.py"), "--model",
                        str(run), "--split", "val", "--n", str(n), "--out", str(out),
                        *defaults, *data], check=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = common.parser(__doc__, "augment_ablation", runs="runs/aug")
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    data = common.data_dir_flag(args)
    table, checksums = {}, {}
    for name, flags in SETTINGS.items():
        run = args.runs / name
        train(run, flags, data)
        metrics = json.loads((run / "metrics.json").read_text())
        checksums = checksums or metrics["data_checksums"]
        photo = photo_score(run, args.n, data)
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
    common.write_result(args.out, {"n_photo_images": args.n, "settings": table}, seed=0,
                        checksums=checksums)


if __name__ == "__main__":
    main()
