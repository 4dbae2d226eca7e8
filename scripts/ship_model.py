"""Train a shipped model's recipe on some seeds and ship seed 0 inside the package.

    python scripts/ship_model.py --model seed [--runs runs/ship-seed] [--seeds 0 1 2]
    python scripts/ship_model.py --model best [--runs runs] [--seeds 0 1] [--photos [--init F]
        [--tune KEY=VALUE ...] [--average-with RUN --alpha A]]
        [--dest DIR] [--data-dir DIR] [--epochs N]
    python scripts/ship_model.py --model best --add-calibration [--dest DIR]
    python scripts/ship_model.py --model best --rechoose-unsure [--preprocess KEY=VALUE ...]
        [--dest DIR]

seed: the classic Keras CNN with the faithful recipe, plain PyTorch autograd (`fused=False`),
shipped with int8 weights (one float32 scale per output row). Runs go to RUNS/seedN.
best: the best recipe (`fashion-cnn train --model best`), shipped with float16 weights;
test-time flip averaging is switched on only if it helps on seed 0's validation split. Runs go
to RUNS/best-seedN. With --photos (the shipped default since the real-photo work), each
seed's run is then fine-tuned on Fashion-MNIST plus the real photos' train split
(`--photos --init RUNS/best-seedN/model.pt`, PHOTO_TUNING below) into RUNS/best-photos-seedN,
which is what ships, with the "unsure" threshold chosen on the photos' validation split.
`--init F` fine-tunes seed 0 from checkpoint F instead of training its base run, and
`--tune KEY=VALUE` (repeatable) changes a fine-tuning setting from PHOTO_TUNING's (`--tune
seed=1 --tune split_seed=0`: fresh synthetic photos and views, on the base's validation split).
`--average-with RUN --alpha A` ships seed 0's weights averaged with RUN's model.pt (same
architecture): (1 - A) seed 0 + A RUN, batch-norm statistics included (WiSE-FT; the alpha
chosen on validation by benchmarks/weight_interpolation.py and the rule in docs/design.md).

A finished run in RUNS is reused and an interrupted one resumes, if its config is the one
asked for; a folder holding a run of another config (say an earlier candidate's fine-tune from
another --init) is refused, so give each candidate its own --runs. Seed 0 is shipped whatever the
scores (declared before training, so the test set picks no seed; it does gate a candidate, as
docs/design.md says under "Where the test set gates a choice"); what is scored is what is
shipped: the weights go through the compression round trip first. Writes DEST/MODEL/: model.pt,
metrics.json, learning_curves.png, confusion_matrix.png and MODEL_CARD.md (model_card.py).
DEST defaults to the package's weights folder (src/fashion_cnn/weights). The best model's
checkpoint also carries the int8 graph's calibration images (1,000 of its training part), so
`--backend auto` runs it as int8 anywhere; metrics.json and the card record that graph's test
accuracy. `--add-calibration` does only that, for a best model shipped before it existed.
`--rechoose-unsure` gives a shipped best model the unsure rule `unsure_rule` chooses now (its
weights unchanged; metrics.json's `same_weights` keeps the checkpoint's former SHA-256, so the
figures measured on those weights still count as the shipped model's where the rule plays no
part: benchmarks/report.py). With `--preprocess KEY=VALUE` (repeatable) the checkpoint's
picture preprocessing changes too (e.g. fg_iterations=2, GrabCut's rounds) before the rule is
chosen; every former SHA-256 then also joins `other_preprocessing`, since a photo's answer and
time measured on them no longer count (only figures on 28x28 images do).

--epochs overrides the recipe's epoch count, and --no-verify accepts data that is not the
official files: both for quick tests only, never for a shipped model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from model_card import best_card, seed_card
from torch import nn

from fashion_cnn.data import FashionMNIST, load_fashion_mnist
from fashion_cnn.errors import FashionCNNError
from fashion_cnn.evaluate import evaluate, loss_and_accuracy, predict_logits
from fashion_cnn.export import calibration_sample
from fashion_cnn.files import atomic_path, file_sha256, write_json
from fashion_cnn.models import (
    compress_state,
    count_parameters,
    expand_state,
    interpolate_weights,
    load_checkpoint,
    save_checkpoint,
    set_tta,
    shipped_model_dir,
)
from fashion_cnn.plots import confusion_plot
from fashion_cnn.predict import Classifier
from fashion_cnn.preprocess import PreprocessConfig
from fashion_cnn.provenance import provenance, run_lineage, runs_behind
from fashion_cnn.training import TrainConfig, recipe_config, run_split, run_training
from fashion_cnn.training.config import setting_argument
from fashion_cnn.training.run import (
    run_finished,
    saved_config,
    score_on_photos,
    test_scores,
    unsure_rule,
)

SHIPPED_SEED = 0
# Fine-tuning the best model on real photos too: a few epochs of the best recipe at a lower
# peak learning rate (0.02, 0.01, 0.005 tried: 0.01 kept both validation splits best).
PHOTO_TUNING = {"photos": True, "synthetic": 15000, "epochs": 4, "lr": 0.01}


@dataclass
class Shipped:
    """What scoring the shipped weights gives: the test report, the checkpoint's own metrics
    and the model's entries of metrics.json."""

    report: dict[str, Any]
    checkpoint_metrics: dict[str, Any]
    summary: dict[str, Any]


