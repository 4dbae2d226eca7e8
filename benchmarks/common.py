"""What the benchmark scripts share: their command line, the data, the result file with its
provenance, timing, training through the real command, busy neighbours, and the virtualenv
that runs the Keras reference (keras_seed.py).

A benchmark script reads like this:

    parser = common.parser(__doc__, "train_seed", rounds=1)   # --out, --data-dir, --rounds
    parser.add_argument(...)                                   # the script's own options
    args = parser.parse_args()
    data = common.load_data(args)
    result = {...}                                             # what it measured
    common.write_result(args.out, result, seed=0, checksums=data.checksums)

Every result JSON starts with the provenance of `fashion_cnn.provenance.provenance` (command,
date, git commit, versions, machine, seed, data checksums); the script's own keys follow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fashion_cnn.data import FashionMNIST, load_fashion_mnist
from fashion_cnn.files import file_sha256, write_json
from fashion_cnn.models import resolve_checkpoint
from fashion_cnn.preprocess import PreprocessConfig
from fashion_cnn.provenance import provenance
from fashion_cnn.training import TrainConfig, recipe_config
from fashion_cnn.training.config import setting_argument

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
FASHION_CNN = str(Path(sys.executable).with_name("fashion-cnn"))  # the installed command
KERAS_VENV = HERE.parent / ".venv-keras"
KERAS_PACKAGE = "tensorflow-cpu==2.21.0"


# ---------------------------------------------------------------------------------------------
# Command line, data, result


def parser(doc: str | None, name: str | None, *, data: bool = True,
           seeds: Sequence[int] | None = None, runs: str | None = None,
           rounds: int | None = None) -> argparse.ArgumentParser:
    """A script's parser: its docstring as help, --out (default results/NAME.json; NAME None:
    no default, the script names the file) and, as asked, --data-dir, --seeds, --runs and
    --rounds with the given defaults."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    out = RESULTS / f"{name}.json" if name else None
    p.add_argument("--out", type=Path, default=out,
                   help=f"result JSON (default: {out.relative_to(HERE.parent)})" if out else
                   "result JSON (default: see above)")
    if data:
        p.add_argument("--data-dir", type=Path, default=None,
                       help="folder with the four Fashion-MNIST .gz files (default: the usual "
                       "lookup, $FASHION_MNIST_DIR first)")
    if seeds is not None:
        p.add_argument("--seeds", type=int, nargs="+", default=list(seeds))
    if runs is not None:
        p.add_argument("--runs", type=Path, default=Path(runs),
                       help="folder of the training runs (finished ones are reused)")
    if rounds is not None:
        p.add_argument("--rounds", type=int, default=rounds,
                       help="how many times every setting runs, taking turns")
    return p


def classifier_flags(parser: argparse.ArgumentParser) -> None:
    """--model (a shipped model's name or a checkpoint; default: the shipped default) and
    --backend (what runs it), for scripts that classify through `predict`."""
    from fashion_cnn.models import DEFAULT_MODEL
    from fashion_cnn.predict import BACKENDS

    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="a shipped model's name or a checkpoint")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="what runs the model")


