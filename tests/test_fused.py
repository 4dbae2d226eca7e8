"""The fused fast path against the plain PyTorch model: outputs, gradients, training, eval."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fashion_cnn.evaluate import predict_logits
from fashion_cnn.models import build_model
from fashion_cnn.seed_fast import kernels
from fashion_cnn.seed_fast.fused import FusedSeed, soft_targets
from fashion_cnn.seed_fast.step import thread_tuner
from fashion_cnn.training import TrainConfig, recipe_config, run_training

TINY = dict(epochs=2, batch_size=16, lr=0.05, val_fraction=0.25)
# The fused step's conv block: compiled numba kernels (the default) or torch operations.
CONV_BLOCKS = pytest.mark.parametrize("numba", [True, False], ids=["numba", "torch"])


def test_numba_kernels_are_available() -> None:
    """numba is a dependency: without it the default path would silently be the slower one."""
    assert kernels.available()


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


@CONV_BLOCKS
def test_fused_logits_equal_the_model(numba: bool) -> None:
    model, x = _model(), _images(64)
    with torch.no_grad():
        expected = model(x)
    fused = FusedSeed(model, numba=numba)
    assert fused.numba is numba
    torch.testing.assert_close(fused.logits(x), expected, rtol=1e-5, atol=1e-5)


@CONV_BLOCKS
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_fused_gradients_equal_autograd(label_smoothing: float, numba: bool) -> None:
    model, fused = _model(), None
    x, y = _images(32), torch.arange(32) % 10
    loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
    loss.backward()
    fused = FusedSeed(model, numba=numba)
    logits = fused.forward_backward(x, soft_targets(y, label_smoothing))
    torch.testing.assert_close(logits, model(x).detach(), rtol=1e-5, atol=1e-5)
    grads = _as_model_layout(fused.theta.grad)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


@CONV_BLOCKS
def test_bf16_gradients_are_close_to_float32(numba: bool) -> None:
    """bf16 training steps: fc1's products on bfloat16 copies (8-bit mantissas), so logits and
    gradients agree with float32 to about 1% (relative to each tensor's size); evaluation
    (`logits`) stays float32, bit for bit."""
    x, targets = _images(32), soft_targets(torch.arange(32) % 10)
    exact, half = FusedSeed(_model(), numba=numba), FusedSeed(_model(), numba=numba, bf16=True)
    logits = [f.forward_backward(x, targets) for f in (exact, half)]
    assert torch.equal(exact.logits(x), half.logits(x))
    assert (logits[1] - logits[0]).norm() / logits[0].norm() < 0.02
    assert not torch.equal(logits[0], logits[1])  # bf16 did run
    for name, grad in exact.g.items():
        error = (half.g[name] - grad).norm() / grad.norm()
        assert error < 0.03, (name, error.item())


@pytest.mark.parametrize("hyper", [dict(momentum=0.9), dict(momentum=0.0),
                                   dict(momentum=0.9, nesterov=True, weight_decay=5e-4)],
                         ids=["momentum", "plain", "nesterov-decay"])
def test_sgd_step_equals_the_optimizers_step(hyper: dict) -> None:
    """`sgd_step` is `optimizer.step()` for theta: the same weights and momentum buffer,
    bit for bit, under a learning-rate schedule, with no scheduler warning."""
    x, targets = _images(8), soft_targets(torch.arange(8) % 10)
    runs = []
    for direct in (False, True):
        fused = FusedSeed(_model())
        optimizer = torch.optim.SGD([fused.theta], lr=0.05, fused=True, **hyper)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=5)
        step_calls: list[int] = []
        optimizer.register_step_post_hook(lambda *_, calls=step_calls: calls.append(1))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(4):
                fused.forward_backward(x, targets)
                fused.sgd_step(optimizer) if direct else optimizer.step()
                scheduler.step()
        assert len(step_calls) == (1 if direct else 4)  # sgd_step: only its first step
        runs.append((fused.theta.detach().clone(), optimizer.state_dict()))
    (theta, state), (direct_theta, direct_state) = runs
    assert torch.equal(theta, direct_theta)
    assert not torch.equal(theta, FusedSeed(_model()).theta)  # it did train
    if hyper["momentum"]:
        assert torch.equal(state["state"][0]["momentum_buffer"],
                           direct_state["state"][0]["momentum_buffer"])
    assert state["param_groups"] == direct_state["param_groups"]


@CONV_BLOCKS
@pytest.mark.parametrize("hyper", [dict(momentum=0.9), dict(momentum=0.9, nesterov=True)],
                         ids=["folded", "nesterov"])
def test_train_step_equals_backward_and_optimizer_step(hyper: dict, numba: bool) -> None:
    """`train_step` against forward_backward + optimizer.step(): with plain momentum it adds
    fc1's weight gradient straight into the momentum buffer (so theta.grad's fc1 slice keeps
    the first step's gradient); the weights agree up to float rounding either way."""
    thetas, fc1_grads = [], []
    for fast in (False, True):
        fused = FusedSeed(_model(), numba=numba)
        optimizer = torch.optim.SGD([fused.theta], lr=0.05, fused=True, **hyper)
        fc1_grad = []
        for step in range(5):
            x, targets = _images(8, seed=step), soft_targets(torch.arange(8) % 10, 0.1)
            if fast:
                fused.train_step(x, targets, optimizer)
            else:
                fused.forward_backward(x, targets)
                optimizer.step()
            fc1_grad.append(fused.g["fc1_w"].clone())
        thetas.append(fused.theta.detach())
        fc1_grads.append(fc1_grad)
    torch.testing.assert_close(thetas[1], thetas[0], rtol=1e-5, atol=1e-6)
    folded = [torch.equal(g, fc1_grads[1][0]) for g in fc1_grads[1][1:]]
    assert all(folded) if not hyper.get("nesterov") else not any(folded)


@pytest.mark.parametrize("hyper", [dict(momentum=0.9), dict(momentum=0.9, nesterov=True)],
                         ids=["folded", "nesterov"])
def test_a_rebuilt_step_continues_bit_for_bit(hyper: dict) -> None:
    """Resuming: a FusedSeed made afresh from the written-back weights and the optimizer's and
    scheduler's saved states takes the same steps as the one that never stopped (the first
    step after a resume folds fc1's gradient into the loaded momentum buffer too)."""
    def step(fused: FusedSeed, optimizer: torch.optim.SGD, scheduler, k: int) -> None:
        fused.train_step(_images(8, seed=k), soft_targets(torch.arange(8) % 10), optimizer)
        scheduler.step()

    def make(model: torch.nn.Module) -> tuple:
        fused = FusedSeed(model)
        optimizer = torch.optim.SGD([fused.theta], lr=0.05, fused=True, **hyper)
        return fused, optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.05,
                                                                      total_steps=8)

    model = _model()
    running = make(model)
    for k in range(3):
        step(*running, k)
    running[0].write_back(model)
    resumed = make(model)
    resumed[1].load_state_dict(copy.deepcopy(running[1].state_dict()))  # as saved to disk
    resumed[2].load_state_dict(copy.deepcopy(running[2].state_dict()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scheduler warning after the resume
        for k in range(3, 6):
            step(*running, k)
            step(*resumed, k)
    assert torch.equal(running[0].theta, resumed[0].theta)


def test_fused_rejects_other_architectures() -> None:
    with pytest.raises(TypeError):
        FusedSeed(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("option", [{"fused": False}, {"fused": False, "channels_last": True},
                                    {"numba": False}])
def test_training_paths_agree(tiny_data, tmp_path: Path, option: dict) -> None:
    """Same config, fused (numba kernels) vs plain (and channels-last) path, and vs the fused
    step's torch operations: same weights within float tolerance after 2 epochs, same
    accuracy."""
    quiet = dict(progress=False, log=lambda _: None)
    fast = run_training(TrainConfig(**TINY), tiny_data, tmp_path / "fused", **quiet)
    plain = run_training(TrainConfig(**TINY, **option), tiny_data, tmp_path / "plain", **quiet)
    a = torch.load(tmp_path / "fused" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "plain" / "model.pt", weights_only=True)["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4, msg=key)
    assert abs(fast["test_accuracy"] - plain["test_accuracy"]) <= 1 / 256
    assert fast["config"]["fused"] and fast["config"]["numba"]
    assert {k: plain["config"][k] for k in option} == option


def test_bf16_training_follows_float32(tiny_data, tmp_path: Path, monkeypatch) -> None:
    """The fused step with --bf16 against float32, 2 epochs: weights within 10% (relative to
    each tensor's size; ~2% but for fc1's small bias), test accuracy within 2 of 256 images.
    bf16 runs here whatever the CPU (a CPU without native bfloat16 would train in float32)."""
    import fashion_cnn.training.steps as steps

    monkeypatch.setattr(steps, "native_bf16", lambda: True)
    quiet = dict(progress=False, log=lambda _: None)
    runs = [run_training(TrainConfig(**TINY, bf16=bf16), tiny_data, tmp_path / str(bf16), **quiet)
            for bf16 in (False, True)]
    a, b = (torch.load(tmp_path / str(bf16) / "model.pt", weights_only=True)["state_dict"]
            for bf16 in (False, True))
    for key in a:
        assert (a[key] - b[key]).norm() / a[key].norm() < 0.1, key
    assert not torch.equal(a["fc1.weight"], b["fc1.weight"])  # bf16 did run
    assert abs(runs[0]["test_accuracy"] - runs[1]["test_accuracy"]) <= 2 / 256
    assert runs[1]["config"]["bf16"] and runs[1]["config"]["fused"]


def test_kernels_pick_the_first_maximum_of_a_window_and_propagate_nan() -> None:
    """Ties (flat image areas) go to the window's first pixel, as torch's max-pool; a NaN wins
    its window, so a diverged run shows NaN rather than a clipped value."""
    x = torch.zeros(1, 28, 28, dtype=torch.uint8)
    lut, w, b = torch.arange(256.0), torch.ones(9, 32), torch.zeros(32)
    h0, arg = kernels.conv_block_forward(x, lut, w, b)  # all zero: every window a tie
    assert torch.equal(arg, torch.zeros_like(arg)) and torch.equal(h0, torch.zeros_like(h0))
    x[0, 3, 3] = 2  # of window (0, 0)'s four conv outputs, only (1, 1) (q = 3) sees it
    h0, arg = kernels.conv_block_forward(x, lut, w, b)
    assert arg[0, 0].tolist() == [3] * 32 and h0[0, :32].tolist() == [2.0] * 32
    h0, arg = kernels.conv_block_forward(x, lut, -w, b)  # now the other three tie at 0
    assert arg[0, 0].tolist() == [0] * 32
    lut[7] = float("nan")
    x[0, 5, 5] = 7  # seen by pooled windows (1..2, 1..2), not by window (0, 0)
    h0 = kernels.conv_block_forward(x, lut, w, b)[0].view(169, 32)
    assert h0[1 * 13 + 1].isnan().all() and h0[2 * 13 + 2].isnan().all()
    assert not h0[0].isnan().any()


def test_kernels_give_the_same_bits_on_any_number_of_threads() -> None:
    """Batches of 16 or more run on torch's own threads, in shares claimed by whichever thread
    is free (here 4 shares of 8 images and one of 5), smaller ones on the calling thread."""
    if "parallel backend: OpenMP" in torch.__config__.parallel_info():
        assert kernels._openmp() is not None  # else the parallel path would silently be off
    g = torch.Generator().manual_seed(0)
    x, lut = _images(37), torch.linspace(-1, 2, 256)
    w, b, dh0 = torch.randn(9, 32, generator=g), torch.randn(32, generator=g), None

    def block(threads: int, n: int) -> list[torch.Tensor]:
        torch.set_num_threads(threads)
        h0, arg = kernels.conv_block_forward(x[:n], lut, w, b)
        dw, db = torch.empty(9, 32), torch.empty(32)
        kernels.conv_block_backward(x[:n], lut, dh0[:n], h0, arg, dw, db)
        return [h0, arg, dw, db]

    dh0 = torch.randn(37, 169 * 32, generator=g)
    before = torch.get_num_threads()
    try:
        results = [block(threads, 37) for threads in (1, 2, 3)]
        small = [block(threads, 15) for threads in (1, 2)]
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        for a, b_ in zip(results[0], other, strict=True):
            assert torch.equal(a, b_)
    for a, b_ in zip(*small, strict=True):
        assert torch.equal(a, b_)
    assert torch.equal(small[0][0], results[0][0][:15])  # each image alone, as in any batch


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
def test_training_steps_give_the_same_bits_on_one_thread_and_on_all(bf16: bool) -> None:
    """The automatic thread count switches only between counts that train alike. On AVX-512
    CPUs MKL's float32 fc1 products (the forward's long sum, and addmm_ adding into the
    momentum buffer) gave other bits on 1 thread than on 2, so the tuner stood down there
    (docs/design.md, the seed CNN's fast CPU path); the step now avoids both."""
    config = recipe_config("faithful", bf16=bf16)
    model, x, y = _model(), _images(48), torch.arange(48) % 10
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the counts of a 2-core machine: 2 and 1
        tuner = thread_tuner(config, model, x, y)
    finally:
        torch.set_num_threads(before)
    assert tuner is not None and 1 in tuner.choices


def test_predict_logits_fused_and_plain_agree() -> None:
    model, x = _model(), _images(300)
    torch.testing.assert_close(predict_logits(model, x, batch_size=128),
                               predict_logits(model, x, fused=False), rtol=1e-5, atol=1e-5)


def test_configs_saved_before_the_fused_step_resume_on_the_plain_path() -> None:
    assert TrainConfig.from_dict({"epochs": 2}).fused is False
    assert TrainConfig.from_dict({"epochs": 2, "fused": True}).fused is True
    assert TrainConfig.from_dict({"epochs": 2, "fused": True}).numba is False  # saved before
    assert TrainConfig().numba is True