@dataclass(frozen=True)
class Recipe:
    """How one shipped model is trained, compressed, scored and described."""

    options: dict[str, Any]  # recipe_config's arguments, besides seed and epochs
    weights: str  # compress_state's dtype
    runs: str  # default --runs
    run_name: str  # a seed's run folder in --runs, formatted with the seed
    seeds: tuple[int, ...]  # default --seeds
    score: Callable[..., Shipped]
    card: Callable[[dict[str, Any], Path, str], str]  # (metrics.json, model.pt, weights)


# ---------------------------------------------------------------------------------------------
# Training and scoring


def finished_run(out: Path, data: FashionMNIST) -> dict[str, Any] | None:
    """metrics.json of the finished run in `out`, or None. A run trained with `--no-test`
    (a candidate chosen on validation) has its test set scored now, once, as the candidate
    that ships: the card reports the test accuracy the run was trained to."""
    if not run_finished(out):
        return None
    metrics = json.loads((out / "metrics.json").read_text())
    if "test_accuracy" not in metrics:
        net, _ = load_checkpoint(out / "model.pt")
        metrics |= {**test_scores(net.eval(), data), "test_scored_by": "ship_model.py"}
        write_json(out / "metrics.json", metrics)
    return metrics


def same_run(out: Path, config: TrainConfig) -> bool:
    """True if `out` holds a run (finished or interrupted) of exactly `config`, False if it
    holds none; exits if it holds another, which would otherwise ship in its place."""
    if (out / "config.json").is_file():
        saved = asdict(saved_config(out / "config.json"))
    elif (out / "metrics.json").is_file():  # a finished run's metrics carry its config
        saved = asdict(TrainConfig.from_dict(json.loads((out / "metrics.json").read_text())
                                             ["config"]))
    else:
        return False
    asked = asdict(config)
    differ = [f"{k} {saved[k]!r}, not {asked[k]!r}" for k in asked if saved[k] != asked[k]]
    if differ:
        raise SystemExit(f"{out} holds a run of another config ({'; '.join(differ)}). Give "
                         "this one its own --runs folder, or move that run away.")
    return True


def train_or_load(config: TrainConfig, data: FashionMNIST, out: Path) -> dict[str, Any]:
    """metrics.json of the run of `config` in `out`: read if finished, resumed if
    interrupted, else trained."""
    found = same_run(out, config)
    if metrics := finished_run(out, data):
        return metrics
    return run_training(config, data, out, resume=found)


