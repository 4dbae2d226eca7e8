"""Benchmark: where a training step of the seed model spends its time, and how close to the
CPU's peak it runs.

    python benchmarks/train_profile.py [--steps 400] [--batch-size 32] [--threads 0]
        [--rounds 3] [--paths plain,...] [--out benchmarks/results/train_profile.json]
        [--data-dir DIR]

Times each phase of a training step (data slicing, forward + loss, backward, optimizer) with
perf_counter (CPU execution is synchronous, so phase times are real) for each path: plain eager
PyTorch, eager with channels-last activations, and the hand-fused step (fused.py) with its conv
block as torch operations (--no-numba) and as compiled kernels (the default; its backward
phase includes adding fc1's weight gradient into the momentum buffer, as train_step does), the
default with fc1's products in bfloat16 (--bf16), and the default with its conv kernels on the
calling thread only (as before they ran on torch's threads; kernels.PARALLEL_MIN). Each path
runs in its own process, the paths taking turns for --rounds rounds (the machine is shared:
interleaving spreads its noise evenly); each phase's figure is the median over all its steps.
Reports achieved FLOP/s against the theoretical fp32 peak of the cores (from /proc/cpuinfo:
AVX-512 -> 16 fp32 lanes, AVX2 -> 8; 2 FMA units per core; the base clock); for --bf16 too,
though its fc1 products have twice that peak.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common
import torch
import torch.nn.functional as F

from fashion_cnn.data import FashionMNIST
from fashion_cnn.models import build_model
from fashion_cnn.seed_fast import kernels
from fashion_cnn.seed_fast.fused import FusedSeed, soft_targets


def seed_flops_per_image() -> dict[str, float]:
    """Multiply-adds x 2 of the seed CNN, forward; backward is ~2x forward (grad of inputs
    and of weights), except the first conv, whose input needs no gradient (1x)."""
    conv = 26 * 26 * 32 * 9 * 2
    fc1 = 32 * 13 * 13 * 100 * 2
    fc2 = 100 * 10 * 2
    forward = conv + fc1 + fc2
    backward = conv + 2 * (fc1 + fc2)
    return {"forward": forward, "backward": backward, "total": forward + backward}


def peak_flops(cores: int) -> dict[str, float | str]:
    """Theoretical fp32 peak: cores x fp32 FLOP per cycle x clock. Per cycle: 2 FMA units x
    lanes x 2; AMD runs AVX-512 on 256-bit units (Zen 4), so it counts 8 lanes there."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = re.search(r"^flags\s*:(.*)$", info, re.M)
    flags = flags[1].split() if flags else []
    amd = "AuthenticAMD" in info
    lanes = 16 if "avx512f" in flags and not amd else 8 if "avx2" in flags else 4
    model = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
    ghz = re.search(r"@\s*([\d.]+)GHz", model[1]) if model else None
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M)
    clock = float(ghz[1]) if ghz else float(mhz[1]) / 1000 if mhz else 2.0
    return {"cpu": model[1] if model else "unknown", "cores": cores,
            "fp32_flop_per_cycle": 2 * lanes * 2, "avx512": "avx512f" in flags,
            "clock_ghz": clock, "peak_gflops": cores * 2 * lanes * 2 * clock}


def plain_step(channels_last: bool):
    """A plain eager training step, timed by phase."""
    torch.manual_seed(0)
    model = build_model("seed").train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x: torch.Tensor, y: torch.Tensor) -> list[float]:
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        return [t1 - t0, t2 - t1, time.perf_counter() - t2]
    return step


def fused_step(numba: bool, bf16: bool = False, serial_kernels: bool = False):
    """The fused step (FusedSeed + its direct SGD step), timed by phase; numba: its compiled
    kernels; bf16: fc1's products in bfloat16; serial_kernels: the conv kernels on the
    calling thread only, not torch's threads."""
    if serial_kernels:
        kernels.PARALLEL_MIN = sys.maxsize
    torch.manual_seed(0)
    fused = FusedSeed(build_model("seed"), numba=numba, bf16=bf16)
    optimizer = torch.optim.SGD([fused.theta], lr=0.01, momentum=0.9, fused=True)

    def step(x: torch.Tensor, y: torch.Tensor) -> list[float]:
        t0 = time.perf_counter()
        logits, saved = fused.forward(x, record=True)
        t1 = time.perf_counter()
        folded = fused.momentum_views(optimizer)  # train_step's phases, one by one
        fused.backward(logits, soft_targets(y), saved,
                       fc1_into=None if folded is None else folded["fc1_w"],
                       beta=optimizer.param_groups[0]["momentum"])
        t2 = time.perf_counter()
        fused.sgd_step(optimizer, folded)
        return [t1 - t0, t2 - t1, time.perf_counter() - t2]
    return step


