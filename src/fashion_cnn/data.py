"""Fashion-MNIST: find the four official files, verify them, parse IDX into uint8 tensors.

Lookup order: an explicit directory, then $FASHION_MNIST_DIR, then the user cache
(~/.cache/fashion-cnn/fashion-mnist), then Debian's package (/usr/share/datasets/fashion-mnist).
If none holds the files, they are downloaded from the official mirror into the cache.
Files are verified by the SHA-256 of their *decompressed* bytes, so a re-gzipped copy
(Debian's) verifies too.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import FashionCNNError
from .files import atomic_path

# ---------------------------------------------------------------------------------------------
# Constants: the dataset's facts, in one place.

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
IMAGE_SIZE = 28
# Pixel mean and std of the 60,000 training images scaled to [0, 1] (tests/test_data.py checks)
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


@dataclass(frozen=True)
class IdxFile:
    name: str  # file name without .gz
    magic: int
    count: int
    sha256: str  # of the decompressed IDX bytes


FILES: dict[str, IdxFile] = {
    "train_images": IdxFile(
        "train-images-idx3-ubyte", IMAGES_MAGIC, 60_000,
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train_labels": IdxFile(
        "train-labels-idx1-ubyte", LABELS_MAGIC, 60_000,
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test_images": IdxFile(
        "t10k-images-idx3-ubyte", IMAGES_MAGIC, 10_000,
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "test_labels": IdxFile(
        "t10k-labels-idx1-ubyte", LABELS_MAGIC, 10_000,
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}

ALL_FILES = tuple(FILES)  # what training needs
TEST_FILES = ("test_images", "test_labels")  # what scoring a model needs (`load_test_set`)

ENV_DIR = "FASHION_MNIST_DIR"
ENV_MIRROR = "FASHION_MNIST_MIRROR"  # override the download location (e.g. a local copy)
OFFICIAL_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CACHE_ROOT = Path.home() / ".cache" / "fashion-cnn"  # every cache of the package, one folder each
CACHE_DIR = CACHE_ROOT / "fashion-mnist"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass
class FashionMNIST:
    """The whole dataset in memory: images uint8 [N, 28, 28], labels int64 [N]."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    directory: Path | None = None
    checksums: dict[str, str] | None = None  # IDX name -> SHA-256 (verified)


# ---------------------------------------------------------------------------------------------
# Finding the files


def _file_in(directory: Path, idx: IdxFile) -> Path | None:
    for candidate in (directory / f"{idx.name}.gz", directory / idx.name):
        if candidate.is_file():
            return candidate
    return None


def _missing(directory: Path, keys: Sequence[str] = ALL_FILES) -> list[str]:
    return [f"{FILES[k].name}.gz" for k in keys if _file_in(directory, FILES[k]) is None]


def find_data_dir(data_dir: str | Path | None = None, offline: bool = False,
                  progress: bool = True, keys: Sequence[str] = ALL_FILES) -> Path:
    """Return the directory holding the files named by `keys` (of FILES; default: all four),
    downloading the missing ones into the cache if needed."""
    explicit = [("--data-dir", data_dir), (f"${ENV_DIR}", os.environ.get(ENV_DIR))]
    for origin, value in explicit:
        if value:
            directory = Path(value).expanduser()
            if not directory.is_dir():
                what = "is a file, not a folder" if directory.exists() else "does not exist"
                raise FashionCNNError(
                    f"{origin} points to {directory}, which {what}. Give the folder holding "
                    "the official Fashion-MNIST .gz files, or unset it to use the cache / "
                    "download.")
            missing = _missing(directory, keys)
            if missing:
                raise FashionCNNError(
                    f"{origin} points to {directory}, which lacks {', '.join(missing)}. "
                    "Put the official Fashion-MNIST .gz files there, or unset it to use the "
                    "cache / download.")
            return directory
    for directory in (CACHE_DIR, SYSTEM_DIR):
        if directory.is_dir() and not _missing(directory, keys):
            return directory
    if offline:
        raise FashionCNNError(
            f"Fashion-MNIST not found (looked in ${ENV_DIR}, {CACHE_DIR}, {SYSTEM_DIR}) and "
            f"--offline forbids downloading. Set FASHION_MNIST_DIR or pass --data-dir to a folder "
            f"with {', '.join(f'{FILES[k].name}.gz' for k in keys)}, or `apt-get install "
            "dataset-fashion-mnist`.")
    download(CACHE_DIR, progress=progress, keys=keys)
    return CACHE_DIR


