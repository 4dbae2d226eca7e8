"""Data: IDX parsing, lookup order, every bad-data case, download, the `data` command."""

from __future__ import annotations

import functools
import gzip
import http.server
import struct
import threading
from pathlib import Path

import pytest
import torch

import fashion_cnn.data as data
from conftest import idx_bytes, run_cli, write_dataset
from fashion_cnn.data import (
    FILES,
    TEST_FILES,
    class_counts,
    find_data_dir,
    load_fashion_mnist,
    load_test_images,
    load_test_set,
    read_idx,
)
from fashion_cnn.errors import FashionCNNError

TRAIN_IMAGES = FILES["train_images"]
TRAIN_LABELS = FILES["train_labels"]


def _load_error(directory: Path, **kwargs) -> str:
    with pytest.raises(FashionCNNError) as info:
        load_fashion_mnist(directory, **kwargs)
    return str(info.value)


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_parses_gzipped_and_raw_idx(tmp_path: Path, gz: bool) -> None:
    payloads = write_dataset(tmp_path, n_train=30, n_test=20, gz=gz)
    ds = load_fashion_mnist(tmp_path, verify=False)
    assert ds.train_images.shape == (30, 28, 28) and ds.train_images.dtype == torch.uint8
    assert ds.test_labels.shape == (20,) and ds.test_labels.dtype == torch.int64
    assert bytes(ds.train_images.numpy().tobytes()) == payloads["train_images"][16:]
    assert ds.test_labels.tolist() == list(payloads["test_labels"][8:])


def test_checksum_mismatch_is_reported(synthetic_dir: Path) -> None:
    msg = _load_error(synthetic_dir)
    assert "train-images-idx3-ubyte.gz" in msg and "checksum" in msg


def test_truncated_gzip(synthetic_dir: Path) -> None:
    path = synthetic_dir / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    msg = _load_error(synthetic_dir, verify=False)
    assert str(path) in msg and "truncated or corrupt" in msg


def test_corrupt_gzip(synthetic_dir: Path) -> None:
    path = synthetic_dir / "train-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[12:40] = b"\xff" * 28
    path.write_bytes(bytes(raw))
    msg = _load_error(synthetic_dir, verify=False)
    assert str(path) in msg and "gzip" in msg


def test_wrong_magic(synthetic_dir: Path) -> None:
    labels = gzip.decompress((synthetic_dir / "train-labels-idx1-ubyte.gz").read_bytes())
    (synthetic_dir / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(labels))
    msg = _load_error(synthetic_dir, verify=False)
    assert "magic number 2049, expected 2051" in msg


def test_truncated_payload(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(torch.zeros(5, 28, 28), 2051)[:-100])
    with pytest.raises(FashionCNNError, match="truncated"):
        read_idx(path, TRAIN_IMAGES, verify=False)


def test_wrong_image_size(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(torch.zeros(5, 32, 32), 2051))
    with pytest.raises(FashionCNNError, match="32x32"):
        read_idx(path, TRAIN_IMAGES, verify=False)


def test_too_short_for_a_header(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(FashionCNNError, match="too short"):
        read_idx(path, TRAIN_LABELS, verify=False)


@pytest.mark.parametrize("n", [0, -3])
def test_a_file_of_no_items_is_refused(tmp_path: Path, n: int) -> None:
    """A header saying 0 items (and nothing after it) failed in torch.frombuffer with
    "ValueError: both buffer length (0) and count (-1) must not be 0", a traceback."""
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">4i", 2051, n, 28, 28))
    with pytest.raises(FashionCNNError, match=f"holds {n} items: it is empty or corrupt"):
        read_idx(path, TRAIN_IMAGES, verify=False)


def test_label_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(torch.tensor([0, 3, 12]), 2049))
    with pytest.raises(FashionCNNError, match="label 12"):
        read_idx(path, TRAIN_LABELS, verify=False)


def test_images_and_labels_of_different_lengths_are_refused(tmp_path: Path) -> None:
    write_dataset(tmp_path, n_train=30, n_test=20)
    labels = tmp_path / f"{FILES['test_labels'].name}.gz"
    labels.write_bytes(gzip.compress(idx_bytes(torch.zeros(19, dtype=torch.uint8), 2049)))
    msg = _load_error(tmp_path, verify=False)
    assert "The test files" in msg and "20 images but 19 labels" in msg


def test_class_counts() -> None:
    assert class_counts(torch.tensor([0, 0, 9, 3])) == [2, 0, 0, 1, 0, 0, 0, 0, 0, 1]


# --- lookup order ----------------------------------------------------------------------------


def test_missing_file_in_explicit_dir(synthetic_dir: Path, isolated_lookup: Path) -> None:
    (synthetic_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FashionCNNError, match="lacks t10k-labels-idx1-ubyte.gz"):
        find_data_dir(synthetic_dir)
    with pytest.raises(FashionCNNError, match="which does not exist"):
        find_data_dir(synthetic_dir / "nowhere")
    with pytest.raises(FashionCNNError, match="which is a file, not a folder"):
        find_data_dir(synthetic_dir / "t10k-images-idx3-ubyte.gz")


def test_lookup_order(tmp_path: Path, isolated_lookup: Path, monkeypatch) -> None:
    for name in ("explicit", "env", "cache", "system"):
        write_dataset(tmp_path / name, n_train=10, n_test=10)
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "system")
    assert find_data_dir(offline=True) == tmp_path / "cache"
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "env"))
    assert find_data_dir(offline=True) == tmp_path / "env"
    assert find_data_dir(tmp_path / "explicit", offline=True) == tmp_path / "explicit"
    monkeypatch.delenv("FASHION_MNIST_DIR")
    import shutil

    shutil.rmtree(tmp_path / "cache")
    assert find_data_dir(offline=True) == tmp_path / "system"