PATHS = {"plain": lambda: plain_step(False), "channels_last": lambda: plain_step(True),
         "fused_torch": lambda: fused_step(False), "fused": lambda: fused_step(True),
         "fused_bf16": lambda: fused_step(True, bf16=True),
         "fused_serial_kernels": lambda: fused_step(True, serial_kernels=True)}
PHASES = ("data", "forward", "backward", "optimizer")


def time_path(data: FashionMNIST, path: str, n_steps: int, bs: int) -> dict[str, list[float]]:
    """Seconds per phase of n_steps steps of one path (after 50 warm-up steps)."""
    images, labels = data.train_images, data.train_labels
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    step = PATHS[path]()
    phases: dict[str, list[float]] = {name: [] for name in PHASES}
    for k in range(n_steps + 50):  # the first 50 warm up allocator and caches
        t0 = time.perf_counter()
        idx = perm[(k * bs) % (len(perm) - bs):][:bs]
        x, y = images[idx], labels[idx]
        times = [time.perf_counter() - t0, *step(x, y)]
        if k >= 50:
            for name, dt in zip(PHASES, times, strict=True):
                phases[name].append(dt)
    return phases


def main() -> None:
    parser = common.parser(__doc__, "train_profile", rounds=3)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--paths", type=common.comma_list(list(PATHS)), default=list(PATHS),
                        help=f"comma-separated, from: {', '.join(PATHS)}")
    parser.add_argument("--one-path", choices=list(PATHS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bs = args.batch_size
    data = common.load_data(args)
    if args.one_path:  # a child process: time one path, print the phases as JSON
        print(json.dumps(time_path(data, args.one_path, args.steps, bs)))
        return

    # Each path runs in a fresh process, as in real use: running one path leaves allocator and
    # thread-pool state behind that slowed the next path when they shared a process.
    phases = {path: {name: [] for name in PHASES} for path in args.paths}
    for _ in range(args.rounds):
        for path in phases:
            child = subprocess.run(
                [sys.executable, __file__, "--one-path", path, "--steps", str(args.steps),
                 "--batch-size", str(bs), "--threads", str(args.threads),
                 *common.data_dir_flag(args)],
                capture_output=True, text=True, check=True)
            for name, values in json.loads(child.stdout.splitlines()[-1]).items():
                phases[path][name].extend(values)

    flops = seed_flops_per_image()
    peak = peak_flops(torch.get_num_threads())
    paths = {}
    for path, by_phase in phases.items():
        step_ms = {k: 1000 * statistics.median(v) for k, v in by_phase.items()}
        total_ms = sum(step_ms.values())
        achieved = flops["total"] * bs / (total_ms / 1000) / 1e9
        paths[path] = {"median_ms_per_phase": step_ms, "ms_per_step": total_ms,
                       "share_per_phase": {k: v / total_ms for k, v in step_ms.items()},
                       "images_per_second": bs / (total_ms / 1000), "achieved_gflops": achieved,
                       "fraction_of_peak": achieved / peak["peak_gflops"]}
    result = {
        "batch_size": bs, "threads": torch.get_num_threads(), "steps": args.steps,
        "rounds": args.rounds, "flop_per_image": flops, **peak, "cpu_count": os.cpu_count(),
        "paths": paths,
    }
    if "plain" in paths and "fused" in paths:
        result["speedup_fused_vs_plain"] = (paths["plain"]["ms_per_step"]
                                            / paths["fused"]["ms_per_step"])
    common.write_result(args.out, result, seed=0, checksums=data.checksums)
    for path, r in paths.items():
        shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["share_per_phase"].items())
        print(f"{path:13s} {r['ms_per_step']:.2f} ms/step ({r['images_per_second']:,.0f} img/s):"
              f" {shares}; {r['achieved_gflops']:.1f} GFLOP/s = "
              f"{100 * r['fraction_of_peak']:.1f}% of {peak['peak_gflops']:.0f} GFLOP/s peak")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
