"""Benchmark: the automatic thread count (threads.py) against fixed counts, on a quiet machine
and with other programs keeping cores busy.

    python benchmarks/threads.py [--epochs 2] [--rounds 3] [--busy 0,1]
        [--out benchmarks/results/threads.json] [--data-dir DIR]

For each scenario (the number of busy-loop processes running beside training, each wanting a
whole core: what a browser tab, a build or a neighbouring VM does to a laptop or a cloud
machine), the seed CNN trains on the real training set with the faithful recipe (batch 32,
the fused step with its numba kernels) with --threads 0 (automatic), every fixed count from
the cores down to 1, taking turns for --rounds rounds; the figure per setting is the median
images/s over all its epochs. Also records how many steps the automatic runs took on each
count, and checks that the automatic runs' weights equal the fixed all-cores run's.
"""

from __future__ import annotations

import statistics
import sys

import common
import torch

from fashion_cnn.models import build_model
from fashion_cnn.training import fit, recipe_config, split_indices


def run(images, labels, epochs: int, threads: int, cores: int) -> dict:
    """Train the seed CNN from seed 0 with `threads` (0: automatic): images/s per epoch, the
    automatic runs' thread counts, and the final weights."""
    torch.set_num_threads(threads or cores)
    torch.manual_seed(0)
    model = build_model("seed")
    history = fit(model, recipe_config("faithful", epochs=epochs, threads=threads), images,
                  labels, progress=False, log=lambda _: None)
    return {"images_per_second": [h["images_per_second"] for h in history],
            "thread_steps": [h.get("thread_steps") for h in history],
            "weights": torch.cat([p.detach().flatten() for p in model.parameters()])}


def main() -> None:
    parser = common.parser(__doc__, "threads", rounds=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--busy", default="0,1", help="comma-separated busy-process counts")
    args = parser.parse_args()

    data = common.load_data(args)
    train_idx, _ = split_indices(len(data.train_labels), 0.1, 0)
    images, labels = data.train_images[train_idx], data.train_labels[train_idx]
    cores = torch.get_num_threads()
    settings = [0, *range(cores, 0, -1)]  # 0: automatic
    result = {"cores": cores, "epochs": args.epochs, "rounds": args.rounds, "scenarios": {}}
    for busy in (int(b) for b in args.busy.split(",")):
        runs: dict[int, list[dict]] = {t: [] for t in settings}
        with common.busy_neighbours(busy):
            for r in range(1, args.rounds + 1):
                for threads in settings:
                    print(f"{busy} busy, round {r}: threads {threads or 'auto'}",
                          file=sys.stderr)
                    runs[threads].append(run(images, labels, args.epochs, threads, cores))
        same = all(torch.equal(a["weights"], runs[cores][0]["weights"]) for a in runs[0])
        scenario = {"busy_processes": busy, "automatic_weights_equal_all_cores": same}
        for threads, rs in runs.items():
            per_epoch = [v for r in rs for v in r["images_per_second"]]
            scenario["auto" if threads == 0 else f"threads_{threads}"] = {
                "median_images_per_second": statistics.median(per_epoch),
                "images_per_second": per_epoch,
                **({"thread_steps": [s for r in rs for s in r["thread_steps"]]}
                   if threads == 0 else {})}
        result["scenarios"][f"busy_{busy}"] = scenario
        line = ", ".join(f"{name} {v['median_images_per_second']:,.0f}"
                         for name, v in scenario.items() if isinstance(v, dict))
        print(f"{busy} busy processes: images/s {line}; automatic weights equal: {same}")
    torch.set_num_threads(cores)
    common.write_result(args.out, result, seed=0, checksums=data.checksums)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