def test_offline_without_data(isolated_lookup: Path) -> None:
    """The message names the files wanted: all four, or the test set's two for scoring."""
    with pytest.raises(FashionCNNError, match="--offline.*train-images-idx3-ubyte.gz"):
        find_data_dir(offline=True)
    with pytest.raises(FashionCNNError, match="--offline") as err:
        find_data_dir(offline=True, keys=TEST_FILES)
    assert "train-" not in str(err.value) and "t10k-labels-idx1-ubyte.gz" in str(err.value)


# --- download --------------------------------------------------------------------------------


def _serve(directory: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_bad_download_leaves_nothing(synthetic_dir: Path, isolated_lookup: Path,
                                     monkeypatch) -> None:
    server = _serve(synthetic_dir)  # unofficial files: they fail verification
    monkeypatch.setenv("FASHION_MNIST_MIRROR", f"http://127.0.0.1:{server.server_port}/")
    try:
        with pytest.raises(FashionCNNError, match="checksum") as err:
            find_data_dir(progress=False)
        assert "Nothing was saved" in str(err.value) and "Delete it" not in str(err.value)
    finally:
        server.shutdown()
    assert not isolated_lookup.exists() or list(isolated_lookup.iterdir()) == []


def test_unreachable_mirror(isolated_lookup: Path, monkeypatch) -> None:
    monkeypatch.setenv("FASHION_MNIST_MIRROR", "http://127.0.0.1:9/")  # discard port: refused
    with pytest.raises(FashionCNNError, match="Could not download"):
        find_data_dir(progress=False)


@pytest.mark.slow
def test_download_real_files_over_http(real_data_dir: Path, isolated_lookup: Path,
                                       monkeypatch) -> None:
    server = _serve(real_data_dir)
    monkeypatch.setenv("FASHION_MNIST_MIRROR", f"http://127.0.0.1:{server.server_port}")
    try:
        assert find_data_dir(progress=False) == isolated_lookup
    finally:
        server.shutdown()
    names = sorted(p.name for p in isolated_lookup.iterdir())
    assert names == sorted(f"{f.name}.gz" for f in FILES.values())  # no .part files left
    ds = load_fashion_mnist(offline=True)
    assert len(ds.train_labels) == 60_000 and ds.directory == isolated_lookup


@pytest.mark.slow
def test_scoring_needs_only_the_test_files(real_data_dir: Path, isolated_lookup: Path,
                                           tmp_path: Path, monkeypatch) -> None:
    """`evaluate` (load_test_set) takes a folder with only the two test files, and downloads
    only those; training still asks for all four."""
    only_test = tmp_path / "only-test"
    only_test.mkdir()
    for key in TEST_FILES:
        name = f"{FILES[key].name}.gz"
        (only_test / name).write_bytes((real_data_dir / name).read_bytes())
    images, labels = load_test_set(only_test, offline=True)
    assert images.shape == (10_000, 28, 28) and labels.dtype == torch.int64
    assert class_counts(labels) == [1000] * 10
    with pytest.raises(FashionCNNError, match="lacks train-images-idx3-ubyte.gz"):
        find_data_dir(only_test)
    result = run_cli("evaluate", "--model", "seed", "--data-dir", str(only_test), "--json")
    assert result.returncode == 0, result.stderr
    assert '"accuracy"' in result.stdout
    server = _serve(real_data_dir)
    monkeypatch.setenv("FASHION_MNIST_MIRROR", f"http://127.0.0.1:{server.server_port}")
    try:
        assert torch.equal(load_test_set(progress=False)[1], labels)
    finally:
        server.shutdown()
    assert sorted(p.name for p in isolated_lookup.iterdir()) == sorted(
        f"{FILES[key].name}.gz" for key in TEST_FILES)


# --- the real data and the `data` command ----------------------------------------------------


@pytest.mark.slow
def test_real_data_is_verified_and_balanced(real_data) -> None:
    assert real_data.train_images.shape == (60_000, 28, 28)
    assert real_data.test_images.shape == (10_000, 28, 28)
    assert class_counts(real_data.train_labels) == [6000] * 10
    assert class_counts(real_data.test_labels) == [1000] * 10
    assert set(real_data.checksums.values()) == {f.sha256 for f in FILES.values()}
    mean = real_data.train_images.float().div(255).mean().item()
    assert abs(mean - 0.2860) < 1e-3


@pytest.mark.slow
def test_load_test_images_is_the_test_split(real_data, real_data_dir: Path) -> None:
    assert torch.equal(load_test_images(real_data_dir, offline=True), real_data.test_images)


def test_load_test_images_verifies_the_file(synthetic_dir: Path) -> None:
    with pytest.raises(FashionCNNError, match="checksum"):  # synthetic: not the official file
        load_test_images(synthetic_dir, offline=True)


@pytest.mark.slow
def test_data_command(real_data_dir: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    result = run_cli("data", "--data-dir", str(real_data_dir), "--grid", str(grid))
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout and "Ankle boot" in result.stdout
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_command_bad_file(synthetic_dir: Path) -> None:
    path = synthetic_dir / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    result = run_cli("data", "--data-dir", str(synthetic_dir))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "train-images-idx3-ubyte.gz is not a valid gzip file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
