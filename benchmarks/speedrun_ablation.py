"""Ablation of the speed-run recipe: one line per trick, its effect on validation accuracy and
on training time. The test set is never looked at here.

    python benchmarks/speedrun_ablation.py [--only NAME ...] [--seed 0]
        [--runs runs/speedrun_ablation] [--out benchmarks/results/speedrun_ablation.json]
        [--data-dir DIR]

Line "speedrun (the recipe)" trains RECIPES["speedrun"] as it is; every other line changes one
setting of it (VARIANTS). Each trains on the training split in RUNS/<line>-seedN (resumable:
an interrupted line continues from its last epoch) and reports the validation accuracy after
the last epoch, plain and with test-time flip averaging (`EVALUATION`: the lines compare
training choices; which test-time views the recipe averages is chosen apart, in
benchmarks/tta_views.py), its
training seconds (shuffling, augmentation and steps, as `train_seconds` everywhere) and the
1-minute load average while it trained (times are only comparable on a quiet machine, ~2).

Lines are slow (minutes each): the result file is merged, so lines can be run a few at a time
(`--only`); a line whose recorded config is the one asked for is not trained again.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import common
import torch

from fashion_cnn.data import FashionMNIST
from fashion_cnn.evaluate import loss_and_accuracy
from fashion_cnn.provenance import provenance
from fashion_cnn.training import TrainConfig, fit, recipe_config, run_split
from fashion_cnn.training.run import initial_model

BASE = "speedrun (the recipe)"
# line -> the one setting it changes in the speedrun recipe
VARIANTS: dict[str, dict[str, Any]] = {
    BASE: {},
    # a control: the recipe again on a later day's code and machine (same seed), so later
    # lines can be told from drift in the code or in this shared machine's speed
    "the recipe again (a control)": {},
    "no flip augmentation": {"flip": False},
    "alternating flip (airbench's)": {"alternate_flip": True},
    "no 2-pixel translation": {"translate": 0},
    "3-pixel translation": {"translate": 3},
    "no label smoothing": {"label_smoothing": 0.0},
    "label smoothing 0.2 (airbench's)": {"label_smoothing": 0.2},
    "no weight decay": {"weight_decay": 0.0},
    "plain momentum (no Nesterov)": {"nesterov": False},
    "constant learning rate 0.01 (no one-cycle)": {"schedule": "constant", "lr": 0.01},
    "random erasing 0.5 (the best recipe's)": {"erase": 0.5},
    "random erasing 0.25": {"erase": 0.25},
    "CutMix 0.5": {"cutmix": 0.5},
    "last pooling in ceil mode (7 -> 4)": {"ceil_pool": True},
    "whitened first layer, frozen (airbench's)": {"whiten": True},
    "batch norm without a learned scale (airbench's)": {"bn_scale": False},
    "width 24": {"width": 24},
    "lookahead (airbench's weight averaging)": {"lookahead": True},
    "SAM, rho 0.05 (two gradients a step)": {"sam": 0.05},
    "float32 products (no bf16)": {"bf16": False},
    "channels-first activations": {"channels_last": False},
}
# Every line is scored with the mirror image only, whatever views the recipe itself averages
EVALUATION = {"tta_shift": 0}


def record_load(_model: torch.nn.Module, record: dict[str, Any]) -> None:
    """The after_epoch hook: the 1-minute load average as the epoch ends."""
    record["load_average"] = os.getloadavg()[0]


def train_line(config: TrainConfig, data: FashionMNIST, out: Path) -> dict[str, Any]:
    """Train `config` on the training split (resumable in `out`); validation accuracy plain
    and with flip averaging, training seconds and the load average."""
    torch.manual_seed(config.seed)
    model, _ = initial_model(config)
    train, val = run_split(len(data.train_labels), config)
    history = fit(model, config, data.train_images[train], data.train_labels[train],
                  data.train_images[val], data.train_labels[val], state_path=out / "state.pt",
                  log=lambda line: print(line, file=sys.stderr),
                  after_epoch=record_load)  # kept in the saved history: survives a resume
    loads = [h["load_average"] for h in history]
    result = {"val_accuracy": history[-1]["val_accuracy"],
              "train_seconds": sum(h["epoch_seconds"] for h in history),
              "load_average": [min(loads), max(loads)]}
    if hasattr(model, "tta"):  # the recipe's evaluation: the image and its mirror averaged
        model.tta = True
        result["val_accuracy_tta"] = loss_and_accuracy(model, data.train_images[val],
                                                       data.train_labels[val])[1]
    (out / "state.pt").unlink(missing_ok=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, "speedrun_ablation")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=Path("runs/speedrun_ablation"))
    args = parser.parse_args(argv)
    data = common.load_data(args)
    out = Path(args.out)
    lines = json.loads(out.read_text())["lines"] if out.is_file() else {}
    for name in args.only:
        config = recipe_config("speedrun", seed=args.seed, **{**VARIANTS[name], **EVALUATION})
        recorded = lines.get(name, {}).get("config")
        if recorded and TrainConfig.from_dict(recorded) == config:  # older files lack new
            # fields: they count as their defaults
            print(f"{name}: recorded", file=sys.stderr)
            continue
        folder = args.runs / f"{name.split(' (')[0].replace(' ', '-')}-seed{args.seed}"
        result = train_line(config, data, folder)
        made = provenance(args.seed)  # each line keeps when and from which commit it came
        lines[name] = {"changes": VARIANTS[name], "config": asdict(config), **result,
                       "git_commit": made["git_commit"], "date": made["date"]}
        print(f"{name}: validation {100 * result['val_accuracy']:.2f}% in "
              f"{result['train_seconds']:.0f} s", file=sys.stderr)
        common.write_result(out, {"base": BASE, "lines": lines}, seed=args.seed,
                            checksums=data.checksums)
    print(f"-> {out}")


if __name__ == "__main__":
    main()
