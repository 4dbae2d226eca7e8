"""Reference training runs whose final weights are hashed, to prove a refactor changed no bits.

    python tests/same_bits.py --record   # adds this kind of machine to tests/data/same_bits.json

`tests/test_training.py` re-runs each and compares with the hashes recorded on the same kind of
machine (torch build and the vector instructions its kernels use: other CPUs round
differently). The first record was made before the training loop was restructured (issue 14),
later ones on the code of their commit, to guard later changes. Each run is a few hundred steps
on the first images of the real training set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch

RECORD = Path(__file__).parent / "data" / "same_bits.json"

# name -> (TrainConfig options, number of training images)
RUNS: dict[str, tuple[dict, int]] = {
    "faithful": (dict(epochs=1), 9600),  # 300 steps of the fused numba step, automatic threads
    "faithful_2threads": (dict(epochs=1, threads=2), 9600),
    "faithful_torch_conv": (dict(epochs=1, numba=False), 4800),
    "faithful_plain": (dict(epochs=1, fused=False), 4800),
    "fast": (dict(epochs=2, batch_size=128, lr=0.1, nesterov=True, schedule="onecycle",
                  label_smoothing=0.1, flip=True), 6400),
    "best": (dict(model="best", batch_size=128, epochs=1, lr=0.1, nesterov=True,
                  schedule="onecycle", label_smoothing=0.1, weight_decay=5e-4, flip=True,
                  translate=2, erase=0.5, bf16=True, channels_last=True), 1280),
}


def state_hash(model: torch.nn.Module) -> str:
    """SHA-256 of every tensor of the state dict, in order, as contiguous float32/int bytes."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def machine() -> str:
    """What the bits may depend on: the torch build and the CPU's vector instructions (the
    capability torch dispatches on, and the extensions oneDNN and MKL pick kernels by)."""
    extensions = [name for name, probe in (("VNNI", torch.cpu._is_vnni_supported),
                                           ("AVX512-BF16", torch.cpu._is_avx512_bf16_supported),
                                           ("AMX", torch.cpu._is_amx_tile_supported))
                  if probe()]
    return ", ".join([f"torch {torch.__version__}", torch.backends.cpu.get_cpu_capability(),
                      *extensions])


def recorded_hashes() -> dict[str, str] | None:
    """The hashes recorded on this kind of machine, or None."""
    return json.loads(RECORD.read_text()).get(machine(), {}).get("hashes")


def train_and_hash(name: str, images: torch.Tensor, labels: torch.Tensor) -> str:
    from fashion_cnn.models import build_model
    from fashion_cnn.training import TrainConfig, fit
    from fashion_cnn.training.config import with_options

    options, n = RUNS[name]
    config = with_options(TrainConfig(), options)  # (flat augmentation names)
    torch.manual_seed(config.seed)
    model = build_model(config.model)
    threads = torch.get_num_threads()
    try:
        fit(model, config, images[:n], labels[:n], progress=False, log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    return state_hash(model)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--code", default="", help="what code the record was made on")
    args = parser.parse_args()
    from fashion_cnn.data import load_fashion_mnist

    data = load_fashion_mnist(offline=True)
    hashes = {name: train_and_hash(name, data.train_images, data.train_labels) for name in RUNS}
    print(json.dumps(hashes, indent=1))
    if args.record:
        records = json.loads(RECORD.read_text()) if RECORD.exists() else {}
        records[machine()] = {"code": args.code, "hashes": hashes}
        RECORD.write_text(json.dumps(records, indent=1) + "\n")
