"""Training: configuration and recipes (config.py), batched augmentation (augment.py), step
objects (steps.py), the one training loop (loop.py), run folders and k-fold CV (run.py),
several processes (distributed.py), ensembles (ensemble.py) and a teacher's answers as targets
(distill.py).

The names below are imported on first use, so that the CLI can read `TrainConfig` to build
its options without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"RECIPES": "config", "TrainConfig": "config", "recipe_config": "config",
          "epoch_generator": "loop", "fit": "loop", "cross_validate": "run",
          "resolve_run_config": "run", "run_split": "run", "run_training": "run",
          "split_indices": "run", "torch_threads": "run"}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
