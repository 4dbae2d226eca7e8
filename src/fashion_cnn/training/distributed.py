"""Training on several processes or machines, with the gloo (CPU) backend.

Every process holds the whole dataset and the whole model, shuffles and augments the epoch
identically (the generators are seeded by (seed, epoch)), and computes the gradient of its own
share of every batch, scaled by 1/(global batch size); the shares are summed with one
all-reduce, so every process takes exactly the step a single process would take on the whole
batch (up to float summation order). Batch norm layers pool their statistics across processes
(`SyncBatchNorm` below; torch's own works on GPUs only), so they too see the whole batch.

    fashion-cnn train --model best --nproc 2           # one machine, 2 processes (`launch`)
    torchrun --nnodes 2 ... -m fashion_cnn.cli train   # several machines: torchrun's options
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from types import FrameType

import torch
import torch.distributed as dist
from torch import nn


def world() -> tuple[int, int]:
    """(this process's rank, number of processes); (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env() -> None:
    """Join the process group when started by `launch` or torchrun (WORLD_SIZE > 1), with one
    thread per core share, so the processes do not fight over the cores."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))


def finish() -> None:
    """Leave the process group once every process is done: each waits for the others, then
    closes its connections, so none exits while another still talks to it (a process whose
    peer vanished mid-teardown can abort). Only on success: a failed process just exits, and
    its launcher (`launch`, torchrun) stops the rest."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# Starting the processes on one machine

GRACE_SECONDS = 10.0  # after Ctrl-C, the processes' time to stop by themselves before the
# signal is passed on (the terminal sends it to all of them: each stops between two steps)


def launch(nproc: int, argv: list[str]) -> int:
    """Run `python ARGV` in nproc processes on this machine, with the environment variables
    torchrun gives its processes (RANK, WORLD_SIZE, MASTER_PORT, ...), and return their exit
    status: the first failure's (the others are then stopped), else 0.

    Not torchrun itself: its agent answers Ctrl-C with a traceback of its own and exit status
    1, and prints a banner. Here Ctrl-C reaches every process from the terminal, each stops as
    one process does (`train`: "interrupted; continue with ..."), and this one waits for them:
    exit status 130. A SIGINT or SIGTERM sent to this process alone is passed on to them."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc)}
    env.setdefault("OMP_NUM_THREADS", "1")  # as torchrun sets it (`init_from_env` then gives
    # torch each process's share of the cores)
    procs: list[subprocess.Popen] = []
    before = signal.signal(signal.SIGTERM, _terminated)
    try:
        for rank in range(nproc):
            procs.append(subprocess.Popen([sys.executable, *argv],
                                          env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}))
        return _wait(procs)
    except KeyboardInterrupt:
        _stop(procs, signal.SIGINT, GRACE_SECONDS)
        return 130
    except _Terminated:
        _stop(procs, signal.SIGTERM, 0.0)
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, before)
        for proc in procs:  # none outlives this one
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def launch_command(nproc: int, argv: list[str]) -> list[str]:
    """The command that runs `python ARGV` in nproc processes (`launch`), from a shell."""
    return [sys.executable, "-m", "fashion_cnn.training.distributed", str(nproc), *argv]


class _Terminated(Exception):
    """SIGTERM reached the launching process."""


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _free_port() -> int:
    """A TCP port free on this machine now, for the first process's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(procs: list[subprocess.Popen]) -> int:
    """Wait for every process; when one fails, stop the rest (they would wait for it at the
    next all-reduce) and return its status."""
    while True:
        codes = [proc.poll() for proc in procs]
        failed = next((code for code in codes if code), None)
        if failed is not None:
            _stop(procs, signal.SIGTERM, 0.0)
            return failed
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.1)