def comma_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: 'a,b' -> ['a', 'b'], each one of `choices`."""
    def parse(text: str) -> list[str]:
        items = text.split(",")
        if unknown := [item for item in items if item not in choices]:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
        return items
    return parse


def load_data(args: argparse.Namespace) -> FashionMNIST:
    """The verified dataset, from --data-dir or the usual lookup; never downloads."""
    return load_fashion_mnist(args.data_dir, offline=True)


def data_dir_flag(args: argparse.Namespace) -> list[str]:
    """--data-dir passed on to a child command, if it was given."""
    return ["--data-dir", str(args.data_dir)] if args.data_dir else []


def write_result(out: Path, result: dict[str, Any], *, seed: int | None,
                 checksums: dict[str, str]) -> None:
    """Write `result` to `out` after its provenance (the result's own keys win, e.g. a
    "command" naming the training command it measured). A result naming its `checkpoint` also
    records that file's SHA-256: a shipped model's path stays while its weights change."""
    checkpoint = result.get("checkpoint")
    if isinstance(checkpoint, str) and Path(checkpoint).is_file():
        result = {**result, "checkpoint_sha256": file_sha256(checkpoint)}
    write_json(out, {**provenance(seed, checksums), **result})


# ---------------------------------------------------------------------------------------------
# Timing and training


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of fn."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def cli_training(out: Path, recipe: str, seed: int, data_dir: Path | None = None,
                 **flags: bool) -> dict[str, Any]:
    """metrics.json of `fashion-cnn train --model seed --recipe RECIPE --seed SEED [--FLAG]`
    run into `out` (`train_or_reuse`)."""
    return train_or_reuse(
        out, recipe_config(recipe, seed=seed, **flags),
        ["--model", "seed", "--recipe", recipe, "--seed", str(seed),
         *(["--data-dir", str(data_dir)] if data_dir else []),
         *(f"--{'' if on else 'no-'}{name.replace('_', '-')}" for name, on in flags.items())])


def train_or_reuse(out: Path, expected: TrainConfig, args: list[str]) -> dict[str, Any]:
    """metrics.json of `fashion-cnn train ARGS --out OUT --quiet`; a finished run in `out`
    whose config equals `expected` (a TrainConfig) is reused, any other replaced. The saved
    config is read as training reads it, so a run from before a new setting existed (saved
    without it, so at its default) is still the same run."""
    metrics_path = out / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        if TrainConfig.from_dict(metrics["config"]) == expected and same_start(metrics):
            print(f"reusing {out}", file=sys.stderr)
            return metrics
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([FASHION_CNN, "train", *args, "--out", str(out), "--quiet"], check=True)
    return json.loads(metrics_path.read_text())


def same_start(metrics: dict[str, Any]) -> bool:
    """Whether a finished run's `--init` file is still the one it started from (`--init best`
    names whatever is shipped now, which changes when a new default ships)."""
    start = metrics.get("init")
    if not start or "sha256" not in start:
        return True  # from scratch, or recorded before runs named their start's SHA-256
    path = resolve_checkpoint(metrics["config"]["init"])
    return path.is_file() and file_sha256(path) == start["sha256"]


@contextlib.contextmanager
def busy_neighbours(n: int) -> Iterator[None]:
    """n processes spinning in a Python loop while the block runs: other programs wanting
    whole cores."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


# ---------------------------------------------------------------------------------------------
# The Keras reference, in its own virtualenv


def keras_python() -> tuple[Path | None, str]:
    """Python of .venv-keras with TensorFlow, installing it there once if needed
    -> (its path, "") or (None, why not)."""
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


def keras_run(python: Path, data_dir: Path, epochs: int, seed: int) -> dict[str, Any]:
    """One training run of keras_seed.py under `python`: its JSON record."""
    out = subprocess.run([str(python), str(HERE / "keras_seed.py"), str(data_dir),
                          "--epochs", str(epochs), "--seed", str(seed)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sign_test(won: int, lost: int) -> float:
    """Two-sided exact sign test: how likely a split at least this uneven of the `won` +
    `lost` pairs that differ is when either side is as likely to win each one."""
    n = won + lost
    tail = sum(math.comb(n, k) for k in range(min(won, lost) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def preprocess_flag(parser: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE` (repeatable): a preprocessing setting to try instead of the model's."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        type=setting_argument(PreprocessConfig()),
                        help="override a preprocessing setting, e.g. --set foreground=cutout")


def override(config: PreprocessConfig, settings: list[tuple[str, Any]]) -> PreprocessConfig:
    """`config` with --set's (KEY, VALUE) pairs in place of its own values."""
    return replace(config, **dict(settings))


def scored(predictions: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """`predict` Predictions as the photo scores take them: (class probabilities float [N, 10],
    in-class scores float [N]). A picture given no label ("no garment found") counts as wrong
    whatever its folder and as out of class (score 0)."""
    probabilities = [p.probabilities if p.label is not None else [0.0] * 10 for p in predictions]
    in_class = [float(p.in_class) if p.label is not None else 0.0 for p in predictions]
    return torch.tensor(probabilities), torch.tensor(in_class)
