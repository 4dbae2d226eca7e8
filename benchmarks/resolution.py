"""Experiment: does a network that sees a photo at 3x Fashion-MNIST's resolution lose less to
striped and checked cloth? (issue 15: the hard set's gap)

    python benchmarks/resolution.py [--factor 3] [--synthetic 15000] [--epochs 4]
        [--hard 2000] [--out benchmarks/results/resolution.json] [--data-dir DIR]

At 28 px a dye's stripes and checks (0.8-2.8 output pixels apart) alias into the lines that
tell a shirt, pullover and coat apart (docs/design.md); what they hide is gone for a network
that sees 28 px. This script asks whether seeing more pixels gives it back, with everything
else held equal. Two fine-tunes of the shipped default start from the same function:

- "28 px": the network as shipped, fed each input area-averaged by `--factor` (84 -> 28 px);
- "84 px": the same weights, its first 3x3 convolution enlarged to a (3f)x(3f) one with stride
  f (each weight spread over an f x f block, divided by f^2), fed the input itself. On any
  input it computes exactly what the first arm computes on the area-averaged one, so the two
  answer alike before training; only the 84 px arm's first layer can learn to use detail
  finer than 28 px.

Both are fine-tuned on the same batches: the Fashion-MNIST training part enlarged f times
(each pixel an f x f block), plus synthetic hard photos of training images
(`render.hard_photo`) converted to f*28 px by `predict`'s preprocessing with the garment's
grey levels taken from the ~256 px work image instead of GrabCut's 96 px copy (the mask is
enlarged to it). Augmentation (mirror, f*2-pixel translation, random erasing) works at the
fine size, so both arms see the same augmented pictures. Scored on the model's validation
split: clean (mirror), and the first `--hard` images as hard photos (photo_accuracy.py's
seed, so the same scenes as its --hard --split val), per dye; paired sign test between the
arms. A photo in which no garment is found is answered like any other here (photo_accuracy.py
counts it wrong): both arms see the same inputs. The shipped default is scored on the 28 px
inputs too, for reference. Nothing here ships: a network that sees more than 28 px would be a
second input path for photos.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from common import load_data, parser, sign_test, write_result
from photo_accuracy import PhotoStream, evaluation_set
from PIL import Image
from torch import nn
from tqdm import tqdm
from weight_interpolation import hard_figures

import fashion_cnn.preprocess as preprocess_module
import fashion_cnn.render as render_module
from fashion_cnn.evaluate import predict_logits
from fashion_cnn.files import cached_tensor, content_key
from fashion_cnn.models import BestCNN, load_checkpoint
from fashion_cnn.predict import Classifier
from fashion_cnn.preprocess import PreprocessConfig, find_garment, garment_image, model_input
from fashion_cnn.render import hard_photo, synthetic_photos
from fashion_cnn.training import TrainConfig, run_split
from fashion_cnn.training.config import Augment
from fashion_cnn.training.loop import train_epoch
from fashion_cnn.training.steps import PlainStep

CACHE = Path.home() / ".cache" / "fashion-cnn" / "resolution"
SYNTHETIC_SIZES = (256, 600)  # px, the training photos' long side: at least the work size
IMAGE = 28  # px, Fashion-MNIST's side
# the code that draws and converts the cached photos: any change to it renders them again
SOURCES = [__file__, render_module.__file__, preprocess_module.__file__]


# ---------------------------------------------------------------------------------------------
# Photos at f*28 px: the cut-out's grey levels from the work image


def cut_out_fine(img: Image.Image, config: PreprocessConfig) -> tuple[np.ndarray, float | None]:
    """`preprocess.cut_out`, the garment's grey levels taken from `img` (the ~256 px work
    image) rather than from GrabCut's fg_size copy, whose mask is enlarged to the work image
    (bilinear, thresholded at one half): at f*28 px the 96 px copy would be the limit."""
    found = find_garment(img, config)
    if found is None:
        return np.zeros((config.size, config.size), np.uint8), None
    _, mask, apart = found
    big = Image.fromarray(mask.astype(np.uint8) * 255).resize(img.size, Image.Resampling.BILINEAR)
    mask = np.asarray(big) >= 128
    lum = np.asarray(img.convert("L"), np.float32)
    return garment_image(lum, mask if mask.any() else np.ones_like(mask), config), apart


def to_input(blob: bytes, config: PreprocessConfig) -> np.ndarray:
    """An encoded photo -> uint8 [size, size]: `preprocess` with `cut_out_fine`."""
    with mock.patch.object(preprocess_module, "cut_out", cut_out_fine):
        return model_input(blob, config)


def synthetic(images: torch.Tensor, seed: int, config: PreprocessConfig) -> torch.Tensor:
    """uint8 [N, 28, 28] training images -> uint8 [N, size, size] hard photos as inputs:
    `render.synthetic_photos` at SYNTHETIC_SIZES with `cut_out_fine`; cached here, by this
    code too."""
    x = np.ascontiguousarray(images.numpy())
    key = content_key(x.tobytes(), [seed, config.to_dict(), SYNTHETIC_SIZES], SOURCES)

    def make() -> torch.Tensor:
        # the renderer's worker processes are forked inside the patch, so they inherit it
        with mock.patch.object(preprocess_module, "cut_out", cut_out_fine):
            return synthetic_photos(images, seed, config, cache_dir=None, sizes=SYNTHETIC_SIZES)
    return cached_tensor(CACHE / f"synthetic-{key}.pt", make)


def hard_photos(images: torch.Tensor, labels: torch.Tensor, config: PreprocessConfig
                ) -> dict[str, Any]:
    """The hard photos of photo_accuracy.py --hard (its seed 0) for these images, converted
    to uint8 [N, size, size] inputs, with each photo's dye; cached."""
    key = content_key(images.numpy().tobytes(), [config.to_dict()], SOURCES)

    def make() -> dict[str, Any]:
        stream = PhotoStream(hard_photo, np.random.default_rng(0))
        with ProcessPoolExecutor(2) as pool:
            inputs = list(tqdm(pool.map(to_input, stream.photos(images, labels),
                                        [config] * len(images), chunksize=8),
                               total=len(images), desc="hard photos", unit="photo"))
        return {"inputs": torch.from_numpy(np.stack(inputs)),
                "patterns": [c["pattern"] for c in stream.conditions]}
    return cached_tensor(CACHE / f"hard-{key}.pt", make)