def _stop(procs: list[subprocess.Popen], sig: int, grace: float, wait: float = 30.0) -> None:
    """Give the processes `grace` seconds to end by themselves, then send the rest `sig`, and
    after `wait` more seconds kill what still runs."""
    for deadline, action in ((grace, lambda proc: proc.send_signal(sig)),
                             (wait, lambda proc: proc.kill())):
        end = time.monotonic() + deadline
        while any(proc.poll() is None for proc in procs) and time.monotonic() < end:
            time.sleep(0.05)
        for proc in procs:
            if proc.poll() is None:
                action(proc)


def shard(n: int) -> slice:
    """This process's rows of a batch of n (contiguous, sizes differ by at most one)."""
    rank, size = world()
    return slice(rank * n // size, (rank + 1) * n // size)


def share(start: int, stop: int) -> slice:
    """This process's rows of the batch of rows [start, stop)."""
    mine = shard(stop - start)
    return slice(start + mine.start, start + mine.stop)


def all_reduce_sum(tensors: Iterable[torch.Tensor]) -> None:
    """Sum tensors across processes in place, with one all-reduce (flattened together)."""
    tensors = list(tensors)
    if world()[1] == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


class _SyncBatchNormFunction(torch.autograd.Function):
    """Batch norm over the union of every process's batch (NCHW), training mode."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):  # noqa: ANN001 - autograd signature
        x = x.float()
        dims = [0, 2, 3]
        stats = torch.cat([x.sum(dims), (x * x).sum(dims),
                           torch.tensor([x.numel() / x.shape[1]])])
        dist.all_reduce(stats)
        c = x.shape[1]
        count = stats[-1]
        mean = stats[:c] / count
        var = stats[c:2 * c] / count - mean * mean  # biased, as batch norm normalises
        invstd = (var + eps).rsqrt()
        xhat = (x - mean.view(1, c, 1, 1)) * invstd.view(1, c, 1, 1)
        ctx.save_for_backward(xhat, weight, invstd, count)
        return xhat * weight.view(1, c, 1, 1) + bias.view(1, c, 1, 1), mean, var, count

    @staticmethod
    def backward(ctx, dy, *_):  # noqa: ANN001
        xhat, weight, invstd, count = ctx.saved_tensors
        dy = dy.float()
        c = dy.shape[1]
        dbias = dy.sum([0, 2, 3])  # this process's share; the gradient all-reduce sums them
        dweight = (dy * xhat).sum([0, 2, 3])
        sums = torch.cat([dbias, dweight])
        dist.all_reduce(sums)
        mean_dy = (sums[:c] / count).view(1, c, 1, 1)
        mean_dy_xhat = (sums[c:] / count).view(1, c, 1, 1)
        dx = (dy - mean_dy - xhat * mean_dy_xhat) * (weight * invstd).view(1, c, 1, 1)
        return dx, dweight, dbias, None


class SyncBatchNorm(nn.BatchNorm2d):
    """nn.BatchNorm2d whose training statistics cover every process's batch (CPU, gloo).
    Same parameters and buffers as BatchNorm2d; in eval mode, or alone, it is BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world()[1] > 1):
            return super().forward(x)
        y, mean, var, count = _SyncBatchNormFunction.apply(x, self.weight, self.bias, self.eps)
        with torch.no_grad():  # running statistics as BatchNorm2d keeps them (unbiased var)
            self.num_batches_tracked.add_(1)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * count / (count - 1), self.momentum)
        return y


def sync_batch_norm(model: nn.Module) -> nn.Module:
    """Swap every BatchNorm2d in `model` for SyncBatchNorm (weights and buffers kept)."""
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = SyncBatchNorm(child.num_features, child.eps, child.momentum)
            sync.load_state_dict(child.state_dict())
            setattr(model, name, sync)
        else:
            sync_batch_norm(child)
    return model


if __name__ == "__main__":  # `launch_command`: python -m fashion_cnn.training.distributed N ARGV
    sys.exit(launch(int(sys.argv[1]), sys.argv[2:]))
