"""Training: end-to-end on tiny data, determinism, resume, Keras momentum, k-fold CV, real data."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import same_bits
from conftest import cli_executable, run_cli
from fashion_cnn.errors import FashionCNNError
from fashion_cnn.evaluate import loss_and_accuracy
from fashion_cnn.files import file_sha256, write_json
from fashion_cnn.models import build_model, load_checkpoint
from fashion_cnn.predict import Classifier
from fashion_cnn.provenance import working_dir
from fashion_cnn.training import (
    RECIPES,
    TrainConfig,
    cross_validate,
    recipe_config,
    run_training,
    split_indices,
    torch_threads,
)
from fashion_cnn.training.config import Augment
from fashion_cnn.training.loop import fit
from fashion_cnn.training.run import initial_model, resolve_run_config, training_set

TINY = dict(epochs=3, batch_size=16, lr=0.05, val_fraction=0.25)


def _quiet(_: str) -> None:
    pass


def _interrupt_after(epoch: int) -> Callable[[str], None]:
    """A run's log that stops it (as Ctrl-C would) once epoch `epoch` is logged, i.e. saved."""
    def log(message: str) -> None:
        if message.startswith(f"epoch {epoch}/"):
            raise KeyboardInterrupt
    return log


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]


def test_end_to_end_tiny_run(tiny_data, tmp_path: Path) -> None:
    metrics = run_training(TrainConfig(**TINY), tiny_data, tmp_path, progress=False, log=_quiet)
    for name in ("config.json", "model.pt", "metrics.json", "learning_curves.png"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "state.pt").exists()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test_accuracy"] == metrics["test_accuracy"]
    assert [e["epoch"] for e in saved["epochs"]] == [1, 2, 3]
    for key in ("epoch_seconds", "train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert all(e[key] is not None for e in saved["epochs"]), key
    for key in ("command", "seed", "versions", "git_commit", "data_checksums",
                "train_seconds", "images_per_second"):
        assert key in saved, key
    assert saved["n_train"] + saved["n_val"] == 512
    # the synthetic task is easy: a few steps must learn it, or the loop is broken
    assert saved["epochs"][-1]["train_loss"] < saved["epochs"][0]["train_loss"]
    assert metrics["test_accuracy"] > 0.5
    net, meta = load_checkpoint(tmp_path)
    assert meta["config"]["epochs"] == 3 and meta["metrics"]["test_accuracy"] > 0.5


def test_a_run_without_the_test_set_never_reads_it(tiny_data, tmp_path: Path) -> None:
    # test images of the wrong shape: any model that scored them would fail
    untouchable = replace(tiny_data, test_images=torch.zeros(3, 5, 5, dtype=torch.uint8))
    metrics = run_training(TrainConfig(**TINY), untouchable, tmp_path, progress=False,
                           log=_quiet, score_test=False)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    _, meta = load_checkpoint(tmp_path)
    for found in (metrics, saved, meta["metrics"]):
        assert not [k for k in found if k.startswith("test_")], found.keys()
        assert found["val_accuracy"] == saved["epochs"][-1]["val_accuracy"] > 0.5
    with pytest.raises(FashionCNNError, match="--no-test needs a validation split"):
        run_training(TrainConfig(**{**TINY, "val_fraction": 0.0}), untouchable,
                     tmp_path / "unscored", progress=False, log=_quiet, score_test=False)
    assert not (tmp_path / "unscored").exists()
    # an --init of another architecture: refused before the folder is written (it once was
    # written first, and then blocked every later run there)
    with pytest.raises(FashionCNNError, match="pass --model best"):
        run_training(TrainConfig(**{**TINY, "init": "best"}), untouchable,
                     tmp_path / "wrong-init", progress=False, log=_quiet)
    assert not (tmp_path / "wrong-init").exists()
    # a checkpoint that does not say how it trained may have seen any validation image
    from fashion_cnn.models import save_checkpoint

    save_checkpoint(tmp_path / "anonymous.pt", build_model("seed"), config={}, metrics={},
                    data_checksums=None)
    with pytest.raises(FashionCNNError, match="does not say how it was trained"):
        run_training(TrainConfig(**{**TINY, "init": str(tmp_path / "anonymous.pt")}),
                     untouchable, tmp_path / "anonymous", progress=False, log=_quiet)
    # an ensemble's members are scored on the validation split, so it needs one too
    with pytest.raises(FashionCNNError, match="--members needs a validation split"):
        run_training(TrainConfig(**{**TINY, "model": "best", "members": 2, "val_fraction": 0.0}),
                     untouchable, tmp_path / "ensemble", progress=False, log=_quiet)
    assert not (tmp_path / "ensemble").exists()


def test_a_resumed_run_leaves_the_test_set_alone_if_it_started_so(
        tiny_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`train --no-test`, interrupted, then `train --resume DIR` (no test flag): still no test
    figures (a resumed candidate once scored the test set this way), and its metrics name the
    command that started it (a resumed one once recorded only the resume)."""
    untouchable = replace(tiny_data, test_images=torch.zeros(3, 5, 5, dtype=torch.uint8))

    started = f"cli.py train --no-test --out {tmp_path}"
    monkeypatch.setattr(sys, "argv", started.split())
    with pytest.raises(KeyboardInterrupt):
        run_training(TrainConfig(**TINY), untouchable, tmp_path, progress=False,
                     log=_interrupt_after(1), score_test=False)
    monkeypatch.setattr(sys, "argv", ["cli.py", "train", "--resume", str(tmp_path)])
    started_in = working_dir()
    monkeypatch.chdir(tmp_path)  # resumed elsewhere: the command's paths mean the first folder
    metrics = run_training(None, untouchable, tmp_path, resume=True, progress=False, log=_quiet)
    assert not [k for k in metrics if k.startswith("test_")], metrics.keys()
    assert metrics["val_accuracy"] > 0.5
    # the metrics name the command that started the run, and the one that resumed it
    assert metrics["command"] == started and metrics["cwd"] == started_in
    assert metrics["resumed_with"] == f"cli.py train --resume {tmp_path}"


def test_a_run_interrupted_while_saving_its_results_resumes(
        tiny_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the results are written: the run is not yet finished, so --resume writes
    them (model.pt, the mark of a finished run, once came first and blocked the resume)."""
    from fashion_cnn.training import run

    def write_all_but_the_metrics(path: Path, obj: object) -> None:
        if Path(path).name == "metrics.json":
            raise KeyboardInterrupt
        write_json(path, obj)

    with monkeypatch.context() as patch:
        patch.setattr(run, "write_json", write_all_but_the_metrics)
        with pytest.raises(KeyboardInterrupt):
            run_training(TrainConfig(**TINY), tiny_data, tmp_path, progress=False, log=_quiet)
    assert not run.run_finished(tmp_path)
    metrics = run_training(None, tiny_data, tmp_path, resume=True, progress=False, log=_quiet)
    assert run.run_finished(tmp_path) and (tmp_path / "metrics.json").is_file()
    assert len(metrics["epochs"]) == TINY["epochs"]  # no epoch trained twice


def test_validation_split_is_disjoint_and_reproducible() -> None:
    train, val = split_indices(100, 0.2, seed=3)
    assert len(val) == 20 and len(train) == 80
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert torch.equal(val, split_indices(100, 0.2, seed=3)[1])
    assert not torch.equal(val, split_indices(100, 0.2, seed=4)[1])


def test_same_seed_same_result(tiny_data, tmp_path: Path) -> None:
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        run_training(TrainConfig(**TINY, seed=seed), tiny_data, tmp_path / name,
                     progress=False, log=_quiet)
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_interrupted_run_resumes_to_the_same_weights(tiny_data, tmp_path: Path) -> None:
    run_training(TrainConfig(**TINY), tiny_data, tmp_path / "full", progress=False, log=_quiet)

    with pytest.raises(KeyboardInterrupt):
        run_training(TrainConfig(**TINY), tiny_data, tmp_path / "cut", progress=False,
                     log=_interrupt_after(2))
    assert (tmp_path / "cut" / "state.pt").is_file()
    assert not (tmp_path / "cut" / "model.pt").exists()
    with pytest.raises(FashionCNNError, match="--resume"):
        run_training(TrainConfig(**TINY), tiny_data, tmp_path / "cut", log=_quiet)
    messages: list[str] = []
    run_training(None, tiny_data, tmp_path / "cut", resume=True, progress=False,
                 log=messages.append)
    assert messages[0] == "resuming after epoch 2 of 3"
    full, cut = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert all(torch.equal(full[k], cut[k]) for k in full)
    history = json.loads((tmp_path / "cut" / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2, 3]
    with pytest.raises(FashionCNNError, match="already finished"):
        run_training(None, tiny_data, tmp_path / "cut", resume=True, log=_quiet)
    with pytest.raises(FashionCNNError, match="finished run .* choose another --out") as err:
        run_training(TrainConfig(**TINY), tiny_data, tmp_path / "cut", log=_quiet)
    assert "--resume" not in str(err.value)  # a finished run is not to be continued



def test_after_epoch_hook_adds_to_the_saved_history(tiny_data, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook sees each epoch's trained, validated model; what it adds is saved with the
    epoch (across a resume), and its time stays out of epoch_seconds."""
    from types import SimpleNamespace

    from fashion_cnn.evaluate import loss_and_accuracy
    from fashion_cnn.training import loop

    offset = [0.0]  # seconds the hook "spends": loop.py's clock jumps by them
    monkeypatch.setattr(loop, "time", SimpleNamespace(
        perf_counter=lambda: time.perf_counter() + offset[0]))
    calls: list[int] = []

    def score(model: torch.nn.Module, record: dict) -> None:
        assert record["val_accuracy"] is not None  # validated first
        calls.append(record["epoch"])
        record["hook_test_accuracy"] = loss_and_accuracy(
            model, tiny_data.test_images, tiny_data.test_labels)[1]
        offset[0] += 3600.0

    with pytest.raises(KeyboardInterrupt):
        run_training(TrainConfig(**TINY), tiny_data, tmp_path, progress=False,
                     log=_interrupt_after(2), after_epoch=score)
    metrics = run_training(None, tiny_data, tmp_path, resume=True, progress=False,
                           log=_quiet, after_epoch=score)
    assert calls == [1, 2, 3]  # epochs 1-2 before the interruption, 3 after resuming
    saved = json.loads((tmp_path / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in saved] == [1, 2, 3]
    assert all(isinstance(e["hook_test_accuracy"], float) for e in saved)
    # the last epoch's model is the one tested at the end
    assert saved[-1]["hook_test_accuracy"] == metrics["test_accuracy"]
    assert all(e["epoch_seconds"] < 3600 for e in saved)
    assert metrics["train_seconds"] < 3600

def test_torch_sgd_equals_keras_momentum() -> None:
    """Keras: v = m*v - lr*g; w += v.  The run uses torch.optim.SGD; they must agree."""
    torch.manual_seed(0)
    model = build_model("seed")
    keras_w = {n: p.detach().clone() for n, p in model.named_parameters()}
    velocity = {n: torch.zeros_like(p) for n, p in keras_w.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (32,))
    for _ in range(5):
        reference = build_model("seed")
        reference.load_state_dict(keras_w)
        loss = torch.nn.functional.cross_entropy(reference(x), y)
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        for (name, _), g in zip(reference.named_parameters(), grads, strict=True):
            velocity[name] = 0.9 * velocity[name] - 0.01 * g
            keras_w[name] = keras_w[name] + velocity[name]
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), keras_w[name], atol=1e-6, rtol=1e-5)


def test_bad_config_is_a_user_error() -> None:
    with pytest.raises(FashionCNNError, match="--epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(FashionCNNError, match="--val-fraction"):
        TrainConfig(val_fraction=1.5)


def test_settings_torch_would_reject_mid_run_are_refused_up_front() -> None:
    """Each of these used to pass the config, then fail inside torch (a traceback) after the
    run's folder was written, leaving a folder neither a new run nor --resume could use."""
    for settings, option in (({"label_smoothing": 2.0}, "--label-smoothing"),
                             ({"momentum": -0.5}, "--momentum"),
                             ({"weight_decay": -1.0}, "--weight-decay"),
                             ({"lr": float("inf")}, "--lr"),
                             ({"augment": Augment(translate=-2)}, "--translate"),
                             ({"augment": Augment(erase=1.5)}, "--erase"),
                             ({"augment": Augment(scale=float("nan"))}, "--scale")):
        with pytest.raises(FashionCNNError, match=option):
            TrainConfig(**settings)
    with pytest.raises(FashionCNNError) as err:
        TrainConfig(epochs=0)
    assert "--photos-from" not in str(err.value)  # not an option this run set


def test_a_run_whose_loss_diverges_stops_with_a_message(tiny_data, tmp_path: Path) -> None:
    """A learning rate far too high makes the loss NaN: the run stops in that epoch and saves
    nothing of it, instead of finishing with chance accuracy and exit status 0."""
    config = TrainConfig(**{**TINY, "lr": 1e30, "momentum": 0.0})
    state = tmp_path / "state.pt"
    with pytest.raises(FashionCNNError, match="diverged in epoch 1.*--lr 1e\\+30"):
        fit(build_model("seed"), config, tiny_data.train_images, tiny_data.train_labels,
            state_path=state, progress=False, log=_quiet)
    assert not state.exists()


def test_sgd_without_momentum_trains_the_seed_model(tiny_data) -> None:
    """`--momentum 0` on the seed model's fused step: there is no momentum buffer to pass
    (it used to raise KeyError 'momentum_buffer' from the second step on)."""
    config = TrainConfig(**{**TINY, "epochs": 1, "momentum": 0.0})
    history = fit(build_model("seed"), config, tiny_data.train_images[:128],
                  tiny_data.train_labels[:128], progress=False, log=_quiet)
    assert len(history) == 1 and history[0]["train_loss"] < 2.5


def test_fold_counts_that_cannot_be_trained_are_refused(tiny_data, tmp_path: Path) -> None:
    """--folds 100000 used to start 60,000 trainings without a word, and a count torch's
    `chunk` cannot make equal folds of (here 100 of 512 images: 86 folds) would train every
    fold but the last, then fail with an IndexError."""
    config = TrainConfig(**{**TINY, "val_fraction": 0.0})
    for folds, message in ((1, "2 to 100"), (100_000, "2 to 100"), (100, "equal folds")):
        with pytest.raises(FashionCNNError, match=message):
            cross_validate(config, tiny_data, tmp_path / str(folds), folds=folds,
                           progress=False, log=_quiet)


def test_train_and_cv_keep_out_of_each_others_folders(tiny_data, tmp_path: Path) -> None:
    """Each used to offer to --resume the other's folder, then wrote its own files into it."""
    run, folds = tmp_path / "run", tmp_path / "cv"
    run_training(TrainConfig(**{**TINY, "epochs": 1}), tiny_data, run, progress=False,
                 log=_quiet)
    cv_config = TrainConfig(**{**TINY, "epochs": 1, "val_fraction": 0.0})
    cross_validate(cv_config, tiny_data, folds, folds=2, progress=False, log=_quiet)
    for resume in (False, True):
        with pytest.raises(FashionCNNError, match="holds a cross-validation"):
            resolve_run_config(None, folds, resume=resume)
    with pytest.raises(FashionCNNError, match="holds a training run"):
        cross_validate(cv_config, tiny_data, run, folds=2, progress=False, log=_quiet)
    assert not (run / "fold1").exists()
    with pytest.raises(FashionCNNError, match="2-fold cross-validation, not 3.*--folds 2"):
        cross_validate(cv_config, tiny_data, folds, folds=3, progress=False, log=_quiet)
    with pytest.raises(FashionCNNError, match="is a file"):
        resolve_run_config(None, run / "model.pt")


def test_a_damaged_state_is_one_message_with_a_way_out(tiny_data, tmp_path: Path) -> None:
    config = TrainConfig(**{**TINY, "epochs": 2})
    state = tmp_path / "state.pt"
    images, labels = tiny_data.train_images[:64], tiny_data.train_labels[:64]
    fit(build_model("seed"), replace(config, epochs=1), images, labels, state_path=state,
        progress=False, log=_quiet)
    for damage in (state.read_bytes()[:200], b"not a state at all"):
        state.write_bytes(damage)
        with pytest.raises(FashionCNNError, match="truncated or damaged.*Delete it"):
            fit(build_model("seed"), config, images, labels, state_path=state,
                progress=False, log=_quiet)


def test_cross_validation_and_its_resume(tiny_data, tmp_path: Path) -> None:
    config = TrainConfig(**{**TINY, "epochs": 2, "val_fraction": 0.0})
    summary = cross_validate(config, tiny_data, tmp_path, folds=3, progress=False, log=_quiet)
    accs = summary["fold_accuracies"]
    assert len(accs) == 3 and all(0 <= a <= 1 for a in accs)
    assert summary["mean_accuracy"] == pytest.approx(sum(accs) / 3)
    for name in ("cv.json", "cv_boxplot.png", "cv_learning_curves.png"):
        assert (tmp_path / name).is_file()
    (tmp_path / "fold3" / "result.json").unlink()  # as if killed during fold 3
    messages: list[str] = []
    again = cross_validate(config, tiny_data, tmp_path, folds=3, progress=False,
                           log=messages.append)
    assert sum("done earlier" in m for m in messages) == 2
    assert again["fold_accuracies"] == accs  # deterministic, so the redone fold matches
    for train_only in ({"init": "best"}, {"photos": True, "synthetic": 10},
                       {"model": "best", "members": 2}):
        with pytest.raises(FashionCNNError, match="cv does not take --"):
            cross_validate(TrainConfig(**{**TINY, "val_fraction": 0.0, **train_only}),
                           tiny_data, tmp_path / "other", folds=3, progress=False, log=_quiet)
        assert not (tmp_path / "other").exists()


# --- real data -------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_training_killed_and_resumed_reaches_85_percent(real_data_dir: Path,
                                                             tmp_path: Path) -> None:
    """Faithful recipe for 2 epochs through the real CLI, SIGKILLed in epoch 2, resumed."""
    out = tmp_path / "run"
    args = ["--data-dir", str(real_data_dir), "--offline", "--quiet"]
    proc = subprocess.Popen([cli_executable(), "train", "--epochs", "2", "--out", str(out),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while not (out / "state.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # well inside epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model.pt").exists(), "killed too late to test resuming"
    result = run_cli("train", "--resume", str(out), *args)
    assert result.returncode == 0, result.stderr
    assert "resuming after epoch 1 of 2" in result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert metrics["test_accuracy"] >= 0.85
    assert f"Accuracy : {100 * metrics['test_accuracy']:.2f}%" in result.stdout


def _full_and_resumed_match(config: TrainConfig, data, root: Path) -> dict:
    """Train `config` straight through and again cut after epoch 1 then resumed; the weights
    must be identical. Returns the straight run's metrics."""
    full = run_training(config, data, root / "full", progress=False, log=_quiet)

    with pytest.raises(KeyboardInterrupt):
        run_training(config, data, root / "cut", progress=False, log=_interrupt_after(1))
    run_training(None, data, root / "cut", resume=True, progress=False, log=_quiet)
    a, b = _weights(root / "full"), _weights(root / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    return full


def test_augmented_training_runs_and_resumes_exactly(tiny_data, tmp_path: Path) -> None:
    config = TrainConfig(**TINY, augment=Augment(flip=True, shift=2.0, scale=0.1, contrast=0.3,
                                                 noise=8.0))
    augmented = _full_and_resumed_match(config, tiny_data, tmp_path)
    saved = json.loads((tmp_path / "full" / "config.json").read_text())
    assert saved["augment"]["flip"] is True and saved["augment"]["noise"] == 8.0
    assert TrainConfig.from_dict(saved) == config
    plain = run_training(TrainConfig(**TINY), tiny_data, tmp_path / "plain", progress=False,
                         log=_quiet)
    assert plain["epochs"][-1]["train_loss"] != augmented["epochs"][-1]["train_loss"]


class _SeenImages:
    """A step that trains nothing and keeps each epoch's (augmented, shuffled) images."""

    def __init__(self) -> None:
        self.epochs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def start_epoch(self, images: torch.Tensor, labels: torch.Tensor, epoch: int) -> None:
        self.epochs.append((images, labels))

    def __call__(self, rows: slice, n: int) -> torch.Tensor:
        return torch.zeros(rows.stop - rows.start, 10)

    def end_epoch(self, model: torch.nn.Module) -> dict:
        return {}


def test_alternating_flip_shows_every_image_both_ways_in_two_epochs() -> None:
    from fashion_cnn.training.loop import train_epoch

    n = 64
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    images[:, :, :5] = 255  # a bar on the left: mirrored, it is on the right
    images[:, 0, 13:15] = torch.arange(n)[:, None]  # each image's identity, mirror-proof
    labels = torch.arange(n) % 10
    config = TrainConfig(**{**TINY, "batch_size": n},
                         augment=Augment(flip=True, alternate_flip=True))
    seen = _SeenImages()
    for epoch in (1, 2, 3):
        train_epoch(seen, build_model("seed"), config, images, labels, epoch, progress=False)
    mirrored = []  # per epoch, by image (its identity pixel), whatever the epoch's order
    for xs, _ in seen.epochs:
        ids = xs[:, 0, 13].long()
        mirrored.append(torch.zeros(n, dtype=torch.bool).index_put_((ids,), xs[:, 0, -1] == 255))
    assert 16 < int(mirrored[0].sum()) < 48  # a random half
    assert torch.equal(mirrored[1], ~mirrored[0]) and torch.equal(mirrored[2], mirrored[0])
    with pytest.raises(FashionCNNError, match="--flip"):
        TrainConfig(augment=Augment(alternate_flip=True))


def test_cutmix_trains_towards_mixed_distributions(tiny_data) -> None:
    from fashion_cnn.training.loop import train_epoch

    images, labels = tiny_data.train_images[:64], tiny_data.train_labels[:64]
    config = TrainConfig(**{**TINY, "batch_size": 32}, label_smoothing=0.1,
                         augment=Augment(cutmix=1.0))
    seen = _SeenImages()
    record = train_epoch(seen, build_model("seed"), config, images, labels, 1, progress=False)
    xs, targets = seen.epochs[0]
    assert targets.shape == (64, 10) and torch.allclose(targets.sum(1), torch.ones(64))
    assert (targets.max(1).values < 0.91).float().mean() > 0.5  # most targets are mixed
    assert record["train_loss"] > 0
    from fashion_cnn.training.steps import PlainStep, make_step

    step = make_step(build_model("seed"), config, images, labels)  # not the fused step:
    assert isinstance(step, PlainStep)  # it trains towards labels only
    with pytest.raises(FashionCNNError, match="--cutmix"):
        TrainConfig(photos=True, augment=Augment(cutmix=0.5))


def test_whitened_first_layer_and_batch_norm_scales_stay_as_set(tiny_data) -> None:
    from fashion_cnn.training.steps import whitening_filters

    config = recipe_config("best", width=4, epochs=1, batch_size=64, whiten=True,
                           bn_scale=False, bf16=False, val_fraction=0.25)
    model, _ = initial_model(config)
    conv = model.features[0][0]
    x = model.normalize(tiny_data.train_images)
    filters = whitening_filters(x)  # [18, 1, 3, 3]: 9 directions and their negatives
    torch.testing.assert_close(filters[1::2], -filters[::2])
    out = F.conv2d(x, filters[::2], padding=1).permute(0, 2, 3, 1).reshape(-1, 9)
    torch.testing.assert_close(out.T @ out / len(out), torch.eye(9), atol=0.02, rtol=0)
    fit(model, config, tiny_data.train_images, tiny_data.train_labels, progress=False,
        log=lambda _: None)
    torch.testing.assert_close(conv.weight.detach(), filters[:4])  # set, then not trained
    scales = [m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(s, torch.ones_like(s)) for s in scales)
    assert model.features[1][0].weight.grad is not None  # the rest did train
    with pytest.raises(FashionCNNError, match="--whiten"):
        TrainConfig(whiten=True)


def test_fast_recipe_schedule_resumes_exactly(tiny_data, tmp_path: Path) -> None:
    """One-cycle LR, Nesterov, label smoothing: the scheduler state survives an interruption."""
    config = recipe_config("fast", epochs=3, batch_size=64, lr=0.1, val_fraction=0.25)
    full = _full_and_resumed_match(config, tiny_data, tmp_path)
    assert full["config"]["schedule"] == "onecycle" and full["test_accuracy"] > 0.5


def test_lookahead_averages_the_weights_and_resumes_exactly(tiny_data, tmp_path: Path) -> None:
    """airbench's lookahead: a run with it differs from one without, survives an interruption
    bit for bit, and each pull lands the weights between the average and the new weights."""
    config = recipe_config("fast", epochs=3, batch_size=64, lr=0.1, val_fraction=0.25,
                           lookahead=True)
    full = _full_and_resumed_match(config, tiny_data, tmp_path)
    assert full["config"]["lookahead"] is True and full["test_accuracy"] > 0.5
    plain = run_training(recipe_config("fast", epochs=3, batch_size=64, lr=0.1,
                                       val_fraction=0.25), tiny_data, tmp_path / "plain",
                         progress=False, log=_quiet)
    assert plain["epochs"][-1]["train_loss"] != full["epochs"][-1]["train_loss"]

    from fashion_cnn.training.steps import Lookahead

    layer = torch.nn.Linear(2, 1)
    lookahead = Lookahead(layer, total=10, every=2, base=0.5, power=1.0)
    lookahead.start(done=3)  # the average: the weights now
    before = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(1.0)
    lookahead.step()  # step 4: a pull, decay 0.5**2 * 4/10 = 0.1
    assert torch.allclose(layer.weight, before + 0.9)
    with torch.no_grad():
        layer.weight.add_(1.0)
    lookahead.step()  # step 5: no pull
    assert torch.allclose(layer.weight, before + 1.9)
    lookahead.finish()  # the epoch ends on the average
    assert torch.allclose(layer.weight, before + 0.9)


def test_sam_steps_with_the_gradient_at_the_ascended_weights(tiny_data) -> None:
    """SAM: one step moves the weights by -lr times the gradient taken at w + rho g / |g|;
    the second pass leaves the batch norms' running statistics as the first left them."""
    from fashion_cnn.training.steps import PlainStep

    x, y = tiny_data.train_images[:16], tiny_data.train_labels[:16]
    config = TrainConfig(sam=0.5, lr=0.1, momentum=0.0, fused=False, batch_size=16)
    model = build_model("seed")
    start = [p.detach().clone() for p in model.parameters()]
    loss = F.cross_entropy(model(x), y)
    g = torch.autograd.grad(loss, list(model.parameters()))
    norm = torch.linalg.vector_norm(torch.stack([t.norm() for t in g]))
    with torch.no_grad():
        for p, t in zip(model.parameters(), g, strict=True):
            p.add_(t * 0.5 / norm)
    g_ascended = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    with torch.no_grad():
        for p, w in zip(model.parameters(), start, strict=True):
            p.copy_(w)
    step = PlainStep(model, config, steps=[1])
    step.start_epoch(x, y, 1)
    step(slice(0, 16), 16)
    for p, w, t in zip(model.parameters(), start, g_ascended, strict=True):
        torch.testing.assert_close(p.detach(), w - 0.1 * t)

    best = recipe_config("best", width=4, bf16=False, channels_last=False, batch_size=16)
    runs = {}
    for rho in (0.0, 0.5):
        torch.manual_seed(0)
        model, _ = initial_model(replace(best, sam=rho))
        step = PlainStep(model, replace(best, sam=rho), steps=[1])
        step.start_epoch(x, y, 1)
        step(slice(0, 16), 16)
        runs[rho] = model.state_dict()
    assert all(torch.equal(runs[0.0][k], runs[0.5][k]) for k in runs[0.0] if "running" in k)
    assert not torch.equal(runs[0.0]["features.0.0.weight"], runs[0.5]["features.0.0.weight"])
    with pytest.raises(FashionCNNError, match="--sam"):
        TrainConfig(sam=-0.1)


def test_recipe_presets_and_explicit_options() -> None:
    assert recipe_config() == TrainConfig()  # faithful: the Keras article
    fast = recipe_config("fast", seed=3, epochs=None)
    assert (fast.batch_size, fast.epochs, fast.schedule, fast.augment.flip, fast.seed) == (
        128, 6, "onecycle", True, 3)
    assert recipe_config("fast", epochs=7, flip=False).epochs == 7
    assert recipe_config("fast", epochs=7, flip=False).augment.flip is False
    assert recipe_config("faithful", augment="photo").augment.noise > 0
    assert recipe_config().fused and not recipe_config(fused=False).fused
    with pytest.raises(FashionCNNError, match="--recipe"):
        recipe_config("quick")
    with pytest.raises(FashionCNNError, match="--augment"):
        recipe_config(augment="heavy")


# ---------------------------------------------------------------------------------------------
# The structure: same bits as before the refactor, one source per option, no leaked state


@pytest.mark.slow
@pytest.mark.parametrize("name", list(same_bits.RUNS))
def test_same_weights_as_recorded_on_this_kind_of_machine(real_data, name) -> None:
    """Hashes recorded by `tests/same_bits.py --record` on this kind of machine (the first
    on the code before issue 14)."""
    recorded = same_bits.recorded_hashes()
    if recorded is None or name not in recorded:
        pytest.skip(f"no {name} hash recorded on {same_bits.machine()} (float rounding differs "
                    "between CPUs): run python tests/same_bits.py --record on a commit known good")
    got = same_bits.train_and_hash(name, real_data.train_images, real_data.train_labels)
    assert got == recorded[name]


def test_thread_count_is_restored_after_a_run(tiny_data, tmp_path: Path) -> None:
    before = torch.get_num_threads()
    run_training(TrainConfig(**{**TINY, "epochs": 1}, threads=1), tiny_data, tmp_path / "a",
                 progress=False, log=_quiet)
    assert torch.get_num_threads() == before
    with pytest.raises(KeyboardInterrupt):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise KeyboardInterrupt
    assert torch.get_num_threads() == before


def test_step_factory_picks_the_fused_step_for_the_seed_cnn_only(tiny_data) -> None:
    from fashion_cnn.seed_fast.step import FusedStep
    from fashion_cnn.training.steps import PlainStep, make_step

    x, y = tiny_data.train_images, tiny_data.train_labels
    assert isinstance(make_step(build_model("seed"), TrainConfig(), x, y), FusedStep)
    assert isinstance(make_step(build_model("seed"), TrainConfig(fused=False), x, y), PlainStep)
    assert isinstance(make_step(build_model("best"), TrainConfig(model="best"), x, y), PlainStep)


def _options(command: str) -> dict[str, object]:
    import typer

    from fashion_cnn.cli import app

    click_command = typer.main.get_command(app).commands[command]
    return {p.name: p for p in click_command.params}


def test_train_and_cv_options_come_from_the_config() -> None:
    from dataclasses import fields

    train, cv = _options("train"), _options("cv")
    for cls in (TrainConfig, Augment):
        for f in fields(cls):
            if "help" in f.metadata:
                assert f.name in train and f.name in cv, f.name
                assert f.metadata["help"] in train[f.name].help
    # cv takes every option train does (and --folds), except --test: it never scores the test set
    assert set(train) - {"test"} <= set(cv)
    for name, overrides in RECIPES.items():  # the recipes' values, printed from the recipes
        for key, value in overrides.items():
            assert f"{key}={value}" in train["recipe"].help, (name, key)
            assert f"{name} recipe: {value}" in train[key].help, (name, key)


def test_cv_takes_a_recipe(tiny_data, tmp_path: Path, monkeypatch) -> None:
    from fashion_cnn import cli

    monkeypatch.setattr(cli, "_load_data", lambda *args: tiny_data)
    main = cli.main
    assert main(["cv", "--recipe", "fast", "--epochs", "1", "--folds", "2", "--quiet",
                 "--out", str(tmp_path / "cv")]) == 0
    config = json.loads((tmp_path / "cv" / "cv.json").read_text())["config"]
    assert (config["batch_size"], config["schedule"], config["augment"]["flip"],
            config["epochs"], config["val_fraction"]) == (128, "onecycle", True, 1, 0.0)
    assert main(["cv", "--resume", str(tmp_path / "cv"), "--quiet",
                 "--epochs", "3"]) == 0  # --epochs ignored (said), --folds the run's: done
    assert json.loads((tmp_path / "cv" / "cv.json").read_text())["config"] == config
    # the same folder with another config or number of folds: refused before the data
    monkeypatch.setattr(cli, "_load_data", lambda *args: pytest.fail("data loaded"))
    for other in (["--epochs", "2", "--folds", "2"], ["--epochs", "1", "--folds", "3"]):
        assert main(["cv", "--recipe", "fast", *other, "--quiet",
                     "--out", str(tmp_path / "cv")]) == 2
    assert json.loads((tmp_path / "cv" / "config.json").read_text()) == config


def test_a_state_saved_under_another_config_is_refused(tiny_data, tmp_path: Path) -> None:
    """A half-trained fold left in a folder by one cross-validation must not be continued by
    another (it once was: under the new config, or with a traceback for another model)."""
    config = TrainConfig(**{**TINY, "epochs": 2, "val_fraction": 0.0})
    state = tmp_path / "fold1" / "state.pt"
    model = build_model("seed")
    fit(model, config, tiny_data.train_images[:64], tiny_data.train_labels[:64],
        state_path=state, progress=False, log=_quiet)
    assert state.is_file()
    with pytest.raises(FashionCNNError, match="another config .*epochs differ"):
        fit(build_model("seed"), replace(config, epochs=3), tiny_data.train_images[:64],
            tiny_data.train_labels[:64], state_path=state, progress=False, log=_quiet)


def test_functions_stay_short() -> None:
    """No function in src/ over 70 lines; the training loop at most 60."""
    import ast

    src = Path(__file__).resolve().parents[1] / "src" / "fashion_cnn"
    lengths = {}
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lengths[f"{path.relative_to(src)}:{node.name}"] = (
                    node.end_lineno - node.lineno + 1)
    assert lengths["training/loop.py:fit"] <= 60
    assert {k: n for k, n in lengths.items() if n > 70} == {}


# ---------------------------------------------------------------------------------------------
# Real photos: set-valued and outlier labels, fine-tuning from a checkpoint


def test_set_and_outlier_labels_in_the_loss() -> None:
    import math

    from fashion_cnn.training.steps import summed_loss

    config = TrainConfig(photos=True, outlier_weight=0.5)
    logits = torch.tensor([[0.0, 0, 9, 0, 0, 0, 0, 0, 0, 0],  # sure of class 2 (Pullover)
                           [0.0] * 10,  # no idea
                           [0.0, 0, 0, 0, 0, 0, 0, 0, 0, 9]])  # sure of class 9 (Ankle boot)
    single = summed_loss(logits[:1], torch.tensor([2]), config)
    assert torch.isclose(single, F.cross_entropy(logits[:1], torch.tensor([2]),
                                                 reduction="sum"))
    longsleeve, shoes, outlier = 10, 11, 12  # photos.py's codes
    assert summed_loss(logits[:1], torch.tensor([longsleeve]), config) < 0.01  # 2 is in the set
    assert summed_loss(logits[2:], torch.tensor([shoes]), config) < 0.01  # 9 too
    assert summed_loss(logits[2:], torch.tensor([longsleeve]), config) > 7  # 9 is not
    uniform = summed_loss(logits[1:2], torch.tensor([outlier]), config)
    assert torch.isclose(uniform, torch.tensor(0.5 * math.log(10)))
    assert summed_loss(logits[2:], torch.tensor([outlier]), config) > uniform  # sure = wrong
    both = summed_loss(logits, torch.tensor([2, outlier, shoes]), config)
    assert torch.isclose(both, single + uniform + summed_loss(logits[2:], torch.tensor([shoes]),
                                                              config))


def _fake_photos(split: str, **_) -> object:
    """A small stand-in for photos.load_photos: learnable images with photo codes."""
    from conftest import learnable_images
    from fashion_cnn.photos import FOLDER_CODES, PhotoSet

    folders = sorted(FOLDER_CODES) * (6 if split == "train" else 3)
    codes = torch.tensor([FOLDER_CODES[f] for f in folders])
    images = learnable_images(codes.clamp(max=9), seed=3 if split == "train" else 4)
    return PhotoSet(images=images, codes=codes, folders=folders,
                    paths=[Path(f"{f}/{i}.jpg") for i, f in enumerate(folders)],
                    checksums={"files_sha256": "fake"})


def test_training_with_photos_and_from_a_checkpoint(tiny_data, tmp_path: Path,
                                                    monkeypatch) -> None:
    import fashion_cnn.photos

    monkeypatch.setattr(fashion_cnn.photos, "load_photos", _fake_photos)
    first = run_training(TrainConfig(**TINY), tiny_data, tmp_path / "a", progress=False,
                         log=_quiet)
    monkeypatch.chdir(tmp_path)  # `--init a` as typed in tmp_path
    config = TrainConfig(**{**TINY, "epochs": 1, "lr": 0.0001}, photos=True, photo_repeat=2,
                         init="a")
    tuned = run_training(config, tiny_data, tmp_path / "b", progress=False, log=_quiet)
    assert tuned["photos"]["train"]["n"] == 60 and tuned["photos"]["train"]["repeat"] == 2
    assert tuned["epochs"][0]["images_per_second"] > 0
    assert abs(tuned["test_accuracy"] - first["test_accuracy"]) < 0.1  # started from `a`
    # the start is recorded by file, not only by the name in the config, and where it is
    # wherever the run is read from later
    assert tuned["init"] == {"checkpoint": str((tmp_path / "a" / "model.pt").resolve()),
                             "sha256": file_sha256(tmp_path / "a" / "model.pt")}
    assert "init" not in first
    scores = tuned["photos"]["validation"]
    assert {"strict_accuracy", "lenient_accuracy", "out_of_class_auroc"} <= set(scores)
    _, meta = load_checkpoint(tmp_path / "b")
    assert meta["unsure"]["threshold"] == scores["at_threshold"]["threshold"] == 0.5
    assert meta["unsure"]["score"] == "energy"  # predict's in-class score, its offset chosen
    assert meta["unsure"]["offset"] == scores["energy_offset"]  # to keep 95% of in-class
    assert Classifier(tmp_path / "b", backend="torch").policy.offset == scores["energy_offset"]
    with pytest.raises(FashionCNNError, match="--init"):
        run_training(TrainConfig(**TINY, model="best", init=str(tmp_path / "a")), tiny_data,
                     tmp_path / "c", progress=False, log=_quiet)


def test_photos_can_join_a_run_at_a_later_epoch(tiny_data, tmp_path: Path,
                                                monkeypatch) -> None:
    """--photos-from 3: epochs 1-2 train on Fashion-MNIST's images alone, epoch 3 on the
    photos too (the one-cycle schedule counts those steps: more would raise), and an
    interrupted run resumes to the same weights."""
    import fashion_cnn.photos

    monkeypatch.setattr(fashion_cnn.photos, "load_photos", _fake_photos)
    config = recipe_config("fast", **{**TINY, "batch_size": 64}, photos=True, photo_repeat=2,
                           photos_from=3)
    metrics = _full_and_resumed_match(config, tiny_data, tmp_path)
    n_train, n_photos = metrics["n_train"], 2 * metrics["photos"]["train"]["n"]
    assert [e["images"] for e in metrics["epochs"]] == [n_train, n_train, n_train + n_photos]
    assert metrics["images_per_second"] == pytest.approx(
        (3 * n_train + n_photos) / metrics["train_seconds"])
    with pytest.raises(FashionCNNError, match="--photos-from"):
        TrainConfig(epochs=3, photos_from=2)  # nothing to join
    with pytest.raises(FashionCNNError, match="--photos-from"):
        TrainConfig(epochs=3, photos=True, photos_from=4)


def test_a_fine_tune_keeps_the_validation_split_of_its_start(tiny_data, tmp_path: Path) -> None:
    """A fine-tune whose validation images its --init checkpoint trained on is refused before
    anything runs, naming the split to pass; the same split, or another seed on it, trains."""
    run_training(TrainConfig(**TINY), tiny_data, tmp_path / "a", progress=False, log=_quiet)
    start = {**TINY, "epochs": 1, "init": str(tmp_path / "a")}
    for other in ({"seed": 1}, {"split_seed": 2}, {"val_fraction": 0.5}):
        with pytest.raises(FashionCNNError, match="--split-seed 0 --val-fraction 0.25"):
            run_training(TrainConfig(**{**start, **other}), tiny_data, tmp_path / "b",
                         progress=False, log=_quiet)
        assert not (tmp_path / "b").exists()
    tuned = run_training(TrainConfig(**start, seed=1, split_seed=0), tiny_data, tmp_path / "b",
                         progress=False, log=_quiet)
    assert tuned["init"]["checkpoint"] == str(tmp_path / "a" / "model.pt")
    run_training(TrainConfig(**{**TINY, "val_fraction": 0}), tiny_data, tmp_path / "all",
                 progress=False, log=_quiet)
    with pytest.raises(FashionCNNError, match="every training image"):
        run_training(TrainConfig(**{**start, "init": str(tmp_path / "all")}), tiny_data,
                     tmp_path / "c", progress=False, log=_quiet)


def test_retaken_photo_views_take_turns_with_the_photos(tiny_data, monkeypatch) -> None:
    """With --photo-views 2 and --photo-repeat 5, the photos part is the photos, view 0,
    view 1, the photos, view 0: each appearance a different picture of the same garment."""
    import fashion_cnn.photos

    monkeypatch.setattr(fashion_cnn.photos, "load_photos", _fake_photos)
    seen = {}

    def fake_views(ps, views: int, seed: int, crop: float, **_) -> torch.Tensor:
        seen.update(views=views, seed=seed, crop=crop)
        return torch.stack([ps.images // (v + 2) for v in range(views)])

    monkeypatch.setattr(fashion_cnn.photos, "load_photo_views", fake_views)
    config = TrainConfig(**TINY, photos=True, photo_repeat=5, photo_views=2, photo_crop=0.2,
                         seed=3)
    train_idx = torch.arange(100)
    images, labels, summary = training_set(config, tiny_data, train_idx, progress=False)
    ps = _fake_photos("train")
    n = len(ps.codes)
    parts = images[100:].unflatten(0, (5, n))
    for r, expected in enumerate([ps.images, ps.images // 2, ps.images // 3, ps.images,
                                  ps.images // 2]):
        assert torch.equal(parts[r], expected)
    assert torch.equal(labels[100:], ps.codes.repeat(5))
    assert seen == {"views": 2, "seed": 3, "crop": 0.2} and summary["views"] == 2
    with pytest.raises(FashionCNNError, match="--photo-views"):
        TrainConfig(photos=True, photo_repeat=4, photo_views=4)
    with pytest.raises(FashionCNNError, match="--photo-crop"):
        TrainConfig(photos=True, photo_repeat=4, photo_views=2, photo_crop=0.6)


def test_training_with_synthetic_photos_of_training_images_only(tiny_data, tmp_path: Path,
                                                                monkeypatch) -> None:
    import fashion_cnn.render

    seen = {}

    def fake_render(images: torch.Tensor, seed: int, **_) -> torch.Tensor:
        seen["images"], seen["seed"] = images, seed
        return 255 - images  # any conversion: only the plumbing is tested here

    monkeypatch.setattr(fashion_cnn.render, "synthetic_photos", fake_render)
    config = TrainConfig(**{**TINY, "epochs": 1}, synthetic=7, seed=2)
    images, labels, _ = training_set(config, tiny_data, torch.arange(10, 60))
    assert len(images) == 50 + 7 and seen["seed"] == 2
    rendered = seen["images"]
    picked = [int(i) for i in range(len(tiny_data.train_images))
              if any(torch.equal(tiny_data.train_images[i], r) for r in rendered)]
    assert picked and all(10 <= i < 60 for i in picked)  # never a validation image
    assert torch.equal(images[50:], 255 - rendered)
    run_training(config, tiny_data, tmp_path / "run", progress=False, log=_quiet)
    with pytest.raises(FashionCNNError, match="--synthetic"):
        TrainConfig(synthetic=-1)


def test_the_best_model_at_another_width(tiny_data, tmp_path: Path) -> None:
    narrow = dict(TINY, epochs=1, model="best", width=4)
    run_training(TrainConfig(**narrow), tiny_data, tmp_path / "a", progress=False, log=_quiet)
    net, meta = load_checkpoint(tmp_path / "a")
    assert meta["arch_kwargs"]["width"] == 4 and net.head.in_features == 8 * 4
    tuned = TrainConfig(**narrow, init=str(tmp_path / "a"))  # same width: fine-tunes
    run_training(tuned, tiny_data, tmp_path / "b", progress=False, log=_quiet)
    with pytest.raises(FashionCNNError, match="--width"):
        run_training(TrainConfig(**{**narrow, "width": 8}, init=str(tmp_path / "a")), tiny_data,
                     tmp_path / "c", progress=False, log=_quiet)
    with pytest.raises(FashionCNNError, match="--width"):
        TrainConfig(width=8)  # the seed CNN has no width


def test_test_time_shifts_travel_in_the_checkpoint(tiny_data, tmp_path: Path) -> None:
    config = TrainConfig(**dict(TINY, epochs=1, model="best", width=4, tta_shift=1))
    assert recipe_config("speedrun").arch_kwargs() == {"width": 16, "tta_shift": 1}
    metrics = run_training(config, tiny_data, tmp_path / "a", progress=False, log=_quiet)
    net, meta = load_checkpoint(tmp_path / "a")
    assert net.tta_shift == meta["arch_kwargs"]["tta_shift"] == 1 and not net.tta
    net.tta = True  # the run reports its accuracy with the 10 views too
    assert metrics["test_accuracy_tta"] == pytest.approx(loss_and_accuracy(
        net, tiny_data.test_images, tiny_data.test_labels)[1], abs=1e-9)
    with pytest.raises(FashionCNNError, match="--tta-shift"):
        TrainConfig(tta_shift=1)  # the seed CNN has no test-time views


@pytest.mark.parametrize("rank", [0, 1])
def test_the_first_process_converts_photos_before_the_others(rank, monkeypatch) -> None:
    import fashion_cnn.training.run as run

    order = []
    monkeypatch.setattr(run, "world", lambda: (rank, 2))
    monkeypatch.setattr(run.torch.distributed, "barrier", lambda: order.append("barrier"))
    assert run.first_process_first(lambda: order.append("make") or 7) == 7
    # the first process makes (and caches), then releases the others, who then read the cache
    assert order == (["make", "barrier"] if rank == 0 else ["barrier", "make"])


@pytest.mark.parametrize("native", [True, False])
def test_bf16_runs_only_where_the_cpu_has_it(tiny_data, tmp_path: Path, monkeypatch,
                                              native: bool) -> None:
    """--bf16 is emulated, and several times slower, on a CPU without native bfloat16: there
    the run trains in float32, says so, and records it; elsewhere it keeps the flag."""
    import fashion_cnn.training.steps as steps

    monkeypatch.setattr(steps, "native_bf16", lambda: native)
    config = TrainConfig(**dict(TINY, epochs=1), model="best", width=4, bf16=True,
                         channels_last=True)
    used = steps.for_this_cpu(config)
    assert used.bf16 == native and used.channels_last  # channels-last pays off in float32 too
    assert steps.for_this_cpu(replace(config, bf16=False)).bf16 is False
    said: list[str] = []
    metrics = run_training(config, tiny_data, tmp_path, progress=False, log=said.append)
    assert metrics["bf16_used"] == native and metrics["config"]["bf16"] is True
    assert any("no native bfloat16" in line for line in said) == (not native)


def test_throughput_counts_every_image_an_epoch_trained_on() -> None:
    """An epoch record from before records counted their images (the shipped default's) once
    counted Fashion-MNIST's 54,000 alone, where it trained on 132,544 with the photos."""
    from fashion_cnn.training.run import throughput

    new = [{"images": 132_544, "epoch_seconds": 1000.0, "images_per_second": 132.544}]
    old = [{"epoch_seconds": 1000.0, "images_per_second": 132.544}]
    oldest = [{"epoch_seconds": 1000.0}]
    assert throughput([new], 54_000, 1000.0) == throughput([old], 54_000, 1000.0) == \
        pytest.approx(132.544)
    assert throughput([oldest], 54_000, 1000.0) == pytest.approx(54.0)