def download(directory: Path, mirror: str | None = None, progress: bool = True,
             keys: Sequence[str] = ALL_FILES) -> None:
    """Download the missing official files named by `keys` into `directory`, verifying each
    before renaming."""
    from tqdm import tqdm

    mirror = mirror or os.environ.get(ENV_MIRROR) or OFFICIAL_MIRROR
    directory.mkdir(parents=True, exist_ok=True)
    for idx in (FILES[k] for k in keys):
        if _file_in(directory, idx) is not None:
            continue
        url = mirror.rstrip("/") + f"/{idx.name}.gz"
        target = directory / f"{idx.name}.gz"
        with atomic_path(target) as tmp:
            try:
                with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=target.name,
                              disable=not progress, leave=False) as bar:
                        while chunk := response.read(1 << 20):
                            out.write(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, OSError, ValueError) as err:
                raise FashionCNNError(
                    f"Could not download {url}: {err}. Check your connection, or download the "
                    f"files by hand into {directory} (or set {ENV_DIR}).") from None
            read_idx(tmp, idx, display_name=url,  # raises on a bad download: nothing is kept
                     fix=f"Nothing was saved. Try again later, or set {ENV_MIRROR} to another "
                     "mirror.")


# ---------------------------------------------------------------------------------------------
# Parsing IDX


REDOWNLOAD = "Delete it and download it again."  # what to do about a bad file on disk


def _decompress(path: Path, display_name: str, fix: str = REDOWNLOAD) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":  # not gzip: an already-decompressed IDX file
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
        raise FashionCNNError(
            f"{display_name} is not a valid gzip file ({err}); it is probably truncated or "
            f"corrupt. {fix}") from None