def accuracy(net: nn.Module, images, labels, tta: bool) -> float:
    """Accuracy of `net` with test-time flip averaging on or off (left as set)."""
    net.tta = tta
    return loss_and_accuracy(net, images, labels)[1]


def photo_scores(net: nn.Module, tta: bool) -> dict[str, Any]:
    """The real photos' validation scores (score_on_photos), with TTA on or off."""
    net.tta = tta
    return score_on_photos(net, progress=False)


def score_seed(net: nn.Module, meta: dict, runs: dict[int, dict], data: FashionMNIST,
               run_dirs: dict[int, Path]) -> Shipped:
    """The seed model: the shipped weights on the test set; every seed's float32 score from
    its run, their mean and spread."""
    report = evaluate(net, data.test_images, data.test_labels)
    accs = [100 * m["test_accuracy"] for m in runs.values()]
    return Shipped(
        report=report,
        checkpoint_metrics={"test_accuracy": report["accuracy"], "test_loss": report["loss"],
                            "float32_test_accuracy": meta["metrics"]["test_accuracy"]},
        summary={"shipped_test_accuracy": report["accuracy"],
                 "trained_test_accuracy": runs[SHIPPED_SEED]["test_accuracy"],
                 "seeds": {str(s): m["test_accuracy"] for s, m in runs.items()},
                 "mean_test_accuracy": statistics.mean(accs) / 100,
                 "std_test_accuracy": statistics.pstdev(accs) / 100})


def score_best(net: nn.Module, meta: dict, runs: dict[int, dict], data: FashionMNIST,
               run_dirs: dict[int, Path]) -> Shipped:
    """The best model: TTA decided on the validation split, then the shipped weights on the
    test set with and without it; every seed's float32 model on the test set, both ways."""
    test = data.test_images, data.test_labels
    seeds = {}
    for s, run_dir in run_dirs.items():
        trained, _ = load_checkpoint(run_dir / "model.pt")
        seeds[str(s)] = {"test_accuracy": accuracy(trained, *test, False),
                         "test_accuracy_tta": accuracy(trained, *test, True),
                         "train_seconds": runs[s]["train_seconds"],
                         "images_per_second": runs[s]["images_per_second"]}
    _, val = run_split(len(data.train_labels), meta["config"])
    val_set = data.train_images[val], data.train_labels[val]
    validation = {"plain": accuracy(net, *val_set, False), "tta": accuracy(net, *val_set, True)}
    gain = validation["tta"] - validation["plain"]
    photos = {}
    if meta["config"].get("photos"):  # the real photos' validation split counts as much
        photos = {tta: photo_scores(net, tta) for tta in (False, True)}
        validation.update(photos_plain=photos[False]["lenient_accuracy"],
                          photos_tta=photos[True]["lenient_accuracy"])
        gain += validation["photos_tta"] - validation["photos_plain"]
    use_tta = gain > 0  # decided on validation, not on test
    test_plain = accuracy(net, *test, False)
    set_tta(net, use_tta)
    report = evaluate(net, *test)
    return Shipped(
        report=report,
        checkpoint_metrics={"test_accuracy": report["accuracy"], "test_loss": report["loss"],
                            "test_accuracy_without_tta": test_plain, "tta": use_tta},
        summary={"weights": BEST.weights, "tta": use_tta, "validation_accuracy": validation,
                 "shipped_test_accuracy": report["accuracy"],
                 "shipped_test_accuracy_without_tta": test_plain, "seeds": seeds,
                 "mean_test_accuracy": statistics.mean(
                     v["test_accuracy"] for v in seeds.values()),
                 "parameters": count_parameters(net),
                 # scored as shipped: compressed weights, TTA as chosen
                 **({"photos": photos[use_tta]} if photos else {})})


SEED = Recipe(options={"recipe": "faithful", "fused": False}, weights="int8",
              runs="runs/ship-seed", run_name="seed{}", seeds=(0, 1, 2), score=score_seed,
              card=seed_card)
BEST = Recipe(options={"recipe": None, "model": "best"}, weights="float16", runs="runs",
              run_name="best-seed{}", seeds=(0, 1), score=score_best, card=best_card)
