"""fashion_cnn.provenance: what every metrics JSON records about how it was made."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from fashion_cnn import provenance as provenance_module
from fashion_cnn.provenance import git_commit, provenance, working_dir


def test_a_result_says_which_commit_versions_data_and_cpu_made_it() -> None:
    record = provenance(seed=3, data_checksums={"f": "abc"})
    assert record["seed"] == 3 and record["data_checksums"] == {"f": "abc"}
    assert record["versions"]["torch"] == torch.__version__
    # timings are only comparable on the same vector instructions (AVX2 vs AVX-512 ...)
    assert record["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert {"command", "git_commit", "date"} <= set(record)


def test_a_result_says_where_its_command_ran(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A command's relative paths (`--out results/x.json`) need the folder they ran in."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root / "benchmarks")
    assert provenance()["cwd"] == "benchmarks"
    monkeypatch.chdir(root)
    assert working_dir() == "."
    monkeypatch.chdir(tmp_path)  # outside the checkout: the whole path
    assert working_dir() == str(tmp_path.resolve())


def test_only_changed_code_makes_a_commit_dirty(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=tmp_path, check=True, capture_output=True,
                              text=True).stdout.strip()

    files = ["benchmarks/results/speed.json", "docs/benchmarks.md", "src/pkg/code.py"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first")
    head, where = git("rev-parse", "HEAD"), tmp_path / "src" / "pkg"
    assert git_commit(where) == head
    for name in files[:2]:  # a benchmark's results, the docs made from them: outputs
        (tmp_path / name).write_text("2\n")
    assert git_commit(where) == head
    (tmp_path / files[2]).write_text("2\n")
    assert git_commit(where) == head + "-dirty"
    # git that cannot say (a timeout, a lock): not "clean", and no traceback for the run
    real = provenance_module._git
    monkeypatch.setattr(provenance_module, "_git", lambda at, *args: (
        None if args[0] == "status" else real(at, *args)))
    assert git_commit(where) == head + "-dirty?"
    assert git_commit(tmp_path.parent) is None  # not a checkout
