"""Where a result came from: command, versions, git commit, machine, time."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from . import __version__

# Outputs, not inputs: a run that rewrites them (a chain of benchmarks, the generated docs)
# still ran the committed code, so they do not make a commit "-dirty".
OUTPUTS = ("benchmarks/results", "docs")


def git_commit(where: Path = Path(__file__).parent) -> str | None:
    """The commit of the source tree at `where` (this package's by default), "-dirty" if a
    tracked file other than the OUTPUTS differs from it; None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                            ":(top)", *(f":(top,exclude){path}" for path in OUTPUTS)],
                           cwd=where, capture_output=True, text=True, timeout=5)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def provenance(seed: int | None = None,
               data_checksums: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything a metrics JSON needs to say how it was made."""
    return {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
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