# ---------------------------------------------------------------------------------------------
# The two arms


class AreaAveraged(nn.Module):
    """A 28 px network fed inputs [N, f*28, f*28] area-averaged by f (0..255 floats)."""

    def __init__(self, net: nn.Module, factor: int):
        super().__init__()
        self.net, self.factor = net, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(F.avg_pool2d(x.float().unsqueeze(1), self.factor))


def fine_input(net: BestCNN, factor: int) -> BestCNN:
    """A copy of `net` whose first 3x3 convolution (padding 1) becomes a (3f)x(3f) one with
    stride f and padding f, each weight spread over an f x f block / f^2: on inputs f times
    larger it equals `net` on their f x f area averages."""
    fine = copy.deepcopy(net)
    conv = fine.features[0][0]
    big = nn.Conv2d(1, conv.out_channels, 3 * factor, stride=factor, padding=factor, bias=False)
    with torch.no_grad():
        big.weight.copy_(conv.weight.repeat_interleave(factor, 2)
                         .repeat_interleave(factor, 3) / factor ** 2)
    fine.features[0][0] = big
    return fine


def enlarged(images: torch.Tensor, factor: int) -> torch.Tensor:
    """uint8 [N, 28, 28] -> uint8 [N, f*28, f*28], each pixel an f x f block."""
    return images.repeat_interleave(factor, 1).repeat_interleave(factor, 2)


