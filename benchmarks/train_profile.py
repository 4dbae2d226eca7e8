"""Benchmark: where a training step of the seed model spends its time, and how close to the
CPU's peak it runs.

    python benchmarks/train_profile.py [--steps 400] [--batch-size 32] [--threads 0]
        [--out benchmarks/results/train_profile.json]

Times each phase of plain eager steps (data slicing, forward + loss, backward, optimizer) with
perf_counter (CPU execution is synchronous, so phase times are real), and reports achieved
FLOP/s against the theoretical fp32 peak of the cores (from /proc/cpuinfo: AVX-512 -> 16 fp32
lanes, AVX2 -> 8; 2 FMA units per core; the base clock).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fashion_cnn.data import load_fashion_mnist
from fashion_cnn.files import write_json
from fashion_cnn.models import build_model
from fashion_cnn.provenance import provenance

HERE = Path(__file__).resolve().parent


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "train_profile.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_fashion_mnist(offline=True)
    torch.manual_seed(0)
    model = build_model("seed").train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels, bs = data.train_images, data.train_labels, args.batch_size
    perm = torch.randperm(len(labels))
    phases: dict[str, list[float]] = {"data": [], "forward": [], "backward": [], "optimizer": []}
    for step in range(args.steps + 50):  # the first 50 warm up allocator and caches
        t0 = time.perf_counter()
        idx = perm[step * bs:(step + 1) * bs]
        x, y = images[idx], labels[idx]
        t1 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        if step >= 50:
            for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                phases[name].append(dt)

    step_ms = {k: 1000 * statistics.median(v) for k, v in phases.items()}
    total_ms = sum(step_ms.values())
    flops = seed_flops_per_image()
    peak = peak_flops(torch.get_num_threads())
    achieved = flops["total"] * bs / (total_ms / 1000) / 1e9
    result = {
        **provenance(0, data.checksums),
        "batch_size": bs, "threads": torch.get_num_threads(), "steps": args.steps,
        "median_ms_per_phase": step_ms, "ms_per_step": total_ms,
        "share_per_phase": {k: v / total_ms for k, v in step_ms.items()},
        "images_per_second": bs / (total_ms / 1000),
        "flop_per_image": flops, "achieved_gflops": achieved, **peak,
        "fraction_of_peak": achieved / peak["peak_gflops"],
        "cpu_count": os.cpu_count(),
    }
    write_json(args.out, result)
    shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in result["share_per_phase"].items())
    print(f"{total_ms:.2f} ms/step ({result['images_per_second']:,.0f} img/s): {shares}; "
          f"{achieved:.1f} GFLOP/s = {100 * result['fraction_of_peak']:.1f}% of "
          f"{peak['peak_gflops']:.0f} GFLOP/s peak -> {args.out}")


if __name__ == "__main__":
    main()
