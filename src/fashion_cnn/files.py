"""Writing files so that a crash or Ctrl-C never leaves a half-written one behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import FashionCNNError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.
    A place that cannot be written (no such folder, no permission, a folder of that name) is
    a FashionCNNError saying so, not a traceback. A symbolic link is written through (the file
    it names is replaced, the link kept), and a device or pipe (/dev/null, /dev/stdout,
    `>(gzip)`) is written directly: renaming onto it would replace the device itself."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        yield path
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as err:
        raise cannot_write(path, err) from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            os.replace(tmp_path, path)
        except OSError as err:
            raise cannot_write(path, err) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def cannot_write(path: Path, err: OSError) -> FashionCNNError:
    """The one message for an output that cannot be written where it was asked."""
    return FashionCNNError(f"Cannot write {path} ({err.strerror or err}). Choose a file name in "
                           "a folder you can write to.")


def file_in_the_way(folder: str | Path) -> Path | None:
    """The file standing where `folder` or one of the folders above it would be
    (`notes.txt/plots` under a file notes.txt), or None: nothing can be written there."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    return None if existing.is_dir() else existing


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")  # by the file name's suffix


def save_figure(fig: Any, path: str | Path) -> None:
    """Save a matplotlib figure, atomically, as its name's suffix says (PNG without one), and
    release its memory."""
    import matplotlib.pyplot as plt

    fmt = Path(path).suffix.lower().removeprefix(".") or "png"
    try:
        if fmt not in FIGURE_FORMATS:
            raise FashionCNNError(f"Cannot save a figure as {Path(path).name}: give it a "
                                  ".png, .pdf, .svg or .jpg name.")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def content_key(data: bytes, settings: Any, sources: Iterable[str | Path]) -> str:
    """A short key (16 hex digits) for a cached result: the bytes it is made from, its
    JSON-able settings and the source files of the code that makes it, so a change to any of
    them makes a new key rather than reusing a stale result."""
    digest = hashlib.sha256(data)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for source in sources:
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:16]


def save_torch(obj: Any, path: str | Path) -> None:
    """`torch.save(obj, path)`, atomically (`atomic_path`). torch's writer reports a full disk
    as a RuntimeError ("unexpected pos ..."): that becomes one message saying so."""
    import torch

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as err:
            raise FashionCNNError(
                f"Cannot write {path}: the disk may be full ({str(err)[:80]}). Free some "
                "space and run the command again (a training run continues with --resume)."
            ) from None


def cached_tensor(path: Path | None, make: Callable[[], Any]) -> Any:
    """The tensor saved at `path` if it is there, else `make()`, saved there atomically for next
    time; `path=None` never caches."""
    import torch

    if path is not None and path.is_file():
        return torch.load(path, weights_only=True)
    tensor = make()
    if path is not None:
        save_torch(tensor, path)
    return tensor
