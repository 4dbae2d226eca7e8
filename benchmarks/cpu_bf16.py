"""Benchmark: what --bf16 and --channels-last do to a training step of the best model on
this CPU. Both were chosen on a CPU with native bfloat16 (oneDNN's bfloat16 kernels:
AVX-512 and up); on one without them, autocast emulates bfloat16. Times PlainStep (forward,
backward, SGD update; batch 128, random uint8 images) in each setting, taking turns, and
records the CPU's capabilities.

    python benchmarks/cpu_bf16.py [--batches 3] [--rounds 2]
        [--out benchmarks/results/cpu_bf16.json]

A training run switches --bf16 off where the CPU lacks native bfloat16
(`training.steps.for_this_cpu`); this script times the steps as the flags ask.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

import common
import torch

from fashion_cnn.training import recipe_config
from fashion_cnn.training.run import initial_model
from fashion_cnn.training.steps import PlainStep, native_bf16

SETTINGS = {  # name -> (bf16, channels_last)
    "float32": (False, False),
    "float32, channels-last": (False, True),
    "bf16": (True, False),
    "bf16, channels-last (the recipe's)": (True, True),
}
BATCH = 128


def step_seconds(bf16: bool, channels_last: bool, batches: int) -> float:
    """Median seconds of one training step of the best model, after one warm-up step."""
    config = replace(recipe_config("best", epochs=1), bf16=bf16, channels_last=channels_last)
    torch.manual_seed(0)
    model, _ = initial_model(config)
    images = torch.randint(0, 256, (BATCH * (batches + 1), 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (BATCH * (batches + 1),))
    step = PlainStep(model, config, steps=[100])  # the schedule: any length will do
    step.start_epoch(images, labels, 1)
    model.train()
    times: list[float] = []
    for k in range(batches + 1):
        rows = slice(k * BATCH, (k + 1) * BATCH)
        times += common.timed(lambda rows=rows: step(rows, BATCH), 1)
    return statistics.median(times[1:])


def main() -> None:
    p = common.parser(__doc__, "cpu_bf16", data=False, rounds=2)
    p.add_argument("--batches", type=int, default=3, help="timed steps per setting and round")
    args = p.parse_args()
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, (bf16, channels_last) in SETTINGS.items():
            times[name].append(step_seconds(bf16, channels_last, args.batches))
            print(f"{name}: {times[name][-1]:.3f} s per step", flush=True)
    base = statistics.median(times["float32"])
    rows = [{"setting": name, "bf16": bf16, "channels_last": channels_last,
             "step_seconds": statistics.median(times[name]), "rounds": times[name],
             "vs_float32": statistics.median(times[name]) / base}
            for name, (bf16, channels_last) in SETTINGS.items()]
    cpu = {name[4:-10]: bool(getattr(torch.cpu, name)()) for name in dir(torch.cpu)
           if name.startswith("_is_") and name.endswith("_supported")}
    common.write_result(args.out, {"batch_size": BATCH, "batches": args.batches,
                                   "native_bf16": native_bf16(), "cpu": cpu,
                                   "capability": torch.backends.cpu.get_cpu_capability(),
                                   "rows": rows}, seed=0, checksums={})


if __name__ == "__main__":
    main()
