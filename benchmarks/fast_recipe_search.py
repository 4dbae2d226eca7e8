"""How the fast recipe was chosen: candidate settings of the seed CNN, trained on the training
split and scored on the validation split only (the test set is never looked at here).

    python benchmarks/fast_recipe_search.py [--only NAME ...]
        [--out benchmarks/results/fast_recipe_search.json] [--data-dir DIR]

Each candidate overrides the fast recipe's settings (train.RECIPES["fast"]); its validation
accuracy after the last epoch and its training seconds go into the JSON.
"""

from __future__ import annotations

import sys
from dataclasses import asdict

import common
import torch

from fashion_cnn.models import build_model
from fashion_cnn.training import TrainConfig, fit, recipe_config, run_split

# name -> (overrides of the fast recipe, seeds)
CANDIDATES: dict[str, tuple[dict, tuple[int, ...]]] = {
    "batch128_5ep": (dict(epochs=5), (0,)),
    "batch128_4ep": (dict(epochs=4), (0,)),
    "batch64_4ep_peak0.05": (dict(batch_size=64, epochs=4, lr=0.05), (0,)),
    "batch64_4ep": (dict(batch_size=64, epochs=4), (0,)),
    "batch256_5ep_peak0.2": (dict(batch_size=256, epochs=5, lr=0.2), (0,)),
    "batch128_4ep_peak0.2": (dict(epochs=4, lr=0.2), (0,)),
    "batch128_4ep_no_smoothing": (dict(epochs=4, label_smoothing=0.0), (0,)),
    "batch128_5ep_weight_decay": (dict(epochs=5, weight_decay=5e-4), (0,)),
    "batch256_6ep_peak0.2": (dict(batch_size=256, epochs=6, lr=0.2), (0, 1, 2)),
    "batch128_6ep (the recipe)": (dict(epochs=6), (0, 1, 2)),
}


def score(config: TrainConfig, data) -> dict:
    """Train on the training split; the last epoch's validation accuracy and training time."""
    torch.manual_seed(config.seed)
    model = build_model(config.model)
    train, val = run_split(len(data.train_labels), config)
    history = fit(model, config, data.train_images[train], data.train_labels[train],
                  data.train_images[val], data.train_labels[val], progress=False,
                  log=lambda _: None)
    return {"val_accuracy": history[-1]["val_accuracy"],
            "train_seconds": sum(h["epoch_seconds"] for h in history)}


def main() -> None:
    parser = common.parser(__doc__, "fast_recipe_search")
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    args = parser.parse_args()
    data = common.load_data(args)
    results = {}
    for name in args.only:
        overrides, seeds = CANDIDATES[name]
        runs = {}
        for seed in seeds:
            runs[seed] = score(recipe_config("fast", seed=seed, **overrides), data)
            print(f"{name}, seed {seed}: validation {100 * runs[seed]['val_accuracy']:.2f}% in "
                  f"{runs[seed]['train_seconds']:.1f} s", file=sys.stderr)
        results[name] = {"overrides": overrides,
                         "config": asdict(recipe_config("fast", **overrides)), "runs": runs}
    common.write_result(args.out, {"candidates": results}, seed=0, checksums=data.checksums)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
