"""Where a result came from: command, versions, git commit, machine, time."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .files import file_sha256

# Outputs, not inputs: a run that rewrites them (a chain of benchmarks, the generated docs)
# still ran the committed code, so they do not make a commit "-dirty".
OUTPUTS = ("benchmarks/results", "docs")


def _git(where: Path, *args: str) -> str | None:
    """`git ARGS` run at `where`: its output, or None where git is missing or fails."""
    try:
        out = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(where: Path = Path(__file__).parent) -> str | None:
    """The commit of the source tree at `where` (this package's by default), "-dirty" if a
    tracked file other than the OUTPUTS differs from it ("-dirty?" if git could not tell);
    None outside a git checkout."""
    head = _git(where, "rev-parse", "HEAD")
    if head is None:
        return None
    changed = _git(where, "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                   *(f":(top,exclude){path}" for path in OUTPUTS))
    return head + ("-dirty?" if changed is None else "-dirty" if changed else "")


def working_dir(where: Path = Path(__file__).parent) -> str:
    """Where the command ran: relative to the checkout holding `where` (".", "benchmarks"),
    else absolute; a command's relative paths mean nothing without it."""
    cwd, top = Path.cwd().resolve(), _git(where, "rev-parse", "--show-toplevel")
    if top and cwd.is_relative_to(Path(top).resolve()):
        return cwd.relative_to(Path(top).resolve()).as_posix()
    return str(cwd)


def provenance(seed: int | None = None,
               data_checksums: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything a metrics JSON needs to say how it was made."""
    return {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "cwd": working_dir(),
        "seed": seed,
        "git_commit": git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "fashion_cnn": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            # the vector instructions torch's kernels run on: timings differ ~10x between an
            # AVX2-only CPU and one with AVX-512 bfloat16 / VNNI
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
        "data_checksums": data_checksums or {},
    }


# ---------------------------------------------------------------------------------------------
# The runs behind a model: a run from scratch, fine-tunes of it (`--init`), shipped models


def _entry(run: dict[str, Any]) -> dict[str, Any]:
    """What a chain records of one run."""
    return {k: run.get(k) for k in ("command", "date", "git_commit", "train_seconds")}


def runs_behind(folder: Path, sha256: str | None) -> list[dict[str, Any]]:
    """The training runs behind the model.pt in `folder` (a run's or a shipped model's), if
    it is still the file of `sha256`; else one entry saying the source is unknown."""
    model, metrics = folder / "model.pt", folder / "metrics.json"
    if metrics.is_file() and not (sha256 and model.is_file() and file_sha256(model) != sha256):
        found = json.loads(metrics.read_text())
        if "lineage" in found:  # a shipped model
            return found["lineage"]
        if "train_seconds" in found:  # a run
            return run_lineage(found)
    return [{"command": None, "date": None, "source": str(folder), "sha256": sha256,
             "train_seconds": None}]


def run_lineage(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs behind a run's weights: those behind its `--init` file, then itself."""
    start = run.get("init")
    before = runs_behind(Path(start["checkpoint"]).parent, start["sha256"]) if start else []
    return [*before, _entry(run)]
