"""Writing outputs: whole files or none, and one clear message where a file cannot go."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from fashion_cnn.errors import FashionCNNError
from fashion_cnn.files import atomic_path, save_figure, write_json


def test_a_place_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder").mkdir()
    for bad in (tmp_path / "a-file" / "out.json",  # under a file
                tmp_path / "a-folder",  # a folder of that name
                Path("/proc/no/such/out.json")):  # nowhere anyone may write
        with pytest.raises(FashionCNNError, match=r"Cannot write .*\(.+\)\. Choose"):
            write_json(bad, {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder"]  # no .part
    assert list((tmp_path / "a-folder").iterdir()) == []


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_json(path, {"run": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == '{\n  "run": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_link_is_written_through_and_a_pipe_written_directly(tmp_path: Path) -> None:
    """`predict --out /dev/null` (as root) replaced /dev/null with a regular file, and an --out
    that is a symbolic link lost its link: the temporary file was renamed onto the device or
    the link. A link's file is now replaced, the link kept; a pipe or device written into."""
    import os
    import stat
    import threading

    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    write_json(tmp_path / "link.json", {"a": 1})
    assert (tmp_path / "link.json").is_symlink()
    assert (tmp_path / "real.json").read_text() == '{\n  "a": 1\n}\n'
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_text()), daemon=True)
    reader.start()
    write_json(fifo, {"b": 2})
    reader.join(10)
    assert read == ['{\n  "b": 2\n}\n']
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "pipe.json", "real.json"]


@pytest.mark.parametrize("name,magic", [("f.png", b"\x89PNG"), ("f.pdf", b"%PDF"),
                                        ("f.jpg", b"\xff\xd8"), ("f", b"\x89PNG")])
def test_a_figure_is_saved_as_its_name_says(tmp_path: Path, name: str, magic: bytes) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    save_figure(fig, tmp_path / name)
    assert (tmp_path / name).read_bytes().startswith(magic)


def test_a_figure_name_of_no_picture_format_is_refused(tmp_path: Path) -> None:
    fig, _ = plt.subplots()
    with pytest.raises(FashionCNNError, match=r"\.png, \.pdf, \.svg or \.jpg"):
        save_figure(fig, tmp_path / "grid.txt")
    assert not plt.fignum_exists(fig.number)  # released all the same


def test_a_full_disk_under_torch_save_is_one_message_and_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's writer reports a full disk as RuntimeError ("[enforce fail at
    inline_container.cc] unexpected pos"), which the CLI's OSError handling missed: a
    traceback from the middle of training. It is now a FashionCNNError, and nothing is left."""
    import torch

    from fashion_cnn.files import save_torch

    def full_disk(obj, f, *args, **kwargs) -> None:
        Path(f).write_bytes(b"PK\x03\x04 half")  # what a writer leaves when the disk fills
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64")

    target = tmp_path / "state.pt"
    save_torch({"x": torch.zeros(3)}, target)
    before = target.read_bytes()
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(FashionCNNError, match="disk may be full.*--resume"):
        save_torch({"x": torch.ones(3)}, target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [
        "state.pt"]
