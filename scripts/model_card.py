"""What every shipped model's card ends with, shared by the ship scripts: the run's provenance
line, the data checksums and the per-class results, and an atomic write of the card."""

from __future__ import annotations

from pathlib import Path

from fashion_cnn.data import FILES
from fashion_cnn.files import atomic_path


def provenance_line(run: dict) -> str:
    """'- Date: ...; git commit ...; versions: ...' of a training run's metrics."""
    versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
    return f"- Date: {run['date']}; git commit {run['git_commit']}; versions: {versions}."


def data_and_per_class(run: dict, per_class: list[dict]) -> str:
    """The '## Data' checksum table and the '## Per-class results' table (shipped weights)."""
    checksums = "\n".join(f"| {idx.name} | `{run['data_checksums'][idx.name]}` |"
                          for idx in FILES.values())
    rows = "\n".join(f"| {r['class']} | {r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{r['f1']:.3f} |" for r in per_class)
    return f"""## Data (SHA-256 of the decompressed IDX files)
| file | sha256 |
| --- | --- |
{checksums}

## Per-class results (shipped weights, test set)
| class | precision | recall | F1 |
| --- | --- | --- | --- |
{rows}"""


def write_card(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
