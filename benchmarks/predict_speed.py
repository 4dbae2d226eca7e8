"""Benchmark: prediction speed, decoding included, with the model already loaded.

    python benchmarks/predict_speed.py [--model seed] [--backend auto] [--n 2000] [--repeats 5]
        [--out FILE] [--data-dir DIR]

Writes benchmarks/results/predict_speed.json (the default model) or predict_speed_MODEL.json
(--model MODEL, a shipped model's name), unless --out says otherwise (another kind of CPU:
`--out predict_speed_<cpu>.json`, a docs section that leaves README's table alone).

--model: a shipped model's name or a checkpoint (default: the shipped default model), for the
library and the command alike; --backend: what runs it (torch, onnxruntime, auto; recorded).

1. A folder of n 28x28 PNGs (official test images): images/s through `Classifier`
   (read file, decode, preprocess, model), median of `repeats` passes; and the same folder
   through the real command `fashion-cnn predict DIR --format csv` (process start-up included).
2. 1-megapixel JPEGs, median milliseconds per picture, one at a time: photo-style (1000x1000,
   an article on a light canvas: the authors' conversion) and real phone photos of the
   clothing-dataset-small validation split enlarged to 1 megapixel (the garment cut out);
   and those again with each speed flag at its shipped value and the other, in pairs of
   calls (`flag_times`). Folders, the PNGs of 1. and the real validation photos as they are,
   with their pictures prepared PREPARE_THREADS at a time and one after another
   (`prepare_threads_rounds`).
3. One 28x28 image already in memory: median milliseconds per `classify_one` call.
4. The 10,000 official test images through `predict_logits` on the backend (what
   `fashion-cnn evaluate` runs), median seconds, at EVAL_BATCH and at 1,000; on torch the
   fused forward pass (the default) and the plain model (`fused=False`) for comparison.
"""

from __future__ import annotations

import gc
import io
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import common
import numpy as np
import torch
from common import timed
from PIL import Image

from fashion_cnn import export, predict, preprocess
from fashion_cnn.evaluate import EVAL_BATCH, predict_logits
from fashion_cnn.photos import find_photos_dir, list_photos
from fashion_cnn.predict import BACKENDS, Classifier


