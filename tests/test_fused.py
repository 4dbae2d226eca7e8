"""The fused fast path against the plain PyTorch model: outputs, gradients, training, eval."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fashion_cnn.evaluate import predict_logits
from fashion_cnn.fused import FusedSeed, soft_targets
from fashion_cnn.models import build_model
from fashion_cnn.train import TrainConfig, run_training

TINY = dict(epochs=2, batch_size=16, lr=0.05, val_fraction=0.25)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    """uint8 [n, 28, 28] with flat blocks (equal values: ties inside pooling windows) and
    noise, so the tie-breaking of the max-pool's argmax is exercised."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
    images[:, 4:16, 4:20] = 200  # one flat grey area
    images[:, 20:] = 0  # flat black background
    return images


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("seed")
    with torch.no_grad():  # non-zero biases, so their placement is tested too
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.1, 0.1)
    return model


def _as_model_layout(flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """A flat vector in the fused layout -> the model's parameters (names and shapes)."""
    carrier = _model()
    fused = FusedSeed(carrier)
    fused.theta.detach().copy_(flat)
    fused.write_back(carrier)
    return {n: p.detach() for n, p in carrier.named_parameters()}


def test_layout_round_trip() -> None:
    model, other = _model(0), _model(1)
    FusedSeed(model).write_back(other)
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fused_logits_equal_the_model() -> None:
    model, x = _model(), _images(64)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(FusedSeed(model).logits(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_fused_gradients_equal_autograd(label_smoothing: float) -> None:
    model, fused = _model(), None
    x, y = _images(32), torch.arange(32) % 10
    loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
    loss.backward()
    fused = FusedSeed(model)
    logits = fused.forward_backward(x, soft_targets(y, label_smoothing))
    torch.testing.assert_close(logits, model(x).detach(), rtol=1e-5, atol=1e-5)
    grads = _as_model_layout(fused.theta.grad)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_fused_rejects_other_architectures() -> None:
    with pytest.raises(TypeError):
        FusedSeed(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("option", [{"fused": False}, {"fused": False, "channels_last": True}])
def test_training_paths_agree(tiny_data, tmp_path: Path, option: dict) -> None:
    """Same config, fused vs plain (and channels-last) path: same weights within float
    tolerance after 2 epochs, same accuracy."""
    quiet = dict(progress=False, log=lambda _: None)
    fast = run_training(TrainConfig(**TINY), tiny_data, tmp_path / "fused", **quiet)
    plain = run_training(TrainConfig(**TINY, **option), tiny_data, tmp_path / "plain", **quiet)
    a = torch.load(tmp_path / "fused" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "plain" / "model.pt", weights_only=True)["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4, msg=key)
    assert abs(fast["test_accuracy"] - plain["test_accuracy"]) <= 1 / 256
    assert fast["config"]["fused"] and not plain["config"]["fused"]


def test_predict_logits_fused_and_plain_agree() -> None:
    model, x = _model(), _images(300)
    torch.testing.assert_close(predict_logits(model, x, batch_size=128),
                               predict_logits(model, x, fused=False), rtol=1e-5, atol=1e-5)


def test_configs_saved_before_the_fused_step_resume_on_the_plain_path() -> None:
    assert TrainConfig.from_dict({"epochs": 2}).fused is False
    assert TrainConfig.from_dict({"epochs": 2, "fused": True}).fused is True