RECIPES = {"seed": SEED, "best": BEST}


# ---------------------------------------------------------------------------------------------
# Shipping


def averaged_with(net: nn.Module, run: Path, alpha: float) -> dict[str, Any]:
    """`net` <- (1 - alpha) net + alpha RUN's model (in place); what metrics.json records
    of it."""
    other, _ = load_checkpoint(run / "model.pt")
    try:
        interpolate_weights(net, other.state_dict(), alpha)
    except FashionCNNError as err:
        raise SystemExit(f"{run}: {err}") from None
    theirs = json.loads((run / "metrics.json").read_text())
    return {"with": str(run), "alpha": alpha, "with_command": theirs["command"],
            "with_config": theirs["config"], "with_sha256": file_sha256(run / "model.pt")}


# A shipped model is often a chain: a run from scratch, fine-tunes of it, weight averages. Its
# training time is every run whose weights went into it, each counted once
# (provenance.run_lineage follows the chain).


def lineage(run: dict[str, Any], averaging: dict[str, Any] | None) -> dict[str, Any]:
    """metrics.json's `lineage` (the runs behind the shipped weights, oldest first, each once)
    and `total_train_seconds` (None if a source is unknown)."""
    runs = run_lineage(run)
    if averaging:
        runs += runs_behind(Path(averaging["with"]), averaging.get("with_sha256"))
    unique = {(r["date"], r["command"], r.get("source")): r for r in runs}.values()
    ordered = sorted(unique, key=lambda r: r["date"] or "")
    times = [r["train_seconds"] for r in ordered]
    return {"lineage": ordered, "total_train_seconds": None if None in times else sum(times)}


def ship(name: str, dest: Path, run_dirs: dict[int, Path], runs: dict[int, dict],
         data: FashionMNIST, average: tuple[Path, float] | None = None) -> dict[str, Any]:
    """Compress seed 0's weights (averaged with another run's first, if `average` = (run,
    alpha)), score them and write the model's folder `dest`; returns its metrics.json."""
    recipe = RECIPES[name]
    net, meta = load_checkpoint(run_dirs[SHIPPED_SEED] / "model.pt")
    averaging = averaged_with(net, *average) if average else None
    chain = lineage(runs[SHIPPED_SEED], averaging)  # before DEST's files are replaced
    net.load_state_dict(expand_state(compress_state(net.state_dict(), recipe.weights)))
    shipped = recipe.score(net, meta, runs, data, run_dirs)
    photos = shipped.summary.get("photos")
    unsure = unsure_rule(photos) if photos else None
    dest.mkdir(parents=True, exist_ok=True)
    # The checkpoint's own metrics describe the shipped (compressed) weights.
    def write(calibration: torch.Tensor | None) -> None:
        save_checkpoint(dest / "model.pt", net, config=meta["config"],
                        metrics={**meta["metrics"], **shipped.checkpoint_metrics},
                        data_checksums=meta["data_checksums"], weights=recipe.weights,
                        unsure=unsure, calibration=calibration)

    write(calibration_sample(meta, data.train_images) if name == "best" else None)
    if name == "best":
        try:
            shipped.summary["int8"] = int8_scores(dest / "model.pt", data)
        except FashionCNNError as err:  # e.g. an undertrained model's near ties: no int8
            write(None)
            shipped.summary["int8"] = {"error": str(err)}
    confusion_plot(shipped.report["confusion_matrix"], dest / "confusion_matrix.png")
    shutil.copyfile(run_dirs[SHIPPED_SEED] / "learning_curves.png",
                    dest / "learning_curves.png")
    summary = {**provenance(SHIPPED_SEED, data.checksums), "shipped_seed": SHIPPED_SEED,
               **shipped.summary, **({"weight_average": averaging} if averaging else {}),
               **chain, "training_run": runs[SHIPPED_SEED], "evaluation": shipped.report}
    write_json(dest / "metrics.json", summary)
    with atomic_path(dest / "MODEL_CARD.md") as tmp:
        tmp.write_text(recipe.card(summary, dest / "model.pt", recipe.weights))
    return summary