def fine_tune(net: nn.Module, images: torch.Tensor, labels: torch.Tensor,
              config: TrainConfig) -> float:
    """Fine-tune `net` in place as PlainStep and the training loop do; training seconds."""
    step = PlainStep(net, config, -(-len(labels) // config.batch_size))
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        record = train_epoch(step, net, config, images, labels, epoch)
        print(f"  epoch {epoch}: loss {record['train_loss']:.4f}, accuracy "
              f"{100 * record['train_accuracy']:.2f}%, {record['epoch_seconds']:.0f} s", flush=True)
    return time.perf_counter() - start


def scored(net: nn.Module, clean: torch.Tensor, labels: torch.Tensor, hard: dict[str, Any]
           ) -> tuple[dict[str, Any], torch.Tensor]:
    """Validation accuracy (mirror), the hard photos' accuracy (weight_interpolation.py's
    `hard_figures`) overall and per dye, and the gap to the same images clean; with the hard
    photos answered right [n]."""
    net.eval()
    val = (predict_logits(net, clean).argmax(1) == labels).float().mean().item()
    figures, right = hard_figures(net, hard, None)
    patterns = np.array(hard["patterns"])
    by_dye = {p: right[torch.from_numpy(patterns == p)].float().mean().item()
              for p in sorted(set(patterns))}
    return {"val_accuracy": val, "hard_accuracy": figures["photo_accuracy"],
            "hard_clean_accuracy": figures["clean_accuracy"],
            "gap_points": figures["gap_points"], "hard_by_pattern": by_dye}, right


def arms(base: BestCNN, factor: int, probe: torch.Tensor) -> Iterator[tuple[str, nn.Module]]:
    """The two arms, each a fresh copy of `base`; checked to answer alike on `probe`
    (uint8 [n, f*28, f*28]) before training."""
    coarse, fine = AreaAveraged(copy.deepcopy(base), factor), fine_input(base, factor)
    gap = (predict_logits(coarse, probe) - predict_logits(fine, probe)).abs().max().item()
    assert gap < 1e-3, f"the arms differ before training by {gap}"
    yield f"{IMAGE} px", coarse
    yield f"{IMAGE * factor} px", fine


def main() -> None:
    p = parser(__doc__, "resolution")
    p.add_argument("--factor", type=int, default=3)
    p.add_argument("--synthetic", type=int, default=15000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--hard", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data = load_data(args)
    classifier = Classifier("best", backend="torch")
    base, meta = load_checkpoint("best")
    f = args.factor
    config = replace(PreprocessConfig.from_dict(meta["image_preprocessing"]), size=IMAGE * f)
    train_idx, val_idx = run_split(len(data.train_labels), meta["config"])
    order = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(args.seed))
    chosen = train_idx[order[:args.synthetic]]
    photos = synthetic(data.train_images[chosen], args.seed, config)
    images = torch.cat([enlarged(data.train_images[train_idx], f), photos])
    labels = torch.cat([data.train_labels[train_idx], data.train_labels[chosen]])
    hard_images, hard_labels = evaluation_set(data, classifier, "val", args.hard)
    # as hard_figures reads them: every photo answered, found or not (see the docstring)
    hard = {**hard_photos(hard_images, hard_labels, config), "labels": hard_labels,
            "images": enlarged(hard_images, f),
            "found": torch.ones(len(hard_labels), dtype=torch.bool)}
    clean, clean_labels = enlarged(data.train_images[val_idx], f), data.train_labels[val_idx]
    train = TrainConfig(model="best", epochs=args.epochs, batch_size=128, lr=0.01,
                        momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle",
                        label_smoothing=0.1, bf16=True, channels_last=True, seed=args.seed,
                        augment=Augment(flip=True, translate=2 * f, erase=0.5))
    rows, answers = [], {}
    reference = AreaAveraged(base, f)
    row, answers["shipped"] = scored(reference, clean, clean_labels, hard)
    rows.append({"arm": "shipped default, not fine-tuned", **row})
    print(rows[-1], flush=True)
    for name, net in arms(base, f, hard["inputs"][:256]):
        seconds = fine_tune(net, images, labels, train)
        row, answers[name] = scored(net, clean, clean_labels, hard)
        rows.append({"arm": name, "train_seconds": seconds, **row})
        print(rows[-1], flush=True)
    coarse, fine = (answers[row["arm"]] for row in rows[1:])
    won, lost = int((fine & ~coarse).sum()), int((coarse & ~fine).sum())
    write_result(args.out, {
        "factor": f, "synthetic": args.synthetic, "epochs": args.epochs, "hard_photos": args.hard,
        "train_images": len(labels), "train_config": asdict(train), "rows": rows,
        "fine_against_coarse": {"won": won, "lost": lost, "sign_test_p": sign_test(won, lost)},
    }, seed=args.seed, checksums=data.checksums)


if __name__ == "__main__":
    main()
