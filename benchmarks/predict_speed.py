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
   and those again with the second cut-out made beside the first and after it, taking turns.
3. One 28x28 image already in memory: median milliseconds per `classify_one` call.
4. The 10,000 official test images through `predict_logits` on the backend (what
   `fashion-cnn evaluate` runs), median seconds, at EVAL_BATCH and at 1,000; on torch the
   fused forward pass (the default) and the plain model (`fused=False`) for comparison.
"""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common
import numpy as np
import torch
from common import timed
from PIL import Image

from fashion_cnn import preprocess
from fashion_cnn.evaluate import EVAL_BATCH, predict_logits
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
    from fashion_cnn.photos import find_photos_dir, list_photos

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


def side_thread_times(classifier: Classifier, blobs: list[bytes], repeats: int) -> dict:
    """`per_picture_ms`'s figures with the second cut-out made beside the first
    (`preprocess.SIDE_THREAD`, as shipped) and after it, taking turns call by call, and the
    ratio of their medians (this shared CPU's speed drifts between runs, not between calls)."""
    times: dict[bool, list[float]] = {True: [], False: []}
    try:
        for blob in blobs:
            for _ in range(repeats):
                for on in (True, False):
                    preprocess.SIDE_THREAD = on
                    times[on] += timed(lambda blob=blob: classifier.classify_one(blob), 1)
    finally:
        preprocess.SIDE_THREAD = True
    on, off = (1000 * statistics.median(times[k]) for k in (True, False))
    return {"n_pictures": len(blobs), "median_ms_beside": on, "median_ms_after": off,
            "ratio": on / off}


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
    result["side_thread"] = side_thread_times(classifier, real, args.repeats)

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
