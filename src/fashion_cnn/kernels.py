"""Compiled (numba) kernels for the seed CNN's first block: conv 3x3 -> max-pool 2x2 -> bias ->
ReLU.

The fused step (fused.py) runs everything else as large tensor operations; this block is where
torch needs five memory passes over [B, 26, 26, 32] activations (patch matrix, convolution,
pooling with its argmax, pooling backward, weight-gradient product), 2.8 MB each at batch 32,
more than a core's L2 cache. These kernels never build that array: for each 2x2 pooling window
they compute the four convolution outputs of all 32 channels in registers, keep the maximum and
which of the four it was (one byte), and write only the pooled [B, 13, 13, 32] result; the
backward pass sends each pooled gradient back to the pixel that won and accumulates the 3x3
kernel's gradient straight from the input pixels.

Both loop over the 32 channels innermost, which the compiler turns into SIMD instructions; they
run on one thread (numba's own thread pool fights torch's for the 2 cores of a laptop).
Compiled once per machine (cached on disk; about 1 s the first time). `available()` says whether
numba is installed; without it the fused step uses torch operations, slower but the same maths.
"""

from __future__ import annotations

import numpy as np
import torch

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a broken env working
    njit = None

C = 32  # channels of the conv; the SIMD loop is over them
POOLED = 13  # 26x26 conv output pooled 2x2 -> 13x13


def available() -> bool:
    """Whether the compiled kernels can run here (numba installed)."""
    return njit is not None


def _forward(x, lut, w, b, h0, arg):  # pragma: no cover - compiled
    """x uint8 [B, 28, 28]; lut float32 [256] (the model's pixel normalisation); w [9, 32]
    (row ky*3+kx); b [32] -> h0 float32 [B, 169, 32] = relu(maxpool(conv(x)) + b), HWC, and
    arg uint8 [B, 169, 32]: which of the window's four pixels (dy*2+dx) won, first on ties."""
    best = np.empty(C, np.float32)
    which = np.empty(C, np.uint8)
    for n in range(x.shape[0]):
        for i in range(POOLED):
            for j in range(POOLED):
                for q in range(4):
                    r, s = 2 * i + q // 2, 2 * j + q % 2  # top-left pixel of the 3x3 window
                    x0, x1, x2 = lut[x[n, r, s]], lut[x[n, r, s + 1]], lut[x[n, r, s + 2]]
                    x3, x4, x5 = (lut[x[n, r + 1, s]], lut[x[n, r + 1, s + 1]],
                                  lut[x[n, r + 1, s + 2]])
                    x6, x7, x8 = (lut[x[n, r + 2, s]], lut[x[n, r + 2, s + 1]],
                                  lut[x[n, r + 2, s + 2]])
                    for c in range(C):
                        a = (x0 * w[0, c] + x1 * w[1, c] + x2 * w[2, c] + x3 * w[3, c]
                             + x4 * w[4, c] + x5 * w[5, c] + x6 * w[6, c] + x7 * w[7, c]
                             + x8 * w[8, c])
                        won = (q == 0) | (a > best[c]) | (a != a)  # as torch: first max, NaN wins
                        best[c] = a if won else best[c]
                        which[c] = q if won else which[c]
                p = i * POOLED + j
                for c in range(C):
                    h = best[c] + b[c]
                    h0[n, p, c] = np.float32(0) if h <= 0 else h  # ReLU; NaN stays NaN
                    arg[n, p, c] = which[c]


def _backward(x, lut, dh0, h0, arg, dw, db):  # pragma: no cover - compiled
    """Gradients of the block: dh0 float32 [B, 169, 32] (loss gradient at the block's output),
    with the forward's h0 and arg -> dw float64 [9, 32] and db float64 [32] (summed over the
    batch; float64 so summing 5,408 windows x 32 images loses nothing)."""
    g = np.empty(C, np.float32)
    dw_n = np.empty((9, C), np.float32)  # one image's share, added to dw in float64
    for n in range(x.shape[0]):
        dw_n[:] = 0
        for i in range(POOLED):
            for j in range(POOLED):
                p = i * POOLED + j
                for c in range(C):
                    g[c] = dh0[n, p, c] if h0[n, p, c] > 0 else np.float32(0)  # ReLU's mask
                    db[c] += g[c]
                for q in range(4):
                    r, s = 2 * i + q // 2, 2 * j + q % 2
                    x0, x1, x2 = lut[x[n, r, s]], lut[x[n, r, s + 1]], lut[x[n, r, s + 2]]
                    x3, x4, x5 = (lut[x[n, r + 1, s]], lut[x[n, r + 1, s + 1]],
                                  lut[x[n, r + 1, s + 2]])
                    x6, x7, x8 = (lut[x[n, r + 2, s]], lut[x[n, r + 2, s + 1]],
                                  lut[x[n, r + 2, s + 2]])
                    for c in range(C):
                        gq = g[c] if arg[n, p, c] == q else np.float32(0)  # the winner's only
                        dw_n[0, c] += x0 * gq
                        dw_n[1, c] += x1 * gq
                        dw_n[2, c] += x2 * gq
                        dw_n[3, c] += x3 * gq
                        dw_n[4, c] += x4 * gq
                        dw_n[5, c] += x5 * gq
                        dw_n[6, c] += x6 * gq
                        dw_n[7, c] += x7 * gq
                        dw_n[8, c] += x8 * gq
        for k in range(9):
            for c in range(C):
                dw[k, c] += dw_n[k, c]


if njit is not None:
    _forward = njit(cache=True, boundscheck=False, error_model="numpy")(_forward)
    _backward = njit(cache=True, boundscheck=False, error_model="numpy")(_backward)


def conv_block_forward(x: torch.Tensor, lut: torch.Tensor, w: torch.Tensor,
                       b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [B, 28, 28] -> (h0 float32 [B, 169*32] in HWC order, arg uint8 [B, 169, 32])."""
    n = len(x)
    h0 = torch.empty(n, POOLED * POOLED, C)
    arg = torch.empty(n, POOLED * POOLED, C, dtype=torch.uint8)
    _forward(x.contiguous().numpy(), lut.numpy(), w.contiguous().numpy(), b.numpy(),
             h0.numpy(), arg.numpy())
    return h0.view(n, -1), arg


def conv_block_backward(x: torch.Tensor, lut: torch.Tensor, dh0: torch.Tensor, h0: torch.Tensor,
                        arg: torch.Tensor, dw_out: torch.Tensor, db_out: torch.Tensor) -> None:
    """Loss gradient dh0 [B, 169*32] at the block's output -> the 3x3 kernel's gradient into
    dw_out [9, 32] and the bias's into db_out [32] (overwritten)."""
    n = len(x)
    dw = np.zeros((9, C), np.float64)
    db = np.zeros(C, np.float64)
    _backward(x.contiguous().numpy(), lut.numpy(), dh0.contiguous().view(n, -1, C).numpy(),
              h0.view(n, -1, C).numpy(), arg.numpy(), dw, db)
    dw_out.copy_(torch.from_numpy(dw))
    db_out.copy_(torch.from_numpy(db))


def warm_up() -> None:
    """Compile (or load from the disk cache) both kernels now, outside any timed loop."""
    if not available():
        return
    x = torch.zeros(1, 28, 28, dtype=torch.uint8)
    lut, w, b = torch.zeros(256), torch.zeros(9, C), torch.zeros(C)
    h0, arg = conv_block_forward(x, lut, w, b)
    conv_block_backward(x, lut, h0, h0, arg, torch.zeros(9, C), torch.zeros(C))
