"""Shared fixtures: synthetic IDX files, a tiny learnable dataset, and the real data.

Real-data tests are marked `slow`. They find the data through the project's normal lookup
($FASHION_MNIST_DIR, the cache, Debian's package); under CI=true a missing dataset fails
the run instead of skipping it.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from fashion_cnn.data import FILES, FashionMNIST, load_fashion_mnist
from fashion_cnn.errors import FashionCNNError

ROOT = Path(__file__).resolve().parents[1]  # the repository
BENCHMARKS = ROOT / "benchmarks"
SAMPLES = ROOT / "src" / "fashion_cnn" / "samples"  # the bundled sample pictures


def undecided_pictures() -> Iterator[bytes]:
    """JPEGs a model may be undecided on, for tests of the "unsure" answer: the bundled
    samples, then each pair of them blended half and half (which sample is torn, if any,
    depends on the shipped model; a blend of two classes sits between them)."""
    from PIL import Image

    paths = sorted(SAMPLES.glob("*.jpg"))
    yield from (p.read_bytes() for p in paths)
    pictures = [Image.open(p).convert("RGB") for p in paths]
    for i, first in enumerate(pictures):
        for second in pictures[i + 1:]:
            out = io.BytesIO()
            Image.blend(first, second.resize(first.size), 0.5).save(out, "JPEG", quality=90)
            yield out.getvalue()


def load_script(path: Path) -> ModuleType:
    """A script outside the package (benchmarks/, scripts/) as a module named after its file;
    its folder goes on sys.path, as the scripts import their siblings (e.g. `common`)."""
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/NAME.py as a module (benchmarks/ is not a package)."""
    return load_script(BENCHMARKS / f"{name}.py")


def idx_bytes(tensor: torch.Tensor, magic: int) -> bytes:
    """Encode a uint8 tensor as IDX: big-endian magic, dimensions, raw bytes."""
    header = struct.pack(f">i{tensor.dim()}i", magic, *tensor.shape)
    return header + tensor.to(torch.uint8).contiguous().numpy().tobytes()


def learnable_images(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """uint8 [N, 28, 28] noise with a bright bar at a class-dependent row: easy to learn."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 60, (len(labels), 28, 28), generator=g, dtype=torch.uint8)
    rows = 2 + 2 * labels
    images[torch.arange(len(labels)), rows] = 255
    return images


def write_dataset(directory: Path, n_train: int = 200, n_test: int = 100,
                  gz: bool = True) -> dict[str, bytes]:
    """Write four synthetic IDX files; return their decompressed payloads by key."""
    directory.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(1)
    payloads = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = torch.randint(0, 10, (n,), generator=g)
        payloads[f"{split}_images"] = idx_bytes(learnable_images(labels), 2051)
        payloads[f"{split}_labels"] = idx_bytes(labels, 2049)
    for key, payload in payloads.items():
        name = FILES[key].name
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (directory / name).write_bytes(payload)
    return payloads


@pytest.fixture
def synthetic_dir(tmp_path: Path) -> Path:
    """A folder with four small, well-formed (but unofficial) gzipped IDX files."""
    write_dataset(tmp_path / "fmnist")
    return tmp_path / "fmnist"


@pytest.fixture
def tiny_data() -> FashionMNIST:
    """A 512/256-image learnable dataset in memory."""
    g = torch.Generator().manual_seed(0)
    train_labels = torch.randint(0, 10, (512,), generator=g)
    test_labels = torch.randint(0, 10, (256,), generator=g)
    return FashionMNIST(learnable_images(train_labels, 1), train_labels,
                        learnable_images(test_labels, 2), test_labels)


@pytest.fixture
def isolated_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $FASHION_MNIST_DIR, and cache / system folders pointed at empty temp folders."""
    import fashion_cnn.data as data

    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "system")
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """Folder of the official files, found by the normal lookup (never downloads)."""
    from fashion_cnn.data import find_data_dir

    try:
        return find_data_dir(offline=True)
    except FashionCNNError as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real-data tests: {err}")
        pytest.skip(f"real Fashion-MNIST not available: {err}")


@pytest.fixture(scope="session")
def real_data(real_data_dir: Path) -> FashionMNIST:
    return load_fashion_mnist(real_data_dir, offline=True)


@pytest.fixture(scope="session")
def photos_root() -> Path:
    """The real clothing photos, found by the normal lookup; skipped when absent, but a failure
    under CI=true."""
    from fashion_cnn.photos import find_photos_dir

    try:
        return find_photos_dir()
    except FashionCNNError as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real-photo tests: {err}")
        pytest.skip(f"clothing photos not available: {err}")


def cli_executable() -> str:
    """The installed `fashion-cnn` console script (the real entry point)."""
    exe = Path(sys.executable).parent / "fashion-cnn"
    return str(exe) if exe.exists() else shutil.which("fashion-cnn") or "fashion-cnn"


def run_cli(*args: str, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    """Run `fashion-cnn ARGS` in a subprocess and capture its output."""
    return subprocess.run([cli_executable(), *args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def modules_loaded_by(code: str, **kwargs) -> set[str]:
    """The names in sys.modules after running `code` in a fresh Python process."""
    script = f"{code}\nimport sys\nprint('MODULES', ' '.join(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600, **kwargs)
    lines = [line for line in result.stdout.splitlines() if line.startswith("MODULES ")]
    assert lines, result.stdout + result.stderr
    return set(lines[-1].split()[1:])


def synthetic_article(kind: int) -> np.ndarray:
    """A synthetic Fashion-MNIST-like image: a shaded white shape on black, uint8 [28, 28]."""
    x = np.zeros((28, 28), np.float32)
    ys, xs = np.mgrid[:28, :28]
    if kind == 0:  # a "shirt": a body and two sleeves
        x[4:26, 8:20] = 1
        x[4:12, 2:26] = 1
    elif kind == 1:  # a "trouser"
        x[2:27, 8:13] = 1
        x[2:27, 15:20] = 1
        x[2:6, 8:20] = 1
    else:  # a "bag": a disc
        x[(ys - 15) ** 2 + (xs - 14) ** 2 < 100] = 1
    return (x * (150 + 100 * ys / 27)).astype(np.uint8)  # shaded, as photos are
