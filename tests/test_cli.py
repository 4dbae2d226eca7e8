"""The `fashion-cnn` entry point: help, usage errors, user errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SAMPLES, cli_executable, run_cli
from fashion_cnn import cli
from fashion_cnn.cli import main


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("data", "train", "cv", "evaluate", "predict", "app", "serve"):
        assert command in result.stdout


def test_version_and_python_dash_m(capsys: pytest.CaptureFixture[str]) -> None:
    from fashion_cnn import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fashion-cnn {__version__}"
    result = subprocess.run([sys.executable, "-m", "fashion_cnn", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout.strip()) == (0, f"fashion-cnn {__version__}")


def test_ctrl_c_says_so_and_exits_130(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_load_data", interrupted)
    assert main(["data"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--epochs", "many"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["no-such-command"]) == 2


def test_user_error_is_one_line_exit_2(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--epochs", "0", "--out", str(tmp_path / "x"), "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--epochs" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_cv_refuses_trains_options_before_looking_for_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cv --init` is refused for what it is, not for the data missing from an empty folder."""
    argv = ["cv", "--init", "best", "--data-dir", str(tmp_path), "--offline",
            "--out", str(tmp_path / "cv")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cv does not take --init") and "Traceback" not in err
    assert not (tmp_path / "cv").exists()


def test_missing_data_through_the_real_entry_point(tmp_path: Path) -> None:
    result = run_cli("data", "--data-dir", str(tmp_path), "--offline")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and str(tmp_path) in result.stderr


def test_resume_of_a_folder_that_is_not_a_run(tmp_path: Path, synthetic_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    assert main(["train", "--resume", str(not_a_run), "--offline", "--quiet", "--data-dir",
                 str(synthetic_dir)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(not_a_run) in err, err


def test_a_new_run_is_not_written_into_the_current_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--out "" (an unset "$OUT") or --out . would put config.json and model.pt among the
    user's own files: refused, before the data, for train and cv."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_load_data", lambda *args: pytest.fail("data loaded"))
    for command in ("train", "cv"):
        for out in ("", "."):
            assert main([command, "--epochs", "1", "--quiet", "--out", out]) == 2
            assert "--out is empty or the current folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_nproc_mistakes_are_one_line_before_any_process_starts(tmp_path: Path) -> None:
    """With --nproc 2 a mistake used to be found by each of torchrun's processes: the message
    twice, then torchrun's ChildFailedError traceback and exit status 1."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    no_data = tmp_path / "no-data"
    no_data.mkdir()
    for command in (["train", "--out", str(tmp_path / "run")],
                    ["cv", "--folds", "1", "--out", str(tmp_path / "cv")],
                    ["train", "--out", str(tmp_path / "new"), "--data-dir", str(no_data)],
                    ["cv", "--out", str(tmp_path / "new-cv"), "--data-dir", str(no_data)]):
        result = run_cli(*command, "--nproc", "2", "--epochs", "1", "--offline")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1


def test_a_run_that_learned_nothing_is_warned_about(
        tmp_path: Path, tiny_data, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--lr 50 leaves a finite loss and chance accuracy: it used to end as a success."""
    monkeypatch.setattr(cli, "_load_data", lambda *_: tiny_data)
    for lr, warned in (("50", True), ("0.05", False)):
        assert main(["train", "--epochs", "2", "--lr", lr, "--quiet",
                     "--out", str(tmp_path / lr)]) == 0
        err = capsys.readouterr().err
        assert ("chance level" in err and f"--lr {lr}" in err) == warned, err


def test_train_without_the_test_set_reports_validation(
        tmp_path: Path, tiny_data, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "_load_data", lambda *_: tiny_data)  # the real files are checked
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--no-test", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "validation split; test set not scored" in printed and "official" not in printed
    assert "test_accuracy" not in json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_evaluate_and_predict_on_the_default_model_never_import_numba(real_data_dir: Path
                                                                      ) -> None:
    from conftest import modules_loaded_by

    sample = sorted(SAMPLES.glob("*.jpg"))[0]
    for argv in (["evaluate", "--data-dir", str(real_data_dir), "--offline", "--json"],
                 ["predict", str(sample), "--format", "json"]):
        code = f"from fashion_cnn.cli import main\nassert main({argv!r}) == 0"
        assert "numba" not in modules_loaded_by(code), argv


# --- `predict`: blank pictures and spreadsheet-safe CSV (issue 15) -----------------------------


def test_predict_blank_picture_is_unsure_not_an_error(tmp_path: Path) -> None:
    import json

    from PIL import Image

    Image.new("RGB", (300, 300), "white").save(tmp_path / "white.png")
    Image.new("RGB", (500, 3), (90, 90, 200)).save(tmp_path / "strip.png")
    result = run_cli("predict", "--format", "json", str(tmp_path))
    assert result.returncode == 0, result.stderr  # nothing failed: there is just no garment
    for record in json.loads(result.stdout):
        assert record["unsure"] is True and record["unsure_reason"] == "no garment found"
        assert record["label"] is None and record["error"] is None and record["top_k"] == []
    table = run_cli("predict", str(tmp_path / "white.png"))
    assert table.returncode == 0
    assert table.stdout.splitlines()[1].split("  ")[-1] == "unsure: no garment found"


def test_predict_turns_garments_upright_unless_told_not_to(tmp_path: Path) -> None:
    from PIL import Image

    from fashion_cnn.predict import was_turned_back

    for path in sorted(SAMPLES.glob("*.jpg"))[::3]:
        Image.open(path).transpose(Image.Transpose.ROTATE_90).save(tmp_path / path.name)
    answers = {}
    for flag in ("--upright", "--no-upright"):
        result = run_cli("predict", "--format", "json", flag, str(tmp_path))
        assert result.returncode == 0, result.stderr
        answers[flag] = {r["path"]: (r["label"], was_turned_back(r["warnings"]))
                         for r in json.loads(result.stdout)}
    turned = [p for p, (_, said) in answers["--upright"].items() if said]
    assert turned and not any(said for _, said in answers["--no-upright"].values())
    assert any(answers["--upright"][p][0] != answers["--no-upright"][p][0] for p in turned)


def test_output_the_disk_cannot_take_is_one_line() -> None:
    """`predict ... > out.csv` on a full disk: the reason, not a traceback."""
    with open("/dev/full", "w") as full:
        result = subprocess.run([cli_executable(), "predict", str(SAMPLES / "bag-1.jpg")],
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("error: No space left on device"), result.stderr
    assert "Traceback" not in result.stderr


def test_predict_csv_cells_never_run_as_formulas(tmp_path: Path) -> None:
    import csv
    import io
    import shutil

    names = ['=HYPERLINK("x").png', "-1+2.png", "@SUM(A1).jpg", "+cmd.jpg"]
    for name in names:
        shutil.copy(SAMPLES / "bag-1.jpg", tmp_path / name)
    (tmp_path / "=broken.jpg").write_bytes(b"=1+1")
    lines = "two\n=1+2.jpg"  # unquoted, its second line would be a row of its own
    shutil.copy(SAMPLES / "bag-1.jpg", tmp_path / lines)
    for args in (["."], ["--", *names, "=broken.jpg", lines]):  # a folder scan, names as given
        result = run_cli("predict", "--format", "csv", *args, cwd=tmp_path)
        assert result.returncode == 1, result.stderr  # =broken.jpg is not a picture
        rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
        paths = [row[0] for row in rows[1:]]
        assert sorted(paths) == sorted(["'" + n for n in [*names, "=broken.jpg"]] + [lines])
        for row in rows:
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (args, cell)


def test_predict_out_appears_only_once_every_picture_is_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--out writes the file when the run ends; an interrupted run leaves the file as it was
    and no temp file beside it (a redirect would hold half a JSON list)."""
    from fashion_cnn.predict import Classifier

    photos = [str(p) for p in sorted(SAMPLES.glob("*.jpg"))[:3]]
    out = tmp_path / "results" / "predictions.csv"
    assert main(["predict", "--model", "seed", "--format", "csv", "--out", str(out),
                 *photos]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("path,") and capsys.readouterr().out == ""
    real = Classifier.iter_classify

    def interrupted(self: Classifier, *args: object, **kwargs: object):  # noqa: ANN202
        yield next(real(self, *args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(Classifier, "iter_classify", interrupted)
    assert main(["predict", "--model", "seed", "--format", "json", "--out", str(out),
                 *photos]) == 130
    assert out.read_text().splitlines() == lines
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_predict_refuses_an_empty_path(capsys: pytest.CaptureFixture[str]) -> None:
    """What "$UNSET" gives in a script: not a classification of the current folder."""
    assert main(["predict", "--model", "seed", ""]) == 2
    assert "An empty path was given" in capsys.readouterr().err


def test_predict_refuses_an_out_that_cannot_take_the_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--out "" said "Cannot write . (Device or resource busy)", --out FOLDER said so only after
    every picture was classified, and --out PICTURE overwrote the picture with the results. Each
    is now one message before any picture is classified, and the picture is kept."""
    from fashion_cnn.predict import Classifier

    monkeypatch.chdir(tmp_path)
    photo = tmp_path / "shoe.jpg"
    photo.write_bytes((SAMPLES / "sneaker-1.jpg").read_bytes())
    monkeypatch.setattr(Classifier, "iter_classify", lambda *a, **k: pytest.fail("classified"))
    for out, message in (("", "--out is empty or the current folder"),
                         (str(tmp_path), "is a folder; give a file name such as"),
                         ("./shoe.jpg", "is one of the pictures to classify")):
        assert main(["predict", "--model", "seed", "shoe.jpg", "--out", out]) == 2, out
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert photo.read_bytes() == (SAMPLES / "sneaker-1.jpg").read_bytes()


def test_predict_runs_with_standard_input_closed() -> None:
    """Started with stdin closed (`<&-`, some service managers), predict failed with
    AttributeError on sys.stdin even when no '-' was given."""
    import os

    photo = str(SAMPLES / "bag-1.jpg")
    for args in ([photo], ["-"]):
        result = run_cli("predict", "--model", "seed", *args, preexec_fn=lambda: os.close(0))
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == (0 if args == [photo] else 1)
    assert "the file is empty" in result.stdout


def test_a_shipped_name_that_is_also_a_folder_here_is_warned_about(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seed").mkdir()
    photo = str(sorted(SAMPLES.glob("*.jpg"))[0])
    assert main(["predict", "--model", "seed", photo]) == 0
    assert "for the folder here, write ./seed" in capsys.readouterr().err
    assert main(["predict", "--model", "./seed", photo]) == 2  # the folder, which has no model


def test_evaluate_refuses_a_plots_file_before_scoring(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plots").write_text("a file")
    scored = []
    monkeypatch.setattr("fashion_cnn.data.load_test_set", lambda *a, **k: scored.append(1))
    for plots in (tmp_path / "plots", tmp_path / "plots" / "sub"):  # under it: refused only
        # after scoring the 10,000 images, as "Cannot write .../confusion_matrix.png"
        assert main(["evaluate", "--model", "seed", "--plots", str(plots)]) == 2
        assert "is a file; give a folder" in capsys.readouterr().err and not scored


def test_a_file_named_like_an_option_gets_a_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-x.jpg").write_bytes((sorted(SAMPLES.glob("*.jpg"))[0]).read_bytes())
    assert main(["predict", "--model", "seed", "-x.jpg"]) == 2
    assert "hint: -x.jpg is a file; put -- before" in capsys.readouterr().err
    assert main(["predict", "--model", "seed", "--", "-x.jpg"]) == 0