def parse_idx(payload: bytes, idx: IdxFile, display_name: str,
              fix: str = REDOWNLOAD) -> torch.Tensor:
    """Parse IDX bytes into a uint8 tensor [N] (labels) or [N, 28, 28] (images).

    Checks the magic number, the dimensions and that the length matches the header; `fix`
    says what to do about a file that fails.
    """
    ndim = 3 if idx.magic == IMAGES_MAGIC else 1
    header_size = 4 + 4 * ndim
    if len(payload) < header_size:
        raise FashionCNNError(f"{display_name} is too short to be an IDX file "
                              f"({len(payload)} bytes). {fix}")
    magic = struct.unpack(">i", payload[:4])[0]
    if magic != idx.magic:
        kind = "images" if idx.magic == IMAGES_MAGIC else "labels"
        raise FashionCNNError(f"{display_name} has magic number {magic}, expected {idx.magic} "
                              f"(IDX {kind}); it is not the right file. {fix}")
    dims = struct.unpack(f">{ndim}i", payload[4:header_size])
    if ndim == 3 and dims[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise FashionCNNError(f"{display_name} holds {dims[1]}x{dims[2]} images, expected "
                              f"28x28. {fix}")
    if dims[0] <= 0:  # torch.frombuffer refuses an empty buffer
        raise FashionCNNError(f"{display_name} holds {dims[0]} items: it is empty or corrupt. "
                              f"{fix}")
    n_bytes = math.prod(dims)
    if len(payload) != header_size + n_bytes:
        raise FashionCNNError(f"{display_name} should hold {header_size + n_bytes} bytes for "
                              f"{dims[0]} items but holds {len(payload)}: truncated or corrupt. "
                              f"{fix}")
    data = torch.frombuffer(bytearray(payload[header_size:]), dtype=torch.uint8)
    return data.reshape(dims)


def read_idx(path: Path, idx: IdxFile, display_name: str | None = None,
             verify: bool = True, fix: str = REDOWNLOAD) -> tuple[torch.Tensor, str]:
    """Read one IDX file (.gz or raw); return (tensor, SHA-256 of the decompressed bytes).
    `fix`: what the message about a bad file tells the user to do."""
    display_name = display_name or str(path)
    payload = _decompress(path, display_name, fix)
    tensor = parse_idx(payload, idx, display_name, fix)
    digest = hashlib.sha256(payload).hexdigest()
    if verify and digest != idx.sha256:
        raise FashionCNNError(
            f"{display_name} failed its checksum (SHA-256 {digest[:16]}..., expected "
            f"{idx.sha256[:16]}...): it is not the official file or it is corrupt. {fix}")
    if idx.magic == LABELS_MAGIC and tensor.numel() and int(tensor.max()) >= len(CLASS_NAMES):
        raise FashionCNNError(f"{display_name} has label {int(tensor.max())}; labels must be "
                              "0-9. It is not a Fashion-MNIST labels file.")
    return tensor, digest


def _read_files(directory: Path, keys: Sequence[str], verify: bool = True
                ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The files of FILES named by `keys`, read from `directory` (key -> tensor) with their
    SHA-256s (IDX name -> hex); a split read whole must have as many labels as images."""
    tensors, checksums = {}, {}
    for key in keys:
        idx = FILES[key]
        path = _file_in(directory, idx)
        if path is None:  # vanished since the lookup
            raise FashionCNNError(f"{directory / (idx.name + '.gz')} is missing.")
        tensors[key], checksums[idx.name] = read_idx(path, idx, verify=verify)
    for split in ("train", "test"):
        images, labels = tensors.get(f"{split}_images"), tensors.get(f"{split}_labels")
        if images is not None and labels is not None and len(images) != len(labels):
            raise FashionCNNError(f"The {split} files in {directory} disagree: {len(images)} "
                                  f"images but {len(labels)} labels. Download them again.")
    return tensors, checksums


def load_fashion_mnist(data_dir: str | Path | None = None, offline: bool = False,
                       verify: bool = True, progress: bool = True) -> FashionMNIST:
    """Find (or download), verify and load the whole dataset into memory."""
    directory = find_data_dir(data_dir, offline=offline, progress=progress)
    tensors, checksums = _read_files(directory, ALL_FILES, verify)
    return FashionMNIST(
        train_images=tensors["train_images"], train_labels=tensors["train_labels"].long(),
        test_images=tensors["test_images"], test_labels=tensors["test_labels"].long(),
        directory=directory, checksums=checksums)


def load_test_set(data_dir: str | Path | None = None, offline: bool = False,
                  progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Only the official test set, verified: images uint8 [10000, 28, 28] and labels int64
    [10000]. The same lookup as `load_fashion_mnist`, but a folder (or a download) without the
    training files will do: scoring a model never reads them."""
    directory = find_data_dir(data_dir, offline=offline, progress=progress, keys=TEST_FILES)
    tensors = _read_files(directory, TEST_FILES)[0]
    return tensors["test_images"], tensors["test_labels"].long()


def load_test_images(data_dir: str | Path | None = None, offline: bool = False,
                     progress: bool = True) -> torch.Tensor:
    """Only the 10,000 official test images, verified: uint8 [10000, 28, 28]."""
    return load_test_set(data_dir, offline, progress)[0]


def class_counts(labels: torch.Tensor) -> list[int]:
    """Number of examples of each of the 10 classes."""
    return torch.bincount(labels, minlength=len(CLASS_NAMES)).tolist()
