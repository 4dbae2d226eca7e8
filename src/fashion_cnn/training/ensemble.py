"""Ensembles: `members` copies of one recipe, trained one after another, answering together.

A run with `--members K` in DIR trains member k (k = 0..K-1) as an ordinary run in
DIR/member{k}: the same config with seed `seed*K + k` and the ensemble's validation split
(`split_seed`), so the members differ only in initialisation, shuffling and augmentation, and
the ensemble can be validated on data none of them saw. Each member resumes or is reused on
its own, so an interrupted ensemble loses at most one member's unfinished epochs. With
`--init` an ensemble checkpoint of K members, member k starts from the init's member k (the
photo fine-tuning of a shipped ensemble). The members' weights are then gathered into one
`models.Ensemble`, which run.py scores and saves like any model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..data import FashionMNIST
from ..errors import FashionCNNError
from ..models import build_model, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .distributed import world


def member_config(config: TrainConfig, k: int, init: str = "") -> TrainConfig:
    """Member k's run: one model, its own seed, the ensemble's validation split."""
    return replace(config, members=1, seed=config.seed * config.members + k,
                   split_seed=config.validation_seed, init=init)


def member_init(config: TrainConfig, k: int, folder: Path) -> str:
    """Member k's starting weights: none, a single model's (every member starts from it), or
    the init ensemble's member k, written to folder/init.pt as a checkpoint of its own."""
    if not config.init:
        return ""
    net, meta = load_checkpoint(config.init)
    if meta["arch"] != "ensemble":
        return config.init
    if len(net.members) != config.members:
        raise FashionCNNError(f"--init {config.init} has {len(net.members)} members, not "
                              f"{config.members}; pass --members {len(net.members)}.")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "init.pt"
    save_checkpoint(path, net.members[k], config=meta.get("config") or {},
                    metrics={}, data_checksums=meta.get("data_checksums"))
    return str(path)


def train_members(config: TrainConfig, data: FashionMNIST, out: Path, *, progress: bool,
                  log: Callable[[str], None]
                  ) -> tuple[torch.nn.Module, list[list[dict[str, Any]]], dict | None]:
    """Train (or resume, or reuse) each member in out/member{k}; returns the ensemble, the
    members' epoch histories and the real photos' summary of the first member's run."""
    from .run import run_finished, run_training

    runs = []
    for k in range(config.members):
        folder = out / f"member{k}"
        log(f"member {k + 1} of {config.members} -> {folder}")
        if run_finished(folder):
            runs.append(json.loads((folder / "metrics.json").read_text()))
            continue
        resume = (folder / "config.json").is_file()
        member = None if resume else member_config(config, k, member_init(config, k, folder))
        # only the ensemble answers the test set: a member's score would be a second look
        runs.append(run_training(member, data, folder, resume=resume, progress=progress,
                                 log=log, score_test=False))
    arch, kwargs = config.architecture()
    model = build_model(arch, **kwargs)
    if world()[0] != 0:  # with --nproc only the first process scores and saves the ensemble
        return model, [], None
    for k, member in enumerate(model.members):
        net, _ = load_checkpoint(out / f"member{k}" / "model.pt")
        member.load_state_dict(net.state_dict())
    photos = runs[0].get("photos", {}).get("train")
    return model, [run.get("epochs", []) for run in runs], photos
