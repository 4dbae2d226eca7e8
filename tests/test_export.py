"""ONNX export and the onnxruntime backend (issue 16): the graph is the model (same top class on
all 10,000 test images for both shipped models), the metadata round-trips, a failed check
leaves no file, mistakes get one clear message, and `--backend` picks what the benchmark
measured faster."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import ROOT, SAMPLES, run_cli
from fashion_cnn import export
from fashion_cnn.cli import main
from fashion_cnn.errors import FashionCNNError
from fashion_cnn.evaluate import predict_logits
from fashion_cnn.files import file_sha256
from fashion_cnn.models import build_model, load_checkpoint, save_checkpoint
from fashion_cnn.predict import FASTER_BACKEND, Classifier, choose_backend

RESULTS = ROOT / "benchmarks" / "results"
UNSURE = {"score": "max_softmax", "threshold": 0.4, "chosen_on": "a test"}


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Sessions are cached in a temp folder, never in the user's home."""
    monkeypatch.setattr(export, "ONNX_CACHE_DIR", tmp_path / "onnx-cache")
    return tmp_path / "onnx-cache"


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A small untrained `best`-architecture checkpoint with test-time flips and an unsure
    rule: every part of the graph and metadata, in a second."""
    torch.manual_seed(0)
    net = build_model("best", width=4, tta=True)
    net.eval()
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, net, config={"note": "test"}, metrics={}, data_checksums=None,
                    unsure=UNSURE)
    return path


def images(n: int = 64) -> torch.Tensor:
    return export.seeded_images(n)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".part")]


# ---------------------------------------------------------------------------------------------
# The file


def test_export_matches_pytorch_and_metadata_round_trips(checkpoint: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "out" / "tiny.onnx"  # a missing folder is created
    result = export.export_onnx(checkpoint, out, images())
    net, meta = load_checkpoint(checkpoint)
    model = onnx.load(out)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["arch"] == "best" and json.loads(props["tta"]) is True
    assert json.loads(props["class_names"]) == meta["class_names"]
    assert json.loads(props["image_preprocessing"]) == meta["image_preprocessing"]
    assert json.loads(props["unsure"]) == UNSURE
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert props["checkpoint_sha256"] == sha == result.checkpoint_sha256
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets[""] == int(props["opset"]) == export.OPSET == result.opset
    # onnxruntime sees the same metadata; the batch axis is free (1 and 64 both run).
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == props
    x = images()
    with torch.inference_mode():
        reference = net(x).numpy()
    for batch in (x[:1], x):
        logits = session.run(None, {export.INPUT: batch.numpy()})[0]
        np.testing.assert_allclose(logits, reference[:len(batch)], atol=export.MAX_LOGIT_DIFF)
    assert result.max_logit_diff <= export.MAX_LOGIT_DIFF and result.same_argmax == len(x)
    assert no_temp_files(out.parent)


def test_shift_views_export_and_match(tmp_path: Path) -> None:
    """A model averaging 10 views (mirror and shifts) exports to a graph that gives its logits,
    and says so in the metadata."""
    torch.manual_seed(0)
    path = tmp_path / "shifts.pt"
    save_checkpoint(path, build_model("best", width=4, tta=True, tta_shift=1).eval(),
                    config={}, metrics={}, data_checksums=None, unsure=UNSURE)
    result = export.export_onnx(path, tmp_path / "shifts.onnx", images())
    assert result.max_logit_diff <= export.MAX_LOGIT_DIFF and result.same_argmax == 64
    props = {p.key: p.value for p in onnx.load(tmp_path / "shifts.onnx").metadata_props}
    assert json.loads(props["tta_shift"]) == 1 and json.loads(props["tta"]) is True


def test_a_failed_check_leaves_no_file(checkpoint: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The graph of another model (different weights) fails the check: no file appears, an
    older file at the target is kept, and no temp file is left behind."""
    other = build_model("best", width=4, tta=True).eval()
    real_onnx_bytes = export.onnx_bytes
    monkeypatch.setattr(export, "onnx_bytes",
                        lambda net, meta, sha: real_onnx_bytes(other, meta, sha))
    out = tmp_path / "model.onnx"
    with pytest.raises(FashionCNNError, match="does not match the PyTorch model"):
        export.export_onnx(checkpoint, out, images())
    assert not out.exists() and no_temp_files(tmp_path)
    out.write_bytes(b"an older export")
    with pytest.raises(FashionCNNError):
        export.export_onnx(checkpoint, out, images())
    assert out.read_bytes() == b"an older export" and no_temp_files(tmp_path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the exporter's (see export.py)
def test_a_graph_that_does_not_run_is_a_clear_error(checkpoint: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph with its batch size frozen at 2 (what slicing at len(x) did) fails onnxruntime
    on the check's batches: one FashionCNNError, no file."""
    def frozen(net: torch.nn.Module, meta: dict, sha: str) -> bytes:
        buf = io.BytesIO()
        torch.onnx.export(net, (images(2),), buf, dynamo=False, opset_version=export.OPSET,
                          input_names=[export.INPUT], output_names=[export.OUTPUT])
        return buf.getvalue()

    monkeypatch.setattr(export, "onnx_bytes", frozen)
    out = tmp_path / "model.onnx"
    with pytest.raises(FashionCNNError, match="does not run in onnxruntime"):
        export.export_onnx(checkpoint, out, images())
    assert not out.exists() and no_temp_files(tmp_path)


def test_the_check_runs_on_the_temp_file_before_the_rename(checkpoint: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    out = tmp_path / "model.onnx"
    seen = []
    real_new_session = export.new_session

    def spy(model: object) -> object:
        seen.append((model, out.exists()))
        return real_new_session(model)

    monkeypatch.setattr(export, "new_session", spy)
    export.export_onnx(checkpoint, out, images())
    [(checked, existed)] = seen
    assert isinstance(checked, Path) and checked.parent == tmp_path and checked != out
    assert not existed and out.is_file() and not checked.exists()


@pytest.mark.parametrize("spinning", [False, True])
def test_sessions_threads_rest_between_runs_unless_told(checkpoint: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        spinning: bool) -> None:
    """onnxruntime's threads spin between runs by default, holding a core that the next
    photo's cut-out needs (export.ORT_SPINNING, predict_speed.json's `flags`)."""
    export.export_onnx(checkpoint, tmp_path / "m.onnx", images())
    monkeypatch.setattr(export, "ORT_SPINNING", spinning)
    options = export.new_session(tmp_path / "m.onnx").get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == str(
        int(spinning))


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "does not exist"),
    (["--out", "{tmp}/a-file/x.onnx"], "is a file, not a folder"),
    (["--out", "{tmp}"], "is a folder"),
    (["--out", "{checkpoint}"], "is the checkpoint being exported: the export would overwrite"),
    (["--out", "{tmp}/other.pt"], "is a PyTorch file: the export would overwrite it"),
    (["--out", "{tmp}/a-pipe"], "is a device or pipe, not a file"),  # was a traceback
])
def test_bad_inputs_give_one_clear_message(args: list[str], message: str, tmp_path: Path,
                                           checkpoint: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    os.mkfifo(tmp_path / "a-pipe")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    before = {p: p.read_bytes() for p in (checkpoint, tmp_path / "other.pt")}
    argv = ["export", "--format", "onnx", "--out", str(tmp_path / "x.onnx"),
            "--model", str(checkpoint), "--offline", "--data-dir", str(tmp_path / "none")]
    argv += [a.format(tmp=tmp_path, checkpoint=checkpoint) for a in args]  # later ones win
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.onnx").exists()
    assert before == {p: p.read_bytes() for p in before}


def test_an_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("export", "--format", "tflite", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "tflite" in result.stderr


# ---------------------------------------------------------------------------------------------
# The backend


def test_onnxruntime_backend_gives_the_torch_probabilities(checkpoint: Path,
                                                           cache_in_tmp: Path) -> None:
    # what an older version left: this model's graph (goes) and another model's (stays)
    cache_in_tmp.mkdir()
    stale = cache_in_tmp / f"{file_sha256(checkpoint)}-0123456789ab.onnx"
    other = cache_in_tmp / f"{'0' * 64}-0123456789ab.onnx"
    for old in (stale, other):
        old.write_bytes(b"an old graph")
    torch_clf = Classifier(checkpoint, backend="torch")
    # the orientation network's graph, cached beside it, is test_orientation.py's
    onnx_clf = Classifier(checkpoint, backend="onnxruntime", upright=False)
    assert (torch_clf.backend, onnx_clf.backend) == ("torch", "onnxruntime")
    x = images().numpy()
    torch.testing.assert_close(onnx_clf.probabilities(x), torch_clf.probabilities(x),
                               atol=1e-4, rtol=0)
    # Kept in the cache (atomically), and the next Classifier starts from it.
    assert not stale.exists() and other.exists()
    other.unlink()
    [cached] = cache_in_tmp.iterdir()
    assert cached.name.startswith(file_sha256(checkpoint)) and cached.suffix == ".onnx"
    options = onnx_clf.session.get_session_options()
    assert options.intra_op_num_threads == torch.get_num_threads()
    before = cached.stat().st_mtime_ns
    again = Classifier(checkpoint, backend="onnxruntime", upright=False)
    assert cached.stat().st_mtime_ns == before
    torch.testing.assert_close(again.probabilities(x), onnx_clf.probabilities(x))


def test_tta_override_reaches_the_onnx_graph(checkpoint: Path) -> None:
    x = images(8).numpy()
    plain = Classifier(checkpoint, backend="onnxruntime", tta=False)
    flipped = Classifier(checkpoint, backend="torch", tta=False)
    torch.testing.assert_close(plain.probabilities(x), flipped.probabilities(x),
                               atol=1e-4, rtol=0)
    with pytest.raises(FashionCNNError, match="no test-time augmentation"):
        Classifier("seed", backend="torch", tta=True)


def test_without_onnxruntime_auto_is_torch_and_onnxruntime_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, checkpoint: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    assert choose_backend("auto", "best") == "torch"
    assert Classifier(checkpoint).backend == "torch"
    for backend in ("onnxruntime", "onnxruntime-int8"):
        with pytest.raises(FashionCNNError, match=r"pip install -e '\.\[onnx\]'"):
            Classifier(checkpoint, backend=backend)
    sample = str(sorted(SAMPLES.glob("*.jpg"))[0])
    assert main(["predict", sample, "--model", str(checkpoint), "--backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and ".[onnx]" in err and "Traceback" not in err


def test_predict_backends_agree(capsys: pytest.CaptureFixture[str]) -> None:
    samples = [str(p) for p in sorted(SAMPLES.glob("*.jpg"))]
    records = {}
    for backend in ("torch", "onnxruntime"):
        assert main(["predict", *samples, "--model", "seed", "--backend", backend,
                     "--format", "json"]) == 0
        records[backend] = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in records["torch"]] == [r["label"] for r in records["onnxruntime"]]
    for a, b in zip(records["torch"], records["onnxruntime"], strict=True):
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-4)


def test_predict_logits_takes_any_forward_function(checkpoint: Path) -> None:
    clf = Classifier(checkpoint, backend="onnxruntime")
    x = images(40)
    torch.testing.assert_close(predict_logits(clf.logits, x, batch_size=16),
                               predict_logits(clf.net, x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("path", sorted(RESULTS.glob("backend_speed*.json")), ids=lambda p: p.stem)
def test_auto_choice_is_the_benchmarks(path: Path) -> None:
    """FASTER_BACKEND (what `auto` picks) is what benchmarks/backend_speed.py measured, on
    every kind of CPU it was run on (backend_speed_avx2.json: no AVX-512, no VNNI)."""
    bench = json.loads(path.read_text())
    assert set(bench["models"]) == set(FASTER_BACKEND)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from backend_speed import faster
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    for name, result in bench["models"].items():
        medians = {b: {k: r[k] for k in ("test_10k_seconds", "single_ms")}
                   for b, r in result["runs"].items()}
        # chosen on validation; files from before it was recorded chose on the test set
        accuracy = {b: r.get("val_accuracy", r["test_accuracy"])
                    for b, r in result["runs"].items()}
        assert faster(medians, accuracy) == result["faster"], name  # self-consistent
        assert load_checkpoint(name)[1]["arch"] == name
        assert FASTER_BACKEND[name] == result["faster"], name
        assert result["same_argmax"] == result["n_images"] == 10_000, name


# ---------------------------------------------------------------------------------------------
# int8 (export --int8, backend onnxruntime-int8)


@pytest.fixture
def wider_checkpoint(tmp_path: Path) -> Path:
    """An untrained `best` of width 8 with flips: enough weights that int8 shows in the size."""
    torch.manual_seed(0)
    net = build_model("best", width=8, tta=True).eval()
    path = tmp_path / "wider.pt"
    save_checkpoint(path, net, config={}, metrics={}, data_checksums=None, unsure=UNSURE)
    return path


def calibration(n: int = 200) -> torch.Tensor:
    """Stand-in calibration images (seeded, not the check images)."""
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)


def test_int8_export_is_quantized_smaller_and_gives_the_same_top_class(
        wider_checkpoint: Path, tmp_path: Path) -> None:
    x = images(256)
    int8 = export.export_onnx(wider_checkpoint, tmp_path / "int8.onnx", x, calibration())
    plain = export.export_onnx(wider_checkpoint, tmp_path / "plain.onnx", x)
    assert int8.int8 and not plain.int8
    assert int8.bytes == (tmp_path / "int8.onnx").stat().st_size < 0.4 * plain.bytes
    model = onnx.load(tmp_path / "int8.onnx")
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops, ops
    int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 9  # the 8 convolutions and the linear layer
    props = {p.key: p.value for p in model.metadata_props}
    assert props["weights"] == "int8" and props["calibration_images"] == "200"
    assert props["arch"] == "best" and json.loads(props["unsure"]) == UNSURE
    # Its own run, apart from the check: PyTorch's top class on >= 99% of the images.
    net, _ = load_checkpoint(wider_checkpoint)
    ours = export.session_logits(export.new_session(tmp_path / "int8.onnx"), x)
    same = int((ours.argmax(1) == export.torch_logits(net, x).argmax(1)).sum())
    assert same == int8.same_argmax >= export.INT8_MIN_AGREEMENT * len(x)
    assert no_temp_files(tmp_path)


def test_a_failed_int8_check_leaves_no_file(wider_checkpoint: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The int8 check counts top classes: a threshold no graph meets keeps no file."""
    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 1.01)
    out = tmp_path / "int8.onnx"
    with pytest.raises(FashionCNNError, match="int8 ONNX export .* only .* test images"):
        export.export_onnx(wider_checkpoint, out, images(), calibration())
    assert not out.exists() and no_temp_files(tmp_path)


def no_data(*args: object, **kwargs: object) -> torch.Tensor:
    raise FashionCNNError("no data here")


def test_int8_backend_is_cached_apart_and_needs_the_training_images(
        wider_checkpoint: Path, cache_in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Calibrated and checked on seeded images (the untrained model's answers on real
    pictures would hang on its calibration images' resemblance to them)."""
    checkpoint = wider_checkpoint
    monkeypatch.setattr(export, "load_test_images", no_data)
    monkeypatch.setattr(export, "calibration_images", lambda meta, **kw: calibration())
    torch_clf = Classifier(checkpoint, backend="torch")
    int8_clf = Classifier(checkpoint, backend="onnxruntime-int8", upright=False)
    assert int8_clf.backend == "onnxruntime-int8" and int8_clf.session is not None
    x = images(256).numpy()
    same = (int8_clf.probabilities(x).argmax(1) == torch_clf.probabilities(x).argmax(1)).sum()
    assert int(same) >= export.INT8_MIN_AGREEMENT * len(x)
    Classifier(checkpoint, backend="onnxruntime", upright=False)
    assert sorted(p.name.endswith("-int8.onnx") for p in cache_in_tmp.iterdir()) == [False, True]

    monkeypatch.setattr(export, "calibration_images", no_data)
    for p in cache_in_tmp.iterdir():
        p.unlink()
    with pytest.raises(FashionCNNError, match="fashion-cnn data"):
        Classifier(checkpoint, backend="onnxruntime-int8")


def test_calibration_images_in_the_checkpoint_make_int8_the_default_without_the_dataset(
        wider_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto` runs a best model as int8 only when its checkpoint carries calibration images;
    then neither calibrating nor the session's check needs Fashion-MNIST."""
    import fashion_cnn.data

    monkeypatch.setattr(fashion_cnn.data, "load_fashion_mnist", no_data)
    monkeypatch.setattr(export, "load_test_images", no_data)
    net, _ = load_checkpoint(wider_checkpoint)
    calibrated = tmp_path / "calibrated.pt"
    save_checkpoint(calibrated, net, config={}, metrics={}, data_checksums=None, unsure=UNSURE,
                    calibration=calibration())
    assert torch.equal(load_checkpoint(calibrated)[1]["calibration"], calibration())
    assert Classifier(wider_checkpoint).backend == "onnxruntime"  # none: the float32 graph
    clf = Classifier(calibrated)
    assert clf.backend == "onnxruntime-int8" and clf.session is not None
    x = images(256).numpy()
    same = (clf.probabilities(x).argmax(1) == export.torch_logits(net, torch.from_numpy(x))
            .argmax(1)).sum()
    assert int(same) >= export.INT8_MIN_AGREEMENT * len(x)
    assert choose_backend("auto", "seed", int8_ready=True) == FASTER_BACKEND["seed"]
    monkeypatch.setattr(export, "ONNX_CACHE_DIR", tmp_path / "another-cache")
    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 1.01)  # no int8 graph passes now
    assert Classifier(calibrated).backend == "onnxruntime"  # auto falls back to float32
    with pytest.raises(FashionCNNError, match="int8 ONNX export"):
        Classifier(calibrated, backend="onnxruntime-int8")  # named: the error


# ---------------------------------------------------------------------------------------------
# The shipped models, on the real data


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seed", "best"])
def test_shipped_model_exports_with_the_same_answers(name: str, real_data, real_data_dir: Path,
                                                     tmp_path: Path) -> None:
    """Through the real command: the file checks itself on 1,000 test images, then gives the
    PyTorch model's top class on all 10,000 (logits within MAX_LOGIT_DIFF)."""
    out = tmp_path / f"{name}.onnx"
    result = run_cli("export", "--format", "onnx", "--model", name, "--out", str(out),
                     "--data-dir", str(real_data_dir), "--offline")
    assert result.returncode == 0, result.stderr
    assert "checked: max |logit difference|" in result.stderr and str(out) in result.stdout
    net, meta = load_checkpoint(name)
    session = export.new_session(out)
    props = session.get_modelmeta().custom_metadata_map
    assert props["arch"] == name and props["checkpoint_sha256"] == file_sha256(
        meta["path"])
    assert json.loads(props["unsure"]) == meta.get("unsure")
    ours = export.session_logits(session, real_data.test_images)
    reference = predict_logits(net, real_data.test_images, fused=False)
    assert torch.equal(ours.argmax(1), reference.argmax(1))
    assert float((ours - reference).abs().max()) <= export.MAX_LOGIT_DIFF


@pytest.mark.slow
def test_shipped_best_exports_to_int8_with_its_accuracy(real_data, real_data_dir: Path,
                                                        tmp_path: Path) -> None:
    """`export --int8` of the default model: under a third of the float32 file, PyTorch's top
    class on >= 99.5% of the 10,000 test images, test accuracy within 0.2 points."""
    out = tmp_path / "best-int8.onnx"
    result = run_cli("export", "--format", "onnx", "--model", "best", "--int8", "--out",
                     str(out), "--data-dir", str(real_data_dir), "--offline")
    assert result.returncode == 0, result.stderr
    assert "int8 calibrated on 1,000 training images" in result.stderr
    net, _ = load_checkpoint("best")
    assert out.stat().st_size < len(export.onnx_bytes(net, {"arch": "best"}, "")) / 3
    ours = export.session_logits(export.new_session(out), real_data.test_images).argmax(1)
    reference = predict_logits(net, real_data.test_images, fused=False).argmax(1)
    assert int((ours == reference).sum()) >= 9950
    labels = real_data.test_labels
    accuracy = float((ours == labels).float().mean())
    assert accuracy >= float((reference == labels).float().mean()) - 0.002