def int8_scores(model: Path, data: FashionMNIST) -> dict[str, Any]:
    """The int8 graph `auto` runs for a checkpoint with calibration images: its test accuracy
    and how many test images get the PyTorch model's top class."""
    int8 = Classifier(model, backend="onnxruntime-int8")
    top = predict_logits(int8.logits, data.test_images).argmax(1)
    exact = predict_logits(int8.net, data.test_images).argmax(1)
    return {"calibration_images": len(int8.meta["calibration"]),
            "test_accuracy": float((top == data.test_labels).float().mean()),
            "same_top_class": int((top == exact).sum()), "n_images": len(top)}


def add_calibration(dest: Path, data: FashionMNIST) -> None:
    """Give an already shipped best model (DEST/best) its calibration images, so `auto` runs
    it as int8: the checkpoint gains them (nothing else in it changes), metrics.json gains the
    int8 scores and the card is written again."""
    path = dest / "model.pt"
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["calibration"] = calibration_sample(payload, data.train_images)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    summary = json.loads((dest / "metrics.json").read_text())
    summary["int8"] = int8_scores(path, data)
    write_json(dest / "metrics.json", summary)
    with atomic_path(dest / "MODEL_CARD.md") as tmp:
        tmp.write_text(BEST.card(summary, path, payload["weights_dtype"]))


