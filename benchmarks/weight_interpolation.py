"""Benchmark: interpolating the weights of a model and its photo fine-tune (WiSE-FT).

    python benchmarks/weight_interpolation.py [--base runs/wise/best-photos-seed0/model.pt]
        [--tuned runs/photo-views7-crop0-seed0] [--alphas 0 0.25 0.5 0.75 1]
        [--retaken 4] [--hard 0] [--until LAYER ...] [--ensemble] [--mirror]
        [--runs runs/interpolated]
        [--out benchmarks/results/...json]

Wortsman et al. 2022 ("Robust fine-tuning of zero-shot models") keep what a model knew before
a fine-tune by averaging its weights with the fine-tuned ones: theta = (1 - alpha) base +
alpha tuned. Here the base is the default shipped until 2026-12-04 (recorded as `best`; its
files, rebuilt as a run folder, are in runs/wise/best-photos-seed0) and the tuned model its
fine-tune with retaken views of the real photos (benchmarks/photo_views.py's V = 7, crop 0),
which gains on the real photos and lost 0.2 points of Fashion-MNIST test accuracy. Both come
from the same weights, so their average is a working network; batch-norm statistics are
averaged too. Alpha 0.25 shipped as the default (scripts/ship_model.py --average-with) until
2026-12-05, when a longer fine-tune of it replaced it (docs/design.md).

Every alpha is written as a checkpoint into RUNS/alpha{alpha} (its "unsure" threshold chosen on
the real validation photos, as training chooses it) and scored on validation splits only, with
the base's test-time mirror (with --mirror, with it whatever the base has: a run's model.pt has
none, the shipped default has it): Fashion-MNIST's (the base's own held-out 6,000), the real
validation photos, and the same photos retaken RETAKEN times (benchmarks/real_photos.py). With
--hard N, also the first N of those 6,000 as hard synthetic photos (photo_accuracy.py --hard
--split val --n N): rendered and cut out once per base (cached in
~/.cache/fashion-cnn/hard-inputs), so every alpha answers the same model inputs, with a paired
sign test against the base (alpha 0) on the photos one answers right and the other wrong: what
a candidate default's ship rule asks (docs/design.md).

With --until LAYER ... (models.layer_names: features.0 ... head), each alpha is scored with
only the layers up to each LAYER in turn averaged, the later ones the base's (surgical: a
fine-tune's early layers for what changed in the input, the base's late ones for what it
knew), one row per LAYER and alpha in RUNS/alpha{alpha}-{LAYER} (alpha 0 once: the base).

With --ensemble, two more rows: the base and the tuned model not averaged but answering
together (models.Ensemble, logits averaged), each member without the mirror (two forward
passes a picture, as one model with the mirror) and with it (four), in RUNS/ensemble[-mirror].
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import photo_accuracy
import torch
from common import load_data, parser, sign_test, write_result
from photo_accuracy import PhotoStream, evaluation_set
from photo_views import photo_figures
from real_photos import retaken

import fashion_cnn
from fashion_cnn.evaluate import Forward, loss_and_accuracy, predict_logits
from fashion_cnn.files import cached_tensor, content_key
from fashion_cnn.models import (
    build_model,
    interpolate_weights,
    load_checkpoint,
    save_checkpoint,
    set_tta,
)
from fashion_cnn.photos import find_photos_dir, list_photos
from fashion_cnn.predict import Classifier
from fashion_cnn.provenance import runs_behind
from fashion_cnn.render import hard_photo
from fashion_cnn.training.run import run_split, score_on_photos, unsure_rule

# ---------------------------------------------------------------------------------------------
# The hard synthetic photos: cut out once, answered by every alpha


HARD_CACHE = Path.home() / ".cache" / "fashion-cnn" / "hard-inputs"


def hard_inputs(base: Path, data: Any, n: int, cache_dir: Path | None = HARD_CACHE
                ) -> dict[str, torch.Tensor]:
    """The first n images of the base's validation split as hard photos, through `predict`'s
    preprocessing: "images" and "labels" [n], "inputs" uint8 [n, 28, 28] (what the model
    sees) and "found" bool [n] (False: no garment found, never right).

    Rendering and cutting out is most of a scoring's time, and every candidate against the
    same base answers the same inputs: cached under `cache_dir` by the base checkpoint's bytes,
    n, the data and all the code that draws and cuts them out (the package and
    photo_accuracy.py); `cache_dir=None` never caches."""
    package = Path(fashion_cnn.__file__).parent
    key = content_key(Path(base).read_bytes(), [n, data.checksums],
                      [*sorted(package.rglob("*.py")), Path(photo_accuracy.__file__)])
    cache = None if cache_dir is None else cache_dir / f"{key}.pt"
    return cached_tensor(cache, lambda: render_hard_inputs(base, data, n))


def render_hard_inputs(base: Path, data: Any, n: int) -> dict[str, torch.Tensor]:
    """`hard_inputs` without the cache."""
    classifier = Classifier(base, backend="torch")
    # one cut-out per photo: with the second, the base would choose the inputs others answer
    classifier.config = replace(classifier.config, fg_edge=0.0)
    images, labels = evaluation_set(data, classifier, "val", n)
    stream = PhotoStream(hard_photo, np.random.default_rng(0))  # photo_accuracy.py's seed
    predictions = list(classifier.iter_classify(stream.photos(images, labels),
                                                map(str, range(n)), keep_inputs=True))
    inputs = np.stack([p.input.image for p in predictions])
    return {"images": images, "labels": labels, "inputs": torch.from_numpy(inputs),
            "found": torch.tensor([p.index is not None for p in predictions])}


def hard_figures(net: Forward, hard: dict[str, torch.Tensor],
                 base_right: torch.Tensor | None) -> tuple[dict[str, Any], torch.Tensor]:
    """A network's accuracy on the hard photos and on their clean images (the gap is the
    photos' alone), and the photos it won and lost against the base's answers `base_right`;
    with its right answers [n], for the base's turn."""
    labels = hard["labels"]
    right = (predict_logits(net, hard["inputs"]).argmax(1) == labels) & hard["found"]
    clean = (predict_logits(net, hard["images"]).argmax(1) == labels).float().mean().item()
    figures = {"n": len(labels), "photo_accuracy": right.float().mean().item(),
               "clean_accuracy": clean}
    figures["gap_points"] = 100 * (clean - figures["photo_accuracy"])
    if base_right is not None:
        won, lost = int((right & ~base_right).sum()), int((~right & base_right).sum())
        figures |= {"won": won, "lost": lost, "sign_test_p": sign_test(won, lost)}
    return figures, right


