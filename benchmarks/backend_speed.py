"""Benchmark: torch against onnxruntime (float32 and int8) running each shipped model
(`--backend`).

    python benchmarks/backend_speed.py [--models seed,best] [--rounds 3] [--out FILE]
        [--data-dir DIR]

Writes benchmarks/results/backend_speed.json (`--out backend_speed_<cpu>.json` for another kind
of CPU: `auto`'s choice is checked against every such file). For each model, every backend is
built through `Classifier(model, backend=...)` (onnxruntime: the checked ONNX export;
onnxruntime-int8: that graph quantized, calibrated on training images) and, taking turns,
`rounds` times each:

1. the 10,000 official test images in batches of EVAL_BATCH as `evaluate` runs them
   (`predict_logits`: for torch, the seed CNN's fused forward pass, its fastest path;
   `predict` with a folder runs the plain forward pass, slower), seconds;
2. one 28x28 test image through `Classifier.probabilities`, milliseconds (the median of 100
   calls in each round: what one picture sent to the API or the app costs past decoding).

Medians over the rounds. Also recorded: the 1-minute load average before and after, each
backend's test accuracy and its accuracy on the checkpoint's own validation split (the training
images it held out), how many test images onnxruntime and onnxruntime-int8 give torch's top
class and onnxruntime's largest |probability difference| (through `Classifier.probabilities`,
in batches of predict.BATCH). `faster` first chooses between the exact backends, torch and
onnxruntime: the one with the smaller single-picture median and the smaller 10,000-image
median when they agree, else the one with the smaller sum of the two ratios (onnxruntime time
/ torch time); then int8 instead if it is faster than that on both and its validation accuracy
is at most INT8_MAX_DROP below torch's (int8 changes a few answers; the test set chooses
nothing: files before 2026-12-06 recorded test accuracy only, and chose on it). That is the
choice `auto` makes (fashion_cnn.predict.FASTER_BACKEND, checked by tests/test_export.py; a
checkpoint without calibration images gets float32 onnxruntime instead of int8).
"""

from __future__ import annotations

import os
import statistics
import sys

import common
import torch
from common import timed

from fashion_cnn.data import FashionMNIST
from fashion_cnn.evaluate import EVAL_BATCH, predict_logits
from fashion_cnn.models import SHIPPED_MODELS
from fashion_cnn.predict import BATCH, Classifier
from fashion_cnn.training import run_split

BACKENDS = ("torch", "onnxruntime", "onnxruntime-int8")  # `faster` compares the first two
SINGLE_CALLS = 100  # one-picture calls per round


def run_all(classifier: Classifier, images: torch.Tensor) -> torch.Tensor:
    """Logits [N, 10] for uint8 images [N, 28, 28] as `evaluate` computes them."""
    forward = classifier.net if classifier.backend == "torch" else classifier.logits
    return predict_logits(forward, images)


KEYS = ("test_10k_seconds", "single_ms")
INT8_MAX_DROP = 0.001  # int8 is chosen only if it costs at most 0.1 points of validation accuracy


def faster(medians: dict[str, dict[str, float]],
           accuracy: dict[str, float] | None = None) -> str:
    """The backend `auto` should pick from {"torch": {...}, "onnxruntime": {...},
    "onnxruntime-int8": {...}} medians (KEYS) and each backend's validation `accuracy`; see the
    module docstring."""
    exact = faster_exact(medians)
    int8 = medians.get("onnxruntime-int8")
    if (int8 and accuracy and accuracy["torch"] - accuracy["onnxruntime-int8"] <= INT8_MAX_DROP
            and all(int8[k] < medians[exact][k] for k in KEYS)):
        return "onnxruntime-int8"
    return exact


def faster_exact(medians: dict[str, dict[str, float]]) -> str:
    """torch or onnxruntime (the same answers): the one faster on both KEYS, else the one with
    the smaller sum of the two time ratios."""
    ratios = [medians["onnxruntime"][k] / medians["torch"][k] for k in KEYS]
    if all(r < 1 for r in ratios):
        return "onnxruntime"
    if all(r >= 1 for r in ratios):
        return "torch"
    return "onnxruntime" if sum(ratios) < 2 else "torch"


