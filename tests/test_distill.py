"""Distillation: a teacher's probabilities on the training images mixed into the targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fashion_cnn.errors import FashionCNNError
from fashion_cnn.models import load_checkpoint
from fashion_cnn.training import TrainConfig, run_training
from fashion_cnn.training.distill import teacher_targets

TINY = dict(epochs=1, batch_size=16, lr=0.05, val_fraction=0.25, model="best", width=4, seed=3)


def _quiet(_: str) -> None:
    pass


@pytest.fixture
def teacher(tiny_data, tmp_path: Path) -> Path:
    """A tiny best-model run on TINY's validation split; its checkpoint's path."""
    run_training(TrainConfig(**TINY), tiny_data, tmp_path / "teacher", progress=False,
                 log=_quiet)
    return tmp_path / "teacher" / "model.pt"


def test_targets_mix_the_smoothed_label_and_the_mirrored_teacher(tiny_data, teacher) -> None:
    images, labels = tiny_data.train_images[:40], tiny_data.train_labels[:40]
    net, _ = load_checkpoint(teacher)
    with torch.no_grad():
        expected = ((net(images) + net(images.flip(-1))) / 2).softmax(1)  # logits averaged
    for weight in (0.0, 0.3, 1.0):
        config = TrainConfig(**TINY, teacher=str(teacher), distill=weight, label_smoothing=0.1)
        targets, info = teacher_targets(config, images, labels, progress=False)
        label = torch.nn.functional.one_hot(labels, 10) * 0.9 + 0.01
        assert torch.allclose(targets, (1 - weight) * label + weight * expected, atol=1e-5)
        assert torch.allclose(targets.sum(1), torch.ones(40), atol=1e-5)
    agreement = (expected.argmax(1) == labels).float().mean().item()
    assert info["agreement"] == pytest.approx(agreement) and len(info["sha256"]) == 64


def test_the_student_learns_the_teachers_answers(tiny_data, teacher, tmp_path: Path) -> None:
    # A teacher that says "Bag" (8) to everything: a student trained only on its answers
    # (distill 1) says Bag, so the targets, not the labels, are what it trained towards.
    net, meta = load_checkpoint(teacher)
    with torch.no_grad():
        net.head.bias.copy_(torch.full((10,), -50.0).index_fill(0, torch.tensor([8]), 50.0))
    payload = torch.load(teacher, weights_only=True)
    payload["state_dict"] = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save(payload, tmp_path / "bag.pt")
    config = TrainConfig(**{**TINY, "epochs": 3, "lr": 0.1}, teacher=str(tmp_path / "bag.pt"),
                         distill=1.0)
    metrics = run_training(config, tiny_data, tmp_path / "student", progress=False, log=_quiet)
    student, _ = load_checkpoint(tmp_path / "student")
    with torch.no_grad():
        answers = student(tiny_data.test_images).argmax(1)
    assert (answers == 8).float().mean() > 0.9
    assert metrics["teacher"]["agreement"] == pytest.approx(
        (tiny_data.train_labels == 8).float().mean().item(), abs=0.1)
    saved = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert saved["teacher"]["path"] == str(tmp_path / "bag.pt")


def test_a_teacher_that_saw_the_validation_images_is_refused(tiny_data, teacher,
                                                             tmp_path: Path) -> None:
    other_split = TrainConfig(**{**TINY, "seed": 4}, teacher=str(teacher))
    with pytest.raises(FashionCNNError, match="--split-seed 3"):
        run_training(other_split, tiny_data, tmp_path / "a", progress=False, log=_quiet)
    same_split = TrainConfig(**{**TINY, "seed": 4}, split_seed=3, teacher=str(teacher))
    run_training(same_split, tiny_data, tmp_path / "b", progress=False, log=_quiet)
    payload = torch.load(teacher, weights_only=True)
    del payload["config"]
    torch.save(payload, tmp_path / "anonymous.pt")
    with pytest.raises(FashionCNNError, match="records no training config"):
        run_training(TrainConfig(**TINY, teacher=str(tmp_path / "anonymous.pt")), tiny_data,
                     tmp_path / "c", progress=False, log=_quiet)


def test_bad_distillation_options_are_clear_errors() -> None:
    with pytest.raises(FashionCNNError, match="--teacher is for the best model"):
        TrainConfig(teacher="x.pt")  # the seed CNN
    with pytest.raises(FashionCNNError, match="--teacher is for the best model"):
        TrainConfig(model="best", teacher="x.pt", photos=True)
    with pytest.raises(FashionCNNError, match=r"--distill must be in \[0, 1\]"):
        TrainConfig(model="best", distill=1.5)


def test_a_resumed_run_reads_the_teachers_answers(tiny_data, teacher, tmp_path: Path,
                                                  monkeypatch) -> None:
    from fashion_cnn.training import distill

    images, labels = tiny_data.train_images[:40], tiny_data.train_labels[:40]
    config = TrainConfig(**TINY, teacher=str(teacher), distill=0.5)
    first, info = teacher_targets(config, images, labels, progress=False, cache_dir=tmp_path)

    def asked_again(*args, **kwargs):
        raise AssertionError("the teacher was asked again")

    monkeypatch.setattr(distill, "predict_logits", asked_again)
    again, info_again = teacher_targets(config, images, labels, progress=False,
                                        cache_dir=tmp_path)
    assert torch.equal(first, again) and info_again == info
    payload = torch.load(teacher, weights_only=True)  # another teacher: other bytes
    payload["metrics"] = {**payload.get("metrics", {}), "copied": 1.0}
    torch.save(payload, tmp_path / "other.pt")
    other = TrainConfig(**TINY, teacher=str(tmp_path / "other.pt"), distill=0.5)
    with pytest.raises(AssertionError, match="asked again"):
        teacher_targets(other, images, labels, progress=False, cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="asked again"):  # other training images
        teacher_targets(config, images.flip(-1), labels, progress=False, cache_dir=tmp_path)
