"""The `fashion-cnn` entry point: help, usage errors, user errors without tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from fashion_cnn.cli import main


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("data", "train", "cv", "evaluate"):
        assert command in result.stdout


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


@pytest.mark.slow
def test_evaluate_and_predict_on_the_default_model_never_import_numba(real_data_dir: Path
                                                                      ) -> None:
    from conftest import modules_loaded_by

    sample = sorted((Path(__file__).parents[1] / "src/fashion_cnn/samples").glob("*.jpg"))[0]
    for argv in (["evaluate", "--data-dir", str(real_data_dir), "--offline", "--json"],
                 ["predict", str(sample), "--format", "json"]):
        code = f"from fashion_cnn.cli import main\nassert main({argv!r}) == 0"
        assert "numba" not in modules_loaded_by(code), argv