def measure(model: str, data: FashionMNIST, rounds: int) -> dict:
    """Every backend on one model, taking turns: medians, test and validation accuracy,
    agreement with torch and `auto`'s choice (made on validation)."""
    images, labels = data.test_images, data.test_labels
    classifiers = {b: Classifier(model, backend=b) for b in BACKENDS}
    one = images[:1].numpy()
    times: dict[str, dict[str, list[float]]] = {
        b: {"test_10k_seconds": [], "single_ms": []} for b in BACKENDS}
    for _ in range(rounds):
        for b, c in classifiers.items():
            times[b]["test_10k_seconds"] += timed(lambda c=c: run_all(c, images), 1)
            single = timed(lambda c=c: c.probabilities(one), SINGLE_CALLS)
            times[b]["single_ms"].append(1000 * statistics.median(single))
    probs = {b: batched_probabilities(c, images) for b, c in classifiers.items()}
    medians = {b: {k: statistics.median(v) for k, v in t.items()} for b, t in times.items()}
    top = {b: p.argmax(1) for b, p in probs.items()}
    accuracy = {b: float((top[b] == labels).float().mean()) for b in BACKENDS}
    validation = validation_accuracy(classifiers, data)
    return {
        "checkpoint": classifiers["torch"].meta["path"],
        "runs": {b: {**medians[b], "rounds": times[b], "test_accuracy": accuracy[b],
                     "val_accuracy": validation[b]} for b in BACKENDS},
        "same_argmax": int((top["torch"] == top["onnxruntime"]).sum()),
        "same_argmax_int8": int((top["torch"] == top["onnxruntime-int8"]).sum()),
        "n_images": len(images),
        "max_probability_diff": float((probs["torch"] - probs["onnxruntime"]).abs().max()),
        "faster": faster(medians, validation),
    }


def validation_accuracy(classifiers: dict[str, Classifier], data: FashionMNIST
                        ) -> dict[str, float]:
    """Each backend's accuracy on the training images its checkpoint held out."""
    _, val = run_split(len(data.train_labels), classifiers["torch"].meta["config"])
    images, labels = data.train_images[val], data.train_labels[val]
    return {b: float((batched_probabilities(c, images).argmax(1) == labels).float().mean())
            for b, c in classifiers.items()}


def batched_probabilities(classifier: Classifier, images: torch.Tensor) -> torch.Tensor:
    """[N, 10] for uint8 images [N, 28, 28], in batches of predict.BATCH: what `predict`
    computes."""
    return torch.cat([classifier.probabilities(images[i:i + BATCH])
                      for i in range(0, len(images), BATCH)])


def main() -> None:
    parser = common.parser(__doc__, "backend_speed", rounds=3)
    parser.add_argument("--models", type=common.comma_list(SHIPPED_MODELS),
                        default=["seed", "best"])
    args = parser.parse_args()
    data = common.load_data(args)
    load_before = os.getloadavg()[0]  # a busy machine slows torch's threads most: say how busy
    result = {"batch_size": EVAL_BATCH, "single_calls_per_round": SINGLE_CALLS,
              "torch_threads": torch.get_num_threads(),
              "models": {m: measure(m, data, args.rounds) for m in args.models}}
    result["load_average"] = [load_before, os.getloadavg()[0]]
    common.write_result(args.out, result, seed=None, checksums=data.checksums)
    for m, r in result["models"].items():
        times = ", ".join(f"{b} {v['test_10k_seconds']:.2f} s / {v['single_ms']:.3f} ms"
                          for b, v in r["runs"].items())
        print(f"{m}: 10,000 images / one picture: {times}; same top class as torch "
              f"{r['same_argmax']:,} (int8 {r['same_argmax_int8']:,}) of {r['n_images']:,}; "
              f"faster: {r['faster']}", file=sys.stderr)
    print(f"-> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
