"""Train the orientation network that `predict` uses to turn garments lying on their side
upright (orientation.py), choose its threshold on validation pictures and ship it.

    python scripts/ship_upright.py [--epochs 20] [--width 8] [--photo-repeat 8]
        [--allowed 0.02] [--seed 0] [--out src/fashion_cnn/weights/upright]

Trains on the default model's Fashion-MNIST training split (its validation split held out) and
the real photos' train split (clothing-dataset-small, every folder, repeated --photo-repeat
times an epoch, as predict's preprocessing converts them). The threshold is the lowest
probability of a turn at which at most --allowed of the real validation photos, all upright,
would be called turned. Writes model.pt, metrics.json (provenance, the turn accuracy on both
validation splits) and MODEL_CARD.md into --out.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from fashion_cnn.data import load_fashion_mnist
from fashion_cnn.files import atomic_path, write_json
from fashion_cnn.models import count_parameters, load_checkpoint, shipped_model_dir
from fashion_cnn.orientation import (
    SHIPPED,
    TURNS,
    UprightConfig,
    choose_threshold,
    save_upright,
    train_upright,
    turn_probabilities,
    turned,
)
from fashion_cnn.photos import load_photos
from fashion_cnn.provenance import provenance
from fashion_cnn.training.run import run_split


def turn_figures(net: torch.nn.Module, upright: torch.Tensor, threshold: float
                 ) -> dict[str, float]:
    """On upright pictures [N, 28, 28] shown at each turn: how often the surest turn is the
    right one, and at the threshold how many upright pictures are called turned and how many
    turned ones are turned back rightly."""
    right, back = [], []
    called_turned = 0.0
    for k in range(len(TURNS)):
        probs = turn_probabilities(net, turned(upright, k))
        sure, guess = probs.max(1)
        right.append((guess == k).float().mean().item())
        believed = torch.where(sure >= threshold, guess, 0)
        if k == 0:
            called_turned = (believed != 0).float().mean().item()
        else:
            back.append((believed == k).float().mean().item())
    return {"turn_accuracy": sum(right) / len(right), "upright_called_turned": called_turned,
            "turned_back_rightly": sum(back) / len(back), "n": len(upright)}


def card(metrics: dict[str, Any]) -> str:
    """MODEL_CARD.md from metrics.json's figures."""
    c, v = metrics["config"], metrics["validation"]
    rows = "\n".join(f"| {name} | {v[name]['n']:,} | {100 * v[name]['turn_accuracy']:.1f}% "
                     f"| {100 * v[name]['upright_called_turned']:.2f}% "
                     f"| {100 * v[name]['turned_back_rightly']:.1f}% |" for name in v)
    return f"""# Model card: `upright` (which way up a garment lies)

Not a classifier of clothes: a helper of `fashion-cnn predict`, the app and the API. It tells
whether a picture's garment is upright or turned by a quarter, a half or three quarters, so
that a garment photographed lying on its side is turned back before the classifier sees it
(docs/design.md, "Garments lying on their side"). The classifier must agree: a picture is
turned back only where it is at least as sure of the turned-back picture.

- Architecture: the default's (models.BestCNN) at width {c['width']}, 4 outputs;
  {metrics['parameters']:,} parameters.
- Data: the default model's Fashion-MNIST training split (its validation split held out) and
  the real photos' train split (clothing-dataset-small, all 13 folders, each repeated
  {metrics['photo_repeat']} times an epoch), each image mirrored at random and turned by a random
  quarter, the turn its target. Checksums in metrics.json.
- Training: {c['epochs']} epochs, SGD with Nesterov momentum 0.9, one-cycle peak {c['lr']},
  batch {c['batch_size']}, weight decay {c['weight_decay']}, seed {c['seed']};
  {metrics['train_seconds'] / 60:.1f} minutes on this CPU.
- Threshold: {metrics['threshold']:.3f}, the lowest at which at most
  {100 * metrics['allowed']:g}% of the upright real validation photos are called turned.
- Made by: `python scripts/{metrics['command']}` (commit {metrics['git_commit']}).

## Validation (each picture shown at all four turns)

| split | pictures | surest turn right | upright called turned | turned ones turned back |
| --- | --- | --- | --- | --- |
{rows}

What it does to the classifier's answers is measured in `benchmarks/upright.py`
(docs/benchmarks.md).
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = UprightConfig()
    for name in ("epochs", "width", "seed"):
        p.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    p.add_argument("--photo-repeat", type=int, default=8)
    p.add_argument("--allowed", type=float, default=0.02)
    p.add_argument("--out", type=Path, default=shipped_model_dir(SHIPPED))
    args = p.parse_args(argv)
    config = UprightConfig(epochs=args.epochs, width=args.width, seed=args.seed)
    data = load_fashion_mnist()
    _, default_meta = load_checkpoint(None)
    train_idx, val_idx = run_split(len(data.train_labels), default_meta["config"])
    photos_train, photos_val = load_photos("train"), load_photos("validation")
    images = torch.cat([data.train_images[train_idx],
                        photos_train.images.repeat(args.photo_repeat, 1, 1)])
    start = time.perf_counter()
    net = train_upright(images, config,
                        lambda e, loss: print(f"epoch {e}/{config.epochs}: loss {loss:.3f}",
                                              flush=True))
    seconds = time.perf_counter() - start
    threshold = choose_threshold(net, photos_val.images, args.allowed)
    checksums = {**data.checksums, "photos_train": photos_train.checksums["files_sha256"],
                 "photos_validation": photos_val.checksums["files_sha256"]}
    metrics = {**provenance(config.seed, checksums), "config": asdict(config),
               "photo_repeat": args.photo_repeat, "allowed": args.allowed,
               "threshold": threshold, "train_seconds": seconds,
               "parameters": count_parameters(net),
               "validation": {
                   "Fashion-MNIST validation": turn_figures(
                       net, data.train_images[val_idx], threshold),
                   "real photos, validation": turn_figures(net, photos_val.images, threshold)}}
    args.out.mkdir(parents=True, exist_ok=True)
    save_upright(args.out / "model.pt", net, threshold, config, metrics, checksums)
    write_json(args.out / "metrics.json", metrics)
    with atomic_path(args.out / "MODEL_CARD.md") as tmp:
        tmp.write_text(card(metrics))
    print(f"threshold {threshold:.3f}; written to {args.out}")


if __name__ == "__main__":
    main()
