"""The seed CNN's hand-fused fast path: one training step in ~20 large tensor operations.

Same function as `models.SeedCNN` and, with `torch.optim.SGD` on top, the same update; what
differs is how the work is laid out for a 2-core CPU at batch 32, where autograd's ~60 small
operations per step and NCHW max-pooling cost more than the arithmetic:

- the 3x3 convolution is one matrix product of the [9, B*676] patch matrix (every 3x3 window,
  one row per window pixel) with the [9, 32] kernel, giving channels-last [B, 26, 26, 32]
  activations, where max-pooling is much faster than on NCHW;
- the conv bias is added after the pool and the ReLU follows the pool (max commutes with both);
- fc1's weight is stored transposed with its inputs in HWC order, how the channels-last pooled
  activations lie in memory, so flattening is free and every product reads memory in order;
- the backward pass is written out (softmax - target, ReLU masks, the pooling's recorded
  argmax), each gradient lands straight in its slice of one flat gradient vector, and the
  optimizer updates all parameters with one fused SGD kernel, called directly (`sgd_step`);
  with plain momentum, fc1's weight gradient goes straight into the momentum buffer
  (`train_step`);
- with `numba=True` (the default where numba is installed) the whole conv -> pool -> bias ->
  ReLU block, forward and backward, is two compiled kernels (kernels.py) that never write the
  [B, 26, 26, 32] activations to memory, and the head's backward a third; otherwise they are
  the torch operations above;
- with `bf16=True`, training steps run fc1's three products in bfloat16 (`_head`).
- fc1's float32 forward product is summed in 8 fixed parts (`same_on_any_threads_addmm`), so
  a step gives the same bits on any number of threads, which the automatic thread count needs.

`tests/test_fused.py` checks outputs, gradients and a short training run against the plain path;
`benchmarks/train_seed.py` and `benchmarks/train_profile.py` measure the effect.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..models import SeedCNN
from . import kernels

# (name, shape) of each parameter's slice of the flat vector, in the fused layout.
LAYOUT: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("conv_w", (9, 32)),  # [window pixel ky*3+kx, channel]
    ("conv_b", (32,)),
    ("fc1_w", (13 * 13 * 32, 100)),  # [HWC input, output]
    ("fc1_b", (100,)),
    ("fc2_w", (100, 10)),  # [input, output]
    ("fc2_b", (10,)),
)


NOT_FC1 = tuple(name for name, _ in LAYOUT if name != "fc1_w")  # 1,430 numbers in all


def _views(flat: torch.Tensor) -> dict[str, torch.Tensor]:
    out, offset = {}, 0
    for name, shape in LAYOUT:
        size = torch.Size(shape).numel()
        out[name] = flat[offset:offset + size].view(shape)
        offset += size
    return out


def _patches(x: torch.Tensor) -> torch.Tensor:
    """[B, 28, 28] float -> [9, B*676]: row ky*3+kx holds that pixel of every 3x3 window."""
    windows = x.unfold(1, 3, 1).unfold(2, 3, 1)  # [B, 26, 26, 3, 3] view
    return windows.permute(3, 4, 0, 1, 2).reshape(9, -1)


class FusedSeed:
    """The parameters of a `SeedCNN` in one flat float32 vector `theta` (with `theta.grad`),
    plus the fused forward pass and training step over them.

    Train with any torch optimizer over `[fused.theta]`; with fused SGD, `sgd_step(optimizer)`
    is its step at less cost;
    `write_back(model)` copies the weights into the model, e.g. at the end of an epoch.
    """

    def __init__(self, model: SeedCNN, numba: bool = True, bf16: bool = False):
        if not isinstance(model, SeedCNN):
            raise TypeError("the fused path implements the seed CNN only")
        self.normalize = model.normalize
        self.numba = numba and kernels.available()
        self.bf16 = bf16  # training steps: fc1's three products in bfloat16 (see `_head`)
        if self.numba:  # the kernels read uint8 pixels through the model's normalisation
            self.lut = self.normalize(torch.arange(256, dtype=torch.uint8).view(1, 16, 16))
            self.lut = self.lut.reshape(256).contiguous()  # [256] float32
            kernels.warm_up()
        size = sum(torch.Size(shape).numel() for _, shape in LAYOUT)
        self.theta = torch.zeros(size, requires_grad=True)  # a leaf, so optimizers accept it
        self.theta.grad = torch.zeros(size)
        self.stepped = False  # sgd_step: has the optimizer's own step() run once
        self.p, self.g = _views(self.theta.detach()), _views(self.theta.grad)
        self.load_from(model)

    @torch.no_grad()
    def load_from(self, model: SeedCNN) -> None:
        p = self.p
        p["conv_w"].copy_(model.conv.weight.view(32, 9).t())
        p["conv_b"].copy_(model.conv.bias)
        # fc1 input index: c*169 + (h*13 + w) in the model (CHW), (h*13 + w)*32 + c here (HWC)
        p["fc1_w"].copy_(model.fc1.weight.view(100, 32, 169).permute(2, 1, 0).reshape(-1, 100))
        p["fc1_b"].copy_(model.fc1.bias)
        p["fc2_w"].copy_(model.fc2.weight.t())
        p["fc2_b"].copy_(model.fc2.bias)

    @torch.no_grad()
    def write_back(self, model: SeedCNN) -> None:
        p = self.p
        model.conv.weight.copy_(p["conv_w"].t().reshape(32, 1, 3, 3))
        model.conv.bias.copy_(p["conv_b"])
        model.fc1.weight.copy_(p["fc1_w"].view(169, 32, 100).permute(2, 1, 0).reshape(100, -1))
        model.fc1.bias.copy_(p["fc1_b"])
        model.fc2.weight.copy_(p["fc2_w"].t())
        model.fc2.bias.copy_(p["fc2_b"])

    def forward(self, x: torch.Tensor, *, record: bool = False):
        """uint8 images [B, 28, 28] -> (logits [B, 10], what `backward` needs)."""
        p, n = self.p, len(x)
        if self.numba:  # h0 [B, 5408] HWC, argmax [B, 169, 32]: which pixel of each window won
            h0, argmax = kernels.conv_block_forward(x, self.lut, p["conv_w"], p["conv_b"])
            return self._head(h0, x, argmax, record)
        patches = _patches(self.normalize(x)[:, 0])  # [9, B*676]
        conv = torch.mm(patches.t(), p["conv_w"])  # [B*676, 32] = channels-last [B, 26, 26, 32]
        conv = conv.view(n, 26, 26, 32).permute(0, 3, 1, 2)  # NCHW view of that memory
        if record:
            pooled, argmax = F.max_pool2d_with_indices(conv, 2)  # channels-last [B, 32, 13, 13]
        else:
            pooled, argmax = F.max_pool2d(conv, 2), None
        h0 = pooled.permute(0, 2, 3, 1).view(n * 169, 32)  # HWC rows; fails loudly if copied
        h0 = h0.add_(p["conv_b"]).relu_().view(n, -1)  # [B, 5408]
        return self._head(h0, (patches, conv), argmax, record)

    def _head(self, h0: torch.Tensor, conv_saved, argmax, record: bool):
        """fc1 -> ReLU -> fc2 on the conv block's output h0 [B, 5408].

        With `bf16`, a training step (`record`) runs fc1's products (this one, and its two
        gradients in `backward`) on bfloat16 copies of h0 and the weights, with float32
        accumulation and float32 weights, gradients and update, as autocast would; it halves
        their time here (AVX512-BF16). Evaluation stays float32."""
        p = self.p
        fc1 = (h0, p["fc1_w"])  # the operands of fc1's products: [B, 5408], [5408, 100]
        if self.bf16 and record:
            fc1 = (h0.bfloat16(), p["fc1_w"].bfloat16())
            h1 = torch.addmm(p["fc1_b"].bfloat16(), *fc1).float().relu_()  # [B, 100]
        else:
            h1 = same_on_any_threads_addmm(p["fc1_b"], *fc1).relu_()
        logits = torch.addmm(p["fc2_b"], h1, p["fc2_w"])  # [B, 10]
        return logits, (conv_saved, argmax, h0, h1, fc1)

    def momentum_views(self, optimizer: torch.optim.SGD) -> dict[str, torch.Tensor] | None:
        """The optimizer's momentum buffer as per-parameter views, if the SGD is plain momentum
        (no Nesterov, weight decay or dampening: the faithful recipe) and the buffer exists;
        else None. `backward(..., fc1_into=views["fc1_w"])` + `sgd_step(folded=views)` then
        add fc1's weight gradient straight into the buffer (see `train_step`)."""
        group, state = optimizer.param_groups[0], optimizer.state[self.theta]
        if not (self.bypasses_step(optimizer) and group["momentum"] > 0
                and not group["nesterov"] and not group["maximize"]
                and group["weight_decay"] == 0 and group["dampening"] == 0):
            return None
        return _views(state["momentum_buffer"])

    def bypasses_step(self, optimizer: torch.optim.SGD) -> bool:
        """Whether `sgd_step` may skip `optimizer.step()`: only for the fused SGD, and only
        once its first call has created the momentum buffer and told schedulers that the
        optimizer stepped, in this process or (buffer and scheduler loaded) the run resumed;
        a resumed run then steps exactly as the uninterrupted one."""
        group, state = optimizer.param_groups[0], optimizer.state[self.theta]
        has_buffer = "momentum_buffer" in state
        return group["fused"] and (has_buffer if group["momentum"] else self.stepped)

    @torch.no_grad()
    def sgd_step(self, optimizer: torch.optim.SGD,
                 folded: dict[str, torch.Tensor] | None = None) -> None:
        """`optimizer.step()` for `theta`: the same fused SGD kernel on the optimizer's own
        hyperparameters and momentum buffer (so schedulers, state dicts and resuming are
        unchanged), without the Python that `step()` spends around it per call, a large
        share of a batch-32 step here. `folded`: the
        buffer's views (`momentum_views`), fc1's slice already holding its gradient."""
        if not self.bypasses_step(optimizer):
            optimizer.step()  # the first creates the buffer and tells schedulers it stepped
            self.stepped = True
            return
        group, state = optimizer.param_groups[0], optimizer.state[self.theta]
        params, grads = [self.theta], [self.theta.grad]
        buffers = [state["momentum_buffer"]] if group["momentum"] else []  # none without momentum
        if folded is not None:  # the kernel updates the rest; fc1 takes its buffer's step
            params, grads = [self.p[k] for k in NOT_FC1], [self.g[k] for k in NOT_FC1]
            buffers = [folded[k] for k in NOT_FC1]
            self.p["fc1_w"].add_(folded["fc1_w"], alpha=-group["lr"])
        torch._fused_sgd_(params, grads, buffers,
                          weight_decay=group["weight_decay"], momentum=group["momentum"],
                          lr=group["lr"], dampening=group["dampening"],
                          nesterov=group["nesterov"], maximize=group["maximize"],
                          is_first_step=False)

    @torch.no_grad()
    def train_step(self, x: torch.Tensor, targets: torch.Tensor, optimizer: torch.optim.SGD,
                   scale: float | None = None,
                   reduce: Callable[[list[torch.Tensor]], None] | None = None) -> torch.Tensor:
        """One training step on images x against target distributions [B, 10]: forward,
        backward, `reduce([theta.grad])` if given (a multi-process run's all-reduce), then the
        update of `sgd_step`; returns the logits [B, 10].

        With plain momentum SGD and no `reduce`, fc1's weight gradient [5408, 100] never lands
        in `theta.grad`: the product that computes it adds it straight into the momentum
        buffer (buffer = momentum * buffer + gradient), and fc1's weights take the buffer's
        step: theta.grad's fc1 slice is neither written nor read. Same update up to float
        rounding (tests/test_fused.py)."""
        folded = self.momentum_views(optimizer) if reduce is None else None
        logits, saved = self.forward(x, record=True)
        self.backward(logits, targets, saved, scale,
                      fc1_into=None if folded is None else folded["fc1_w"],
                      beta=optimizer.param_groups[0]["momentum"])
        if reduce is not None:
            reduce([self.theta.grad])
        self.sgd_step(optimizer, folded)
        return logits

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Inference: uint8 images [B, 28, 28] -> logits [B, 10] (same as the model's)."""
        return self.forward(x)[0]

    @torch.no_grad()
    def forward_backward(self, x: torch.Tensor, targets: torch.Tensor,
                         scale: float | None = None) -> torch.Tensor:
        """Logits [B, 10] for images x, and the gradient of the mean cross-entropy against
        target distributions [B, 10] (one-hot, or label-smoothed) written into `theta.grad`.
        `scale` replaces the 1/B of the mean (a share of a batch split across processes)."""
        logits, saved = self.forward(x, record=True)
        self.backward(logits, targets, saved, scale)
        return logits

    @torch.no_grad()
    def backward(self, logits: torch.Tensor, targets: torch.Tensor, saved: tuple,
                 scale: float | None = None, fc1_into: torch.Tensor | None = None,
                 beta: float = 0.0) -> None:
        """Gradients of the mean cross-entropy into `theta.grad` (after `forward(record=True)`);
        fc1's weight gradient instead goes to `fc1_into` [5408, 100] as
        fc1_into = beta * fc1_into + gradient, if given (see `train_step`)."""
        g, p, n = self.g, self.p, len(logits)
        conv_saved, argmax, h0, h1, (fc1_in, fc1_w) = saved
        scale = scale or 1 / n  # of the mean's sum
        if self.numba:  # the eight small operations below, as one compiled call
            dh1 = kernels.head_backward(logits, targets, scale, h1, p["fc2_w"], g["fc2_w"],
                                        g["fc2_b"], g["fc1_b"])
        else:
            d = logits.softmax(1).sub_(targets).mul_(scale)  # dLoss/dlogits [B, 10]
            torch.mm(h1.t(), d, out=g["fc2_w"])
            torch.sum(d, 0, out=g["fc2_b"])
            # threshold_backward(grad, out, 0) = grad where out > 0, else 0: ReLU's backward
            dh1 = torch.ops.aten.threshold_backward(torch.mm(d, p["fc2_w"].t()), h1, 0)
            torch.sum(dh1, 0, out=g["fc1_b"])
        dh1 = dh1.to(fc1_in.dtype)  # bfloat16 in bf16 training (see `_head`)
        grad = torch.mm(fc1_in.t(), dh1)  # [5408, 100]
        if fc1_into is None:
            g["fc1_w"].copy_(grad)
        else:  # fc1_into = grad + beta * fc1_into; not addmm_(beta=...), whose bits depend on
            # the thread count on some CPUs (see `same_on_any_threads_addmm`)
            torch.add(grad, fc1_into, alpha=beta, out=fc1_into)
        dh0 = torch.mm(dh1, fc1_w.t()).float()  # [B, 5408]
        if self.numba:  # conv_saved: the uint8 images
            kernels.conv_block_backward(conv_saved, self.lut, dh0, h0, argmax, g["conv_w"],
                                        g["conv_b"])
            return
        patches, conv = conv_saved
        dh0 = torch.ops.aten.threshold_backward(dh0, h0, 0)
        torch.sum(dh0.view(-1, 32), 0, out=g["conv_b"])
        dpooled = dh0.view(n, 13, 13, 32).permute(0, 3, 1, 2)
        dconv = torch.ops.aten.max_pool2d_with_indices_backward(
            dpooled, conv, [2, 2], [2, 2], [0, 0], [1, 1], False, argmax)  # channels-last
        torch.mm(patches, dconv.permute(0, 2, 3, 1).reshape(-1, 32), out=g["conv_w"])


FC1_PARTS = 8  # fc1's forward sum of 5,408 terms, in 8 parts of 676


def same_on_any_threads_addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                              parts: int = FC1_PARTS) -> torch.Tensor:
    """bias + a @ b for a [N, K] and b [K, M], the same bits on any number of threads.

    On some CPUs (AVX-512) MKL splits one long sum of a product between threads, so its order,
    and the result's last bits, depend on the thread count; then the automatic thread count
    (threads.py) finds no two counts that train alike and stands down, and training slows
    several-fold when other programs want a core. Here the sum is cut into `parts` products
    short enough to stay whole (one batched product), added in a fixed order."""
    n, k = a.shape
    pieces = torch.bmm(a.view(n, parts, k // parts).transpose(0, 1),
                       b.view(parts, k // parts, -1))  # [parts, N, M]
    return pieces.sum(0).add_(bias)


def soft_targets(labels: torch.Tensor, label_smoothing: float = 0.0,
                 n_classes: int = 10) -> torch.Tensor:
    """Class labels [N] -> target distributions [N, n_classes] as F.cross_entropy smooths them."""
    one_hot = F.one_hot(labels, n_classes).float()
    return one_hot * (1 - label_smoothing) + label_smoothing / n_classes