def rechoose_unsure(dest: Path, preprocess: dict[str, Any] | None = None) -> None:
    """Give an already shipped best model (DEST/best) the unsure rule chosen as a new one's
    would be (`score_on_photos`, `unsure_rule`), after changing its picture preprocessing
    settings to `preprocess`'s if given: the checkpoint's `unsure` entry (and preprocessing)
    and metrics.json's photo scores are replaced, nothing else; the checkpoint's former SHA-256
    joins metrics.json's `same_weights` (and, with `preprocess`, every former one joins
    `other_preprocessing`), and the card is written again."""
    path = dest / "model.pt"
    former = file_sha256(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    before = PreprocessConfig.from_dict(payload["image_preprocessing"])
    config = replace(before, **(preprocess or {}))
    payload["image_preprocessing"] = config.to_dict()
    net, _ = load_checkpoint(path)  # test-time augmentation as shipped
    scores = score_on_photos(net, config, progress=False)
    payload["unsure"] = unsure_rule(scores)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    summary = json.loads((dest / "metrics.json").read_text())
    same = summary.get("same_weights", [])
    same = same + [former] * (former not in same)
    summary.update(photos=scores, same_weights=same)
    if preprocess:  # each setting's first value is the one the training converted with
        changed = summary.get("preprocessing_changed", {})
        for key, value in preprocess.items():
            changed[key] = {"from": changed.get(key, {}).get("from", getattr(before, key)),
                            "to": value}
        summary.update(preprocessing_changed=changed, other_preprocessing=same)
    write_json(dest / "metrics.json", summary)
    with atomic_path(dest / "MODEL_CARD.md") as tmp:
        tmp.write_text(BEST.card(summary, path, payload["weights_dtype"]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (argv: sys.argv[1:] when None), checked: a wrong one exits 2."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=list(RECIPES), required=True)
    parser.add_argument("--runs", type=Path, help="training runs (default: per model, above)")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="default: seed 0 1 2, best 0 1; must include 0")
    parser.add_argument("--dest", type=Path, default=shipped_model_dir("seed").parent,
                        help="the model goes to DEST/MODEL (default: the package's weights)")
    parser.add_argument("--data-dir", type=Path, help="folder with the four .gz files")
    parser.add_argument("--epochs", type=int, help="override the recipe's (quick tests only)")
    parser.add_argument("--no-verify", action="store_true",
                        help="accept data that is not the official files (tests only)")
    parser.add_argument("--photos", action="store_true",
                        help="best: fine-tune each run on the real photos too, and ship that")
    parser.add_argument("--init", type=Path,
                        help="with --photos: fine-tune seed 0 from this checkpoint instead")
    parser.add_argument("--tune", action="append", default=[], metavar="KEY=VALUE",
                        type=setting_argument(TrainConfig()),
                        help="with --photos: a fine-tuning setting instead of PHOTO_TUNING's or "
                        "the recipe's, e.g. --tune epochs=12")
    parser.add_argument("--average-with", type=Path, metavar="RUN",
                        help="with --photos: ship seed 0 averaged with RUN's model (--alpha)")
    parser.add_argument("--alpha", type=float, help="RUN's share of the averaged weights")
    parser.add_argument("--add-calibration", action="store_true",
                        help="best: train nothing; give DEST/best its int8 calibration images")
    parser.add_argument("--rechoose-unsure", action="store_true",
                        help="best: train nothing; choose DEST/best's unsure rule again")
    parser.add_argument("--preprocess", action="append", default=[], metavar="KEY=VALUE",
                        type=setting_argument(PreprocessConfig()),
                        help="with --rechoose-unsure: change a picture preprocessing setting "
                        "of DEST/best first, e.g. --preprocess fg_iterations=2")
    args = parser.parse_args(argv)
    recipe = RECIPES[args.model]
    args.runs = args.runs or Path(recipe.runs)
    args.seeds = args.seeds or list(recipe.seeds)
    if args.preprocess and not args.rechoose_unsure:
        parser.error("--preprocess goes with --rechoose-unsure")
    if SHIPPED_SEED not in args.seeds:
        parser.error(f"--seeds must include {SHIPPED_SEED}, the seed that is shipped")
    if (args.average_with is None) != (args.alpha is None) or (
            args.average_with and not (args.photos and 0 < args.alpha < 1)):
        parser.error("--average-with RUN and --alpha A go together, with --photos, 0 < A < 1")
    return args


def photo_configs(bases: dict[int, Path | str],
                  tune: list[tuple[str, Any]]) -> dict[int, TrainConfig]:
    """Each seed's photo fine-tune from its base: PHOTO_TUNING with the `--tune` settings on
    top (`seed` among them: the fine-tune's own seed, for fresh synthetic photos and views)."""
    return {s: recipe_config(None, **{"model": "best", "seed": s, "init": str(base),
                                      **PHOTO_TUNING, **dict(tune)})
            for s, base in bases.items()}


def main() -> None:
    args = parse_args()
    recipe = RECIPES[args.model]
    data = load_fashion_mnist(args.data_dir, offline=True, verify=not args.no_verify)
    if args.add_calibration:
        add_calibration(args.dest / args.model, data)
        return
    if args.rechoose_unsure:
        rechoose_unsure(args.dest / args.model, dict(args.preprocess))
        return
    run_dirs = {s: args.runs / recipe.run_name.format(s) for s in args.seeds}
    configs = {s: recipe_config(**recipe.options, seed=s, epochs=args.epochs)
               for s in args.seeds}
    if args.photos:
        bases = dict(run_dirs)
        if args.init:
            bases[SHIPPED_SEED] = args.init
        for s in args.seeds:
            if s != SHIPPED_SEED or not args.init:
                train_or_load(configs[s], data, run_dirs[s])
        run_dirs = {s: args.runs / f"best-photos-seed{s}" for s in args.seeds}
        configs = photo_configs(bases, args.tune)
    runs = {s: train_or_load(configs[s], data, run_dirs[s]) for s in args.seeds}
    average = (args.average_with, args.alpha) if args.average_with else None
    summary = ship(args.model, args.dest / args.model, run_dirs, runs, data, average)
    print(f"seeds {summary['seeds']}; shipped {100 * summary['shipped_test_accuracy']:.2f}% "
          f"({recipe.weights} weights) -> {args.dest / args.model}")


if __name__ == "__main__":
    main()