# ---------------------------------------------------------------------------------------------
# One alpha


def load_base(path: Path, mirror: bool) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The base checkpoint, with the test-time mirror if `mirror` (else as saved)."""
    base, meta = load_checkpoint(path)
    if mirror:
        set_tta(base, True)
    return base, meta


def interpolated(alpha: float, until: str | None, tuned_state: dict[str, torch.Tensor],
                 base_path: Path, mirror: bool) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The base with (1 - alpha) of its weights and alpha of the tuned ones (`until`: only the
    layers up to this one averaged; None: all), and the base's metadata."""
    base, meta = load_base(base_path, mirror)  # afresh: interpolate works in place
    interpolate_weights(base, tuned_state, alpha, until)
    return base, meta


def ensembled(tuned_state: dict[str, torch.Tensor], base_path: Path, mirror: bool
              ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The base and the tuned model as a two-member ensemble (logits averaged), each with the
    mirror or without it, and the base's metadata."""
    base, meta = load_checkpoint(base_path)
    # the mirror goes into arch_kwargs too: the checkpoint written from it is loaded again
    kwargs = {**meta["arch_kwargs"], "tta": mirror}
    net = build_model("ensemble", members=2, arch=meta["arch"], **kwargs)
    net.members[0].load_state_dict(base.state_dict())
    net.members[1].load_state_dict(tuned_state)
    return net.eval(), meta


def scored(net: torch.nn.Module, meta: dict[str, Any], name: str, args: Any, data: Any,
           val_idx: torch.Tensor, photos: list[tuple[Path, str]],
           hard: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """A combination's checkpoint (written to RUNS/name) and its validation figures, the hard
    photos' too if given (`hard_inputs` with the base's right answers as "base_right")."""
    images, labels = data.train_images[val_idx], data.train_labels[val_idx]
    figures = {"fashion_mnist_val_accuracy": loss_and_accuracy(net, images, labels)[1]}
    mirror, net.tta = net.tta, False
    figures["fashion_mnist_val_accuracy_without_tta"] = loss_and_accuracy(net, images,
                                                                         labels)[1]
    net.tta = mirror
    photo_scores = score_on_photos(net, progress=False)
    path = args.runs / name / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, net, config=meta["config"],
                    metrics={"val_accuracy": figures["fashion_mnist_val_accuracy"]},
                    data_checksums=meta["data_checksums"], unsure=unsure_rule(photo_scores),
                    calibration=meta.get("calibration"))
    if hard is not None:
        figures["hard"] = hard_figures(net, hard, hard["base_right"])[0]
    again = retaken(Classifier(path, backend="torch"), photos, args.retaken).score()
    return {**figures, "photos": photo_figures(photo_scores), "retaken": photo_figures(again)}


def training_behind(tuned: Path) -> list[dict[str, Any]]:
    """The training runs behind the tuned model, oldest first (provenance.runs_behind: down
    to a run from scratch or a shipped model's `lineage`), which a candidate default's
    training time adds up; none if the model has no run folder."""
    folder = tuned if tuned.is_dir() else tuned.parent
    return runs_behind(folder, None) if (folder / "metrics.json").is_file() else []


def report_row(name: str, row: dict[str, Any]) -> None:
    """One line of a row's figures on stderr."""
    fm, r, a = (row[k] for k in ("fashion_mnist_val_accuracy", "photos", "retaken"))
    h = row.get("hard")
    print(f"{name}: Fashion-MNIST val {100 * fm:.2f}%"
          f"; photos {100 * r['strict_accuracy']:.1f}% / {100 * r['lenient_accuracy']:.1f}%"
          f" / {r['out_of_class_auroc']:.3f} / {100 * r['out_of_class_rejection']:.1f}%"
          f"; retaken {100 * a['strict_accuracy']:.1f}%"
          + (f"; hard {100 * h['photo_accuracy']:.2f}% (won {h['won']}, lost {h['lost']},"
             f" p = {h['sign_test_p']:.3f})" if h else ""), file=sys.stderr)


def held_out(meta: dict, val_idx: torch.Tensor, n: int) -> bool:
    """Whether a checkpoint's run held out exactly the images `val_idx` of the n training
    images (a run that does not say, may not have)."""
    saved = meta.get("config")
    return bool(saved) and torch.equal(run_split(n, saved)[1], val_idx)


def main() -> None:
    p = parser(__doc__, "weight_interpolation", runs="runs/interpolated")
    p.add_argument("--base", default="runs/wise/best-photos-seed0/model.pt")
    p.add_argument("--tuned", default="runs/photo-views7-crop0-seed0")
    p.add_argument("--alphas", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1])
    p.add_argument("--retaken", type=int, default=4)
    p.add_argument("--hard", type=int, default=0, metavar="N",
                   help="also score N hard synthetic validation photos (0: none)")
    p.add_argument("--until", nargs="+", default=[None], metavar="LAYER",
                   help="average only the layers up to LAYER (each in turn; default: all)")
    p.add_argument("--mirror", action="store_true",
                   help="score every alpha with the test-time mirror, whatever the base has")
    p.add_argument("--ensemble", action="store_true",
                   help="also score the base and the tuned model as a two-member ensemble "
                        "(logits averaged), without and with the mirror")
    args = p.parse_args()
    data = load_data(args)
    base, meta = load_base(args.base, args.mirror)
    hard = None
    if args.hard:
        hard = hard_inputs(args.base, data, args.hard)
        hard["base_right"] = hard_figures(base, hard, None)[1]
    _, val_idx = run_split(len(data.train_labels), meta["config"])
    photos = list_photos(find_photos_dir(), "validation")
    tuned, tuned_meta = load_checkpoint(args.tuned)
    if not held_out(tuned_meta, val_idx, len(data.train_labels)):
        sys.exit(f"{args.tuned} did not hold out {args.base}'s validation split (or does not "
                 "say what it held out): it may have trained on images scored here as "
                 "validation. Compare models trained with the same --val-fraction and seed.")
    tuned_state = tuned.state_dict()
    rows = []
    # alpha 0 is the base whatever layers would move: scored once
    for until, alpha in dict.fromkeys((until if alpha else None, alpha) for until, alpha
                                      in itertools.product(args.until, args.alphas)):
        name = f"alpha{alpha:g}" + (f"-{until}" if until else "")
        net, meta = interpolated(alpha, until, tuned_state, args.base, args.mirror)
        rows.append({"alpha": alpha, "until": until,
                     **scored(net, meta, name, args, data, val_idx, photos, hard)})
        report_row(name, rows[-1])
    for mirror in [False, True] if args.ensemble else []:
        name = "ensemble" + ("-mirror" if mirror else "")
        net, meta = ensembled(tuned_state, args.base, mirror)
        rows.append({"alpha": None, "until": None, "ensemble": True, "mirror": mirror,
                     **scored(net, meta, name, args, data, val_idx, photos, hard)})
        report_row(name, rows[-1])
    write_result(args.out, {"base": str(args.base), "tuned": str(args.tuned),
                            # every alpha answers with the base's mirror, or without it
                            "base_mirror": bool(getattr(base, "tta", False)),
                            "tuned_training": training_behind(Path(args.tuned)),
                            "retaken_views": args.retaken, "hard_photos": args.hard,
                            "rows": rows}, seed=None, checksums=data.checksums)


if __name__ == "__main__":
    main()