def megapixel_jpeg(x: np.ndarray, rng: np.random.Generator) -> bytes:
    """A 1000x1000 product-style photo of a 28x28 test image (dark article, light canvas)."""
    article = np.asarray(Image.fromarray(x).resize((700, 700), Image.Resampling.BICUBIC),
                         np.float32)[..., None] / 255
    canvas = np.zeros((1000, 1000, 1), np.float32)
    top, left = rng.integers(0, 300, 2)
    canvas[top:top + 700, left:left + 700] = article
    photo = 245 * (1 - canvas) + rng.uniform(0, 90, 3) * canvas
    photo += rng.normal(0, 2, photo.shape)
    buf = io.BytesIO()
    Image.fromarray(photo.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def real_megapixel_jpegs(n: int = 20) -> list[bytes]:
    """n of the real validation photos (every 17th), enlarged to about 1 megapixel, as JPEG."""
    blobs = []
    for path, _ in list_photos(find_photos_dir(), "validation")[::17][:n]:
        img = Image.open(path).convert("RGB")
        scale = (1_000_000 / (img.width * img.height)) ** 0.5
        img = img.resize((round(img.width * scale), round(img.height * scale)),
                         Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        blobs.append(buf.getvalue())
    return blobs


def per_picture_ms(classifier: Classifier, blobs: list[bytes], repeats: int) -> dict:
    """Median and 90th-percentile milliseconds of `classify_one` on each picture."""
    times = [t for blob in blobs
             for t in timed(lambda blob=blob: classifier.classify_one(blob), repeats)]
    return {"n_pictures": len(blobs), "bytes_mean": int(statistics.mean(map(len, blobs))),
            "median_ms": 1000 * statistics.median(times),
            "p90_ms": 1000 * float(np.percentile(times, 90))}


def paired_ms(calls: dict[str, Callable[[bytes], object]], blobs: list[bytes],
              repeats: int) -> dict:
    """Two ways of classifying the same pictures (`calls`: the shipped way first), in pairs of
    calls whose order alternates: each way's median ms, and the median of the pairs' ratios,
    shipped over other (this shared CPU's speed drifts within seconds, so only calls next to
    each other compare)."""
    (shipped, call), (other, other_call) = calls.items()
    times: dict[str, list[float]] = {shipped: [], other: []}
    for i in range(repeats * len(blobs)):
        blob = blobs[i % len(blobs)]
        for name, fn in [(shipped, call), (other, other_call)][::1 if i % 2 else -1]:
            times[name] += timed(lambda fn=fn, blob=blob: fn(blob), 1)
    return {"pairs": len(times[shipped]),
            **{f"median_ms_{name}": 1000 * statistics.median(t) for name, t in times.items()},
            "ratio": statistics.median(a / b for a, b in zip(*times.values(), strict=True))}


def spinning_ms(classifier: Classifier, blobs: list[bytes], repeats: int, model: str | None,
                backend: str) -> dict:
    """Real photos through `classifier` (onnxruntime's threads resting between runs, as
    shipped: `export.ORT_SPINNING`) and through one made with them spinning, in blocks: a
    spinning session's threads spin through whatever runs next, so the two cannot take turns
    call by call. Each round runs the pictures once each way, the spinning classifier made
    for its block and dropped after it; each way's median ms, and the median of the rounds'
    ratios of medians."""
    def block(classify: Callable[[bytes], object]) -> list[float]:
        return [t for blob in blobs for t in timed(lambda b=blob: classify(b), 1)]

    times: dict[str, list[list[float]]] = {"resting": [], "spinning": []}
    for _ in range(repeats):
        times["resting"].append(block(classifier.classify_one))
        export.ORT_SPINNING = True
        try:
            spinning = Classifier(model, backend=backend)
        finally:
            export.ORT_SPINNING = False
        times["spinning"].append(block(spinning.classify_one))
        del spinning
        gc.collect()  # its sessions, and their threads, go before the next block
    return {"rounds": repeats,
            **{f"median_ms_{name}": 1000 * statistics.median(sum(t, [])) for name, t in
               times.items()},
            "ratio": statistics.median(statistics.median(a) / statistics.median(b) for a, b in
                                       zip(*times.values(), strict=True))}


def flag_times(classifier: Classifier, blobs: list[bytes], repeats: int, model: str | None,
               backend: str) -> dict[str, dict]:
    """The speed flags' effect on real photos: the second cut-out made beside the first or
    after it (`preprocess.SIDE_THREAD`, `paired_ms`), and, with an onnxruntime backend, its
    threads resting or spinning between runs (`export.ORT_SPINNING`, `spinning_ms`)."""

    def side_thread(on: bool) -> Callable[[bytes], object]:
        def call(blob: bytes) -> object:
            preprocess.SIDE_THREAD = on
            try:
                return classifier.classify_one(blob)
            finally:
                preprocess.SIDE_THREAD = True
        return call

    out = {"side_thread": paired_ms({"beside": side_thread(True), "after": side_thread(False)},
                                    blobs, repeats)}
    if classifier.backend != "torch":
        out["ort_spinning"] = spinning_ms(classifier, blobs, repeats, model, backend)
    return out


def prepare_threads_rounds(classifier: Classifier, paths: list[Path], repeats: int) -> dict:
    """A folder through `iter_classify` with its pictures prepared PREPARE_THREADS at a time
    (as shipped) and one after another, taking turns pass by pass (which goes first
    alternates): each way's images/s from its median pass, and the median of the rounds'
    ratios of seconds, shipped over one at a time; and how many pictures the shipped way
    prepared on its threads (predict.THREADS_FROM_SECONDS keeps quick ones off them)."""
    threads = predict.PREPARE_THREADS
    seconds: dict[int, list[float]] = {threads: [], 1: []}
    on_threads = []

    def prepare(source: object, name: str) -> predict.Prediction:
        on_threads.append(threading.current_thread().name.startswith("fashion-cnn-prepare"))
        return Classifier.prepare(classifier, source, name)

    classifier.prepare = prepare  # an instance attribute, deleted below
    try:
        for r in range(repeats):
            for n in (threads, 1) if r % 2 else (1, threads):
                predict.PREPARE_THREADS = n
                seconds[n] += timed(lambda: list(classifier.iter_classify(paths)), 1)
    finally:
        predict.PREPARE_THREADS = threads
        del classifier.prepare
    return {"n_pictures": len(paths), "rounds": repeats, "threads": threads,
            "share_on_threads": 2 * sum(on_threads) / len(on_threads),
            "images_per_second_threads": len(paths) / statistics.median(seconds[threads]),
            "images_per_second_one": len(paths) / statistics.median(seconds[1]),
            "ratio": statistics.median(a / b for a, b in zip(*seconds.values(), strict=True))}


def evaluate_times(classifier: Classifier, images: torch.Tensor, repeats: int
                   ) -> dict[str, float]:
    """Median seconds for the images through `predict_logits` as `fashion-cnn evaluate` runs
    the classifier's backend, by batch size (and, on torch, fused or plain forward pass)."""
    if classifier.backend != "torch":
        return {f"{classifier.backend}_batch_{bs}_seconds": statistics.median(timed(
            lambda bs=bs: predict_logits(classifier.logits, images, batch_size=bs), repeats))
            for bs in (EVAL_BATCH, 1000)}
    return {f"{'fused' if fused else 'plain'}_batch_{bs}_seconds": statistics.median(timed(
        lambda bs=bs, fused=fused: predict_logits(classifier.net, images, batch_size=bs,
                                                  fused=fused), repeats))
        for bs, fused in ((EVAL_BATCH, True), (1000, True), (EVAL_BATCH, False))}

def main() -> None:
    parser = common.parser(__doc__, None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="what runs the model (as `predict --backend`; default auto)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    data = common.load_data(args)
    classifier = Classifier(args.model, backend=args.backend)
    rng = np.random.default_rng(0)
    result = {"model": classifier.meta["arch"], "checkpoint": classifier.meta["path"],
              "backend": classifier.backend}

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(args.n):
            Image.fromarray(data.test_images[i].numpy()).save(folder / f"{i:05d}.png")
        paths = sorted(folder.iterdir())

        def run_folder() -> None:
            for _ in classifier.iter_classify(paths):
                pass

        folder_times = timed(run_folder, args.repeats)
        pngs_threads = prepare_threads_rounds(classifier, paths, args.repeats)
        cli_times = timed(lambda: subprocess.run(
            [common.FASHION_CNN, "predict", str(folder), "--format", "csv", "--quiet",
             "--backend", args.backend, *(["--model", args.model] if args.model else [])],
            check=True, capture_output=True), max(1, args.repeats // 2))
    result["png_folder"] = {
        "n_images": args.n, "seconds": folder_times,
        "images_per_second": args.n / statistics.median(folder_times),
        "cli_seconds": cli_times,
        "cli_images_per_second": args.n / statistics.median(cli_times),
    }

    jpegs = [megapixel_jpeg(data.test_images[i].numpy(), rng) for i in range(20)]
    result["megapixel_jpeg"] = per_picture_ms(classifier, jpegs, args.repeats)
    real = real_megapixel_jpegs()
    result["real_photo_megapixel_jpeg"] = per_picture_ms(classifier, real, args.repeats)
    result["flags"] = flag_times(classifier, real, args.repeats, args.model, args.backend)
    photos = [path for path, _ in list_photos(find_photos_dir(), "validation")]
    result["flags"] |= {"prepare_threads_pngs": pngs_threads,
                        "prepare_threads_photos": prepare_threads_rounds(classifier, photos,
                                                                         args.repeats)}

    one = data.test_images[0].numpy()
    image = Image.fromarray(one)
    single = timed(lambda: classifier.classify_one(image), 200)
    tensor_path = timed(lambda: classifier.probabilities(one[None]), 200)
    result["single_28x28"] = {"median_ms_classify_one": 1000 * statistics.median(single),
                              "median_ms_model_only": 1000 * statistics.median(tensor_path)}
    result["evaluate_10k"] = evaluate_times(classifier, data.test_images, args.repeats)
    if args.out is None:
        name = args.model if args.model and "/" not in args.model and "." not in args.model else ""
        args.out = common.RESULTS / (f"predict_speed_{name}.json" if name else
                                     "predict_speed.json")
    common.write_result(args.out, result, seed=0, checksums=data.checksums)
    print(f"28x28 PNG folder: {result['png_folder']['images_per_second']:,.0f} images/s "
          f"(CLI incl. start-up {result['png_folder']['cli_images_per_second']:,.0f}); "
          f"1-MP JPEG: {result['megapixel_jpeg']['median_ms']:.1f} ms median (real photo "
          f"{result['real_photo_megapixel_jpeg']['median_ms']:.1f} ms); one 28x28 image: "
          f"{result['single_28x28']['median_ms_classify_one']:.2f} ms; 10,000 test images "
          f"{next(iter(result['evaluate_10k'].values())):.2f} s -> {args.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
