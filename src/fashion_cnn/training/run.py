"""Training runs: a run folder (config, resumable state, checkpoint, metrics, plot), and k-fold
cross-validation (the reference article's protocol, on the training set).

A run folder DIR holds config.json and started.json (the command; from the start), state.pt
(while running: see loop.py), then model.pt, metrics.json and learning_curves.png. The test
set is scored once, at the end, unless the run is told to leave it alone: then DIR also holds
the file `no-test` from the start, so that resuming the run leaves it alone too.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data import FashionMNIST
from ..errors import FashionCNNError
from ..evaluate import loss_and_accuracy, predict_logits
from ..files import write_json
from ..models import build_model, count_parameters, save_checkpoint
from ..provenance import provenance
from .config import TrainConfig, validation_seed
from .distributed import world
from .loop import _log, fit
from .steps import for_this_cpu

if TYPE_CHECKING:  # preprocess (OpenCV) is loaded only where photos are scored
    from ..preprocess import PreprocessConfig


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (train, validation) index split of n items, reproducible from `seed`."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return perm[n_val:], perm[:n_val]


def run_split(n: int, config: TrainConfig | dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The (train, validation) split of n items that a run's config (a TrainConfig, or one
    saved with a run or checkpoint) trains on: its val_fraction, its split_seed or else seed."""
    saved = asdict(config) if isinstance(config, TrainConfig) else config
    return split_indices(n, saved.get("val_fraction", 0.1), validation_seed(saved))


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to `count` (0: unchanged) inside, restored after."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


NO_TEST = "no-test"  # the file in a run folder that was started without scoring the test set
STARTED = "started.json"  # the command that started a run, for its metrics after a resume
CV_FOLDS = "folds.json"  # a cross-validation's number of folds, for `cv --resume`


def scores_test(out_dir: str | Path, resume: bool, score_test: bool | None) -> bool:
    """Whether a run scores the test set: as asked (True or False), else (None) as the run was
    started when resuming it, else yes."""
    if score_test is None:
        return not (resume and (Path(out_dir) / NO_TEST).exists())
    return score_test


def resolve_run_config(config: TrainConfig | None, out_dir: str | Path,
                       resume: bool = False, score_test: bool | None = None) -> TrainConfig:
    """The config a run in `out_dir` will use; refuses a folder that does not fit the request,
    and a run that would score nothing (no test set, no validation split).

    Cheap and writes nothing, so the CLI can call it before loading the data.
    """
    out = Path(out_dir)
    config_path, model_path = out / "config.json", out / "model.pt"
    if out.exists() and not out.is_dir():
        raise FashionCNNError(f"{out} is a file; --out names the folder a run writes into.")
    if holds_cv(out):
        raise FashionCNNError(f"{out} holds a cross-validation (`fashion-cnn cv`), not a "
                              "training run; choose another --out.")
    if not resume:
        if run_finished(out):
            raise FashionCNNError(f"{out} already holds a finished run ({model_path.name}); "
                                  "choose another --out.")
        if config_path.exists():
            raise FashionCNNError(f"{out} already holds a training run. Continue it with "
                                  f"--resume {out}, or choose another --out.")
        config = config or TrainConfig()
    elif run_finished(out):
        raise FashionCNNError(f"The run in {out} already finished ({model_path} exists).")
    else:
        config = saved_config(config_path)
    if not scores_test(out, resume, score_test) and config.val_fraction == 0:
        raise FashionCNNError("--no-test needs a validation split (--val-fraction above 0): "
                              "without one nothing would score the model.")
    if config.members > 1 and config.val_fraction == 0:  # the members leave the test set
        raise FashionCNNError("--members needs a validation split (--val-fraction above 0): "
                              "each member is scored on it, the test set only by the ensemble.")
    check_init(config)
    if config.teacher:  # a bad teacher file fails here, before the folder is written
        from ..models import load_checkpoint

        load_checkpoint(config.teacher)
    return config


def check_init(config: TrainConfig) -> None:
    """Refuses a fine-tune (`init`) from a checkpoint of another architecture, or whose
    validation images that checkpoint trained on: its validation split must be the
    checkpoint's (same fraction and seed), else its validation figures, and every choice made
    on them, would be inflated. Called before the run's folder is written."""
    if not config.init:
        return
    from ..models import load_checkpoint

    meta = load_checkpoint(config.init)[1]
    # an ensemble may start each member from one model, or from an ensemble's members
    allowed = {config.model, "ensemble"} if config.members > 1 else {config.model}
    if meta["arch"] not in allowed:
        raise FashionCNNError(f"--init {config.init} is a {meta['arch']!r} model, not "
                              f"{config.model!r}; pass --model {meta['arch']}.")
    if config.val_fraction == 0:
        return
    saved = meta.get("config")
    if not saved:  # a checkpoint that does not say how it trained may have seen any image
        raise FashionCNNError(f"--init {config.init} does not say how it was trained, so it may "
                              "have learned any of this run's validation images. Fine-tune it "
                              "with --val-fraction 0 (scored on the test set).")
    fraction = saved.get("val_fraction", 0.1)
    if fraction == 0:
        raise FashionCNNError(f"--init {config.init} was trained on every training image, so "
                              "this run's validation split would score images it has learned. "
                              "Fine-tune it with --val-fraction 0 (scored on the test set).")
    if (fraction, validation_seed(saved)) != (config.val_fraction, config.validation_seed):
        raise FashionCNNError(
            f"--init {config.init} held out a validation split of {fraction:g} with seed "
            f"{validation_seed(saved)}; this run's ({config.val_fraction:g}, seed "
            f"{config.validation_seed}) would score images it trained on. Pass --split-seed "
            f"{validation_seed(saved)} --val-fraction {fraction:g}.")


def start_folder(out: Path, config: TrainConfig, resume: bool, score_test: bool | None) -> bool:
    """A new run's config.json, and the `no-test` file if it leaves the test set alone
    (written by the first process); whether the run scores the test set (scores_test)."""
    score_test = scores_test(out, resume, score_test)
    if not resume and world()[0] == 0:
        write_json(out / "config.json", asdict(config))
        origin = provenance()
        write_json(out / STARTED,
                   {k: origin[k] for k in ("command", "cwd", "date", "git_commit")})
        if not score_test:
            (out / NO_TEST).write_text("Started with --no-test: the test set is left alone, "
                                       "also when the run is resumed.\n")
    return score_test


def run_provenance(out: Path, resume: bool, seed: int,
                   data_checksums: dict[str, str]) -> dict[str, Any]:
    """A run's `provenance`, whose "command" is the one that started it, and for a resumed
    run "resumed_with" the one that finished it (a run started before `started.json` existed
    records the resuming command only)."""
    origin = provenance(seed, data_checksums)
    started = out / STARTED
    if resume and started.is_file():
        first = json.loads(started.read_text())
        origin["resumed_with"] = origin["command"]
        origin["command"], origin["cwd"] = first["command"], first.get("cwd")
    return origin


def saved_config(path: Path) -> TrainConfig:
    """The config saved at `path` (a run's config.json), or a clear error."""
    if not path.is_file():
        raise FashionCNNError(f"Nothing to resume in {path.parent}: no {path.name}. Start a "
                              "new run instead.")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise FashionCNNError(f"{path} is not a valid run config ({err}); start a new run "
                              "with another --out.") from None


# ---------------------------------------------------------------------------------------------
# A training run


def run_training(config: TrainConfig | None, data: FashionMNIST, out_dir: str | Path, *,
                 resume: bool = False, progress: bool = True,
                 log: Callable[[str], None] = _log,
                 after_epoch: Callable[[torch.nn.Module, dict[str, Any]], None] | None = None,
                 score_test: bool | None = None) -> dict[str, Any]:
    """Train, test once on the official test set, and write checkpoint + metrics + plot.

    With `resume=True`, `config` may be None: the one saved in `out_dir` is used.
    `score_test=False` leaves the test set alone (runs that choose, on validation): no test
    figures; None scores it unless the resumed run was started with False.
    `after_epoch(model, record)`: called after each epoch's validation (loop.fit).
    An ensemble (`members` > 1) trains its members in sub-folders first (ensemble.py)."""
    out = Path(out_dir)
    config = resolve_run_config(config, out, resume, score_test)
    rank, processes = world()
    if processes > 1:
        torch.distributed.barrier()  # every process has checked the folder before it fills
    score_test = start_folder(out, config, resume, score_test)
    train_idx, val_idx = run_split(len(data.train_labels), config)
    bf16_used = bf16_on_this_cpu(config, log if rank == 0 else _quiet)
    teacher = started_from = None  # what distill.py records about a teacher; the --init file
    with torch_threads(config.threads):
        if config.members > 1:
            from .ensemble import train_members

            model, histories, photos = train_members(config, data, out, progress=progress,
                                                     log=log)
        else:
            images, labels, photos = training_set(config, data, train_idx, progress)
            targets = None
            if config.teacher:
                from .distill import teacher_targets

                targets, teacher = teacher_targets(config, images, labels, progress, out)
            torch.manual_seed(config.seed)
            model, started_from = initial_model(config)
            histories = [fit(model, config, images, labels,
                             data.train_images[val_idx], data.train_labels[val_idx],
                             state_path=out / "state.pt", progress=progress, log=log,
                             after_epoch=after_epoch, targets=targets, first=len(train_idx))]
        if rank != 0:  # the first process tests the model and writes the results
            return {"rank": rank}
        model.eval()
        val_accuracy = (histories[0][-1]["val_accuracy"] if len(histories) == 1 else
                        loss_and_accuracy(model, data.train_images[val_idx],
                                          data.train_labels[val_idx])[1])
        tested = test_scores(model, data) if score_test else {}
        photo_scores = score_on_photos(model, progress=progress) if config.photos else None
    train_seconds = sum(h["epoch_seconds"] for history in histories for h in history)
    metrics = {
        **run_provenance(out, resume, config.seed, data.checksums),
        "config": asdict(config),
        "model": {"arch": config.architecture()[0], "parameters": count_parameters(model)},
        "bf16_used": bf16_used,  # --bf16 runs in float32 on a CPU without native bfloat16
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        **({"photos": {"train": photos, "validation": photo_scores}} if photos else {}),
        **({"teacher": teacher} if teacher else {}),
        **({"init": started_from} if started_from else {}),
        # one list of epochs per member of an ensemble
        "epochs": histories[0] if len(histories) == 1 else histories,
        "train_seconds": train_seconds,  # shuffling, augmentation and steps; no validation
        "images_per_second": throughput(histories, len(train_idx), train_seconds),
        "val_accuracy": val_accuracy,
        **tested,
    }
    write_run_results(out, model, config, metrics, data.checksums, histories)
    log(f"{scored(metrics)} -> {out / 'model.pt'}")
    return metrics


def throughput(histories: list[list[dict[str, Any]]], n_train: int, seconds: float) -> float:
    """Training images per second over every epoch: Fashion-MNIST's and, with them, the
    photos. An epoch recorded before records counted their images counts its own rate times
    its seconds (`n_train`, Fashion-MNIST's alone, once undercounted runs with photos)."""
    return sum(epoch_images(h, n_train) for history in histories for h in history) / seconds


def epoch_images(record: dict[str, Any], n_train: int) -> float:
    """How many images an epoch record's epoch trained on."""
    if "images" in record:
        return record["images"]
    if "images_per_second" in record:
        return record["images_per_second"] * record["epoch_seconds"]
    return n_train


def _quiet(_: str) -> None:
    pass


def bf16_on_this_cpu(config: TrainConfig, log: Callable[[str], None]) -> bool:
    """Whether the run computes in bfloat16 (--bf16, on a CPU with it); says so when --bf16
    falls back to float32 (steps.for_this_cpu)."""
    used = for_this_cpu(config).bf16
    if config.bf16 and not used:
        log("This CPU has no native bfloat16: training in float32 (--bf16 would be several "
            "times slower here; benchmarks/results/cpu_bf16.json).")
    return used


def scored(metrics: dict[str, Any]) -> str:
    """A run's headline in words: its test accuracy (with test-time views where scored), or
    its validation accuracy when the test set was left alone."""
    if "test_accuracy" not in metrics:
        return (f"validation accuracy {100 * metrics['val_accuracy']:.2f}% "
                "(test set not scored)")
    tta = ("" if "test_accuracy_tta" not in metrics
           else f" ({100 * metrics['test_accuracy_tta']:.2f}% with test-time views)")
    return f"test accuracy {100 * metrics['test_accuracy']:.2f}%{tta}"


def test_scores(model: torch.nn.Module, data: FashionMNIST) -> dict[str, float]:
    """The official test set's loss and accuracy (and with test-time views, where the model
    has them), scored once, at the end of a run."""
    start = time.perf_counter()
    test_loss, test_accuracy = loss_and_accuracy(model, data.test_images, data.test_labels)
    seconds = time.perf_counter() - start
    tta_accuracy = accuracy_with_tta(model, data.test_images, data.test_labels)
    return {"test_loss": test_loss, "test_accuracy": test_accuracy,
            **({"test_accuracy_tta": tta_accuracy} if tta_accuracy is not None else {}),
            "test_eval_seconds": seconds}


def accuracy_with_tta(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor
                      ) -> float | None:
    """Accuracy with the model's test-time augmentation switched on for the call (BestCNN:
    the mirror, and shifts where `tta_shift` is set, as the speed-run recipe is scored); None
    for a model without it."""
    if not hasattr(model, "tta"):
        return None
    before, model.tta = model.tta, True
    try:
        return loss_and_accuracy(model, images, labels)[1]
    finally:
        model.tta = before


def write_run_results(out: Path, model: torch.nn.Module, config: TrainConfig,
                      metrics: dict[str, Any], checksums: dict[str, str] | None,
                      histories: list[list[dict[str, Any]]]) -> None:
    """metrics.json, learning_curves.png and, last, model.pt (self-describing), the mark of a
    finished run (`run_finished`); state.pt goes. Interrupted before model.pt, it resumes."""
    from ..plots import learning_curves

    photos = metrics.get("photos")
    write_json(out / "metrics.json", metrics)
    learning_curves(histories, out / "learning_curves.png",
                    title=f"{config.model} model, seed {config.seed}")
    save_checkpoint(out / "model.pt", model, config=asdict(config),
                    metrics={k: metrics[k] for k in ("test_accuracy", "test_accuracy_tta",
                                                     "test_loss", "val_accuracy",
                                                     "train_seconds") if k in metrics},
                    data_checksums=checksums,
                    unsure=unsure_rule(photos["validation"]) if photos else None)
    (out / "state.pt").unlink(missing_ok=True)


def run_finished(out: Path) -> bool:
    """Whether the run in `out` finished: its model.pt, written after everything else."""
    return (out / "model.pt").is_file()


# ---------------------------------------------------------------------------------------------
# Real photos: extra training data, scores on their validation split, the "unsure" threshold


def training_set(config: TrainConfig, data: FashionMNIST, train_idx: torch.Tensor,
                 progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, dict | None]:
    """The training images [N, 28, 28] and labels [N]: Fashion-MNIST's training split, plus
    (with `synthetic`) hard synthetic photos of that many of its images, plus (with `photos`)
    the real photos' train split `photo_repeat` times (the photos and `photo_views` retaken
    views of them in turn), labelled with photo codes (photos.py);
    and a summary of the real photos used (None without them)."""
    images, labels = data.train_images[train_idx], data.train_labels[train_idx]
    parts, summary = [(images, labels)], None
    if config.synthetic:
        from ..render import synthetic_photos

        pick = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(
            config.seed))[:config.synthetic]]  # training images only: validation stays clean
        rendered = first_process_first(lambda: synthetic_photos(
            data.train_images[pick], config.seed, progress=progress))
        parts.append((rendered, data.train_labels[pick]))
    if config.photos:
        from ..photos import load_photo_views, load_photos

        photos = first_process_first(lambda: load_photos("train", progress=progress))
        takes = [photos.images]  # the photo itself, then its retaken views, in turn
        if config.photo_views:
            takes += first_process_first(lambda: load_photo_views(
                photos, config.photo_views, config.seed, config.photo_crop,
                progress=progress)).unbind()
        parts += [(takes[r % len(takes)], photos.codes) for r in range(config.photo_repeat)]
        summary = {"n": len(photos.codes), "repeat": config.photo_repeat,
                   "views": config.photo_views, "checksums": photos.checksums}
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), summary


def first_process_first(make: Callable[[], Any]) -> Any:
    """make() in the first process, then in the others (with --nproc): they find its result
    in the disk cache instead of each converting the same photos again."""
    rank, processes = world()
    if processes > 1 and rank > 0:
        torch.distributed.barrier()  # wait for the first process to fill the cache
    made = make()
    if processes > 1 and rank == 0:
        torch.distributed.barrier()
    return made


def initial_model(config: TrainConfig) -> tuple[torch.nn.Module, dict[str, str] | None]:
    """A new model of the configured architecture; with `init`, holding that checkpoint's
    weights (which must be of the same architecture), and which file that was: its path and
    sha256 (`init` names a shipped model, whose file changes when a new one ships)."""
    arch, kwargs = config.architecture()
    model = build_model(arch, **kwargs)
    if not config.init:
        return model, None
    from ..files import file_sha256
    from ..models import load_checkpoint

    source, meta = load_checkpoint(config.init)
    if meta["arch"] != config.model:
        raise FashionCNNError(f"--init {config.init} is a {meta['arch']!r} model, not "
                              f"{config.model!r}; pass --model {meta['arch']}.")
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError:  # the same architecture at another size
        raise FashionCNNError(f"--init {config.init} is a {meta['arch']!r} model of another "
                              f"size ({meta['arch_kwargs']}); pass its --width.") from None
    # absolute: whatever reads the run later (ship_model.py, benchmarks) may run elsewhere
    path = str(Path(meta["path"]).resolve())
    return model, {"checkpoint": path, "sha256": file_sha256(path)}


ENERGY_THRESHOLD = 0.5  # the energy score's unsure threshold: its offset makes it 0.5


def score_on_photos(model: torch.nn.Module, config: PreprocessConfig | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """The photo scores (photos.score_photos) of `model` on the real photos' validation split,
    through the same preprocessing as `predict` (`config`, by default PreprocessConfig's
    defaults, which a new checkpoint carries), with the in-class score `predict` gives it:
    the logits' energy (predict.in_class_scores) against an offset chosen there to keep 95%
    of the in-class pictures (`energy_offset`), so its threshold is 0.5."""
    from ..photos import keep_threshold, load_photos, score_photos
    from ..predict import energy, in_class_scores

    photos = load_photos("validation", config=config, progress=progress)
    logits = predict_logits(model, photos.images)
    offset = keep_threshold(energy(logits), photos.codes)
    in_class = in_class_scores(logits, "energy", offset)
    return {**score_photos(logits.softmax(1), photos.codes, in_class, folders=photos.folders,
                           threshold=ENERGY_THRESHOLD), "energy_offset": offset}


def unsure_rule(scores: dict[str, Any]) -> dict[str, Any]:
    """What `predict` needs to flag pictures that are not one of the 10 classes
    (`predict.UnsurePolicy`): the energy score's offset and threshold, chosen on the photos'
    validation split (`score_on_photos`) to keep 95% of its in-class pictures."""
    return {"score": "energy", "offset": scores["energy_offset"],
            "threshold": scores["at_threshold"]["threshold"],
            "chosen_on": "real photos, validation split",
            "keeps": scores["at_threshold"]["in_class_coverage"]}


# ---------------------------------------------------------------------------------------------
# k-fold cross-validation


MAX_FOLDS = 100


def holds_cv(out: Path) -> bool:
    """Whether the folder holds a cross-validation (`cv`), finished or not."""
    return (out / CV_FOLDS).is_file() or (out / "cv.json").is_file()


def check_cv_config(config: TrainConfig, folds: int) -> None:
    """Refuses a cross-validation it cannot run as asked: fewer than 2 folds, or `train`'s
    options that a fold would ignore. Cheap and reads nothing, so the CLI calls it before
    loading the data."""
    if not 2 <= folds <= MAX_FOLDS:  # 100: every fold holds out 1% of the images or more
        raise FashionCNNError(f"--folds must be 2 to {MAX_FOLDS}; each fold trains a model.")
    unused = [f"--{name}" for name, value in (("init", config.init), ("photos", config.photos),
                                               ("synthetic", config.synthetic),
                                               ("members", config.members > 1),
                                               ("teacher", config.teacher)) if value]
    if unused:  # each fold trains one model from scratch on its Fashion-MNIST folds
        raise FashionCNNError(f"cv does not take {', '.join(unused)}: each fold trains one "
                              "model from scratch on Fashion-MNIST. Use "
                              f"{'them' if len(unused) > 1 else 'it'} with `train`.")


def saved_folds(out: Path) -> int | None:
    """The number of folds of the cross-validation in `out`, if one was started there."""
    path = out / CV_FOLDS
    return json.loads(path.read_text())["folds"] if path.is_file() else None


def check_cv_folder(out: Path, config: TrainConfig, folds: int) -> None:
    """Refuses to go on with a cross-validation in `out` started with another config or
    number of folds: its half-trained folds would carry on under the new one."""
    config_path = out / "config.json"
    if (out / STARTED).is_file() and not holds_cv(out):
        raise FashionCNNError(f"{out} holds a training run (`fashion-cnn train`), not a "
                              "cross-validation; choose another --out.")
    if not config_path.is_file():
        return
    saved = saved_folds(out) or folds  # a folder from before folds.json: as asked
    same_config = asdict(saved_config(config_path)) == asdict(config)
    if saved != folds and same_config:
        raise FashionCNNError(f"{out} holds a {saved}-fold cross-validation, not {folds}; "
                              f"continue it with --folds {saved}, or choose another --out.")
    if saved != folds or not same_config:
        raise FashionCNNError(f"{out} holds a {saved}-fold cross-validation with another "
                              f"config. Continue it with `fashion-cnn cv --resume {out} --folds "
                              f"{saved}`, or choose another --out.")


def cross_validate(config: TrainConfig, data: FashionMNIST, out_dir: str | Path, folds: int = 5,
                   *, progress: bool = True,
                   log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Train one model per fold, score it on the held-out fold; resumable fold by fold
    (a fold whose result.json matches the config is not trained again)."""
    check_cv_config(config, folds)
    out = Path(out_dir)
    check_cv_folder(out, config, folds)
    perm = torch.randperm(len(data.train_labels),
                          generator=torch.Generator().manual_seed(config.seed))
    parts = perm.chunk(folds)
    if len(parts) != folds:  # chunk's equal sizes cannot make that many of these images
        raise FashionCNNError(f"{len(perm):,} images cannot be split into {folds} equal folds; "
                              "use fewer --folds.")
    if world()[0] == 0:
        write_json(out / "config.json", asdict(config))  # what `cv --resume` continues with
        write_json(out / CV_FOLDS, {"folds": folds})
    with torch_threads(config.threads):
        results = [_fold(config, data, out, parts, k, progress, log) for k in range(folds)]
    if world()[0] != 0:
        return {"rank": world()[0]}
    accuracies = torch.tensor([r["accuracy"] for r in results], dtype=torch.float64)
    summary = {
        **provenance(config.seed, data.checksums),
        "config": asdict(config),
        "folds": folds,
        "fold_accuracies": accuracies.tolist(),
        "mean_accuracy": accuracies.mean().item(),
        "std_accuracy": accuracies.std(unbiased=False).item(),  # population std, as the article
        "train_seconds": sum(h["epoch_seconds"] for r in results for h in r["history"]),
    }
    write_json(out / "cv.json", summary)
    from ..plots import cv_boxplot, learning_curves

    cv_boxplot(summary["fold_accuracies"], out / "cv_boxplot.png")
    learning_curves([r["history"] for r in results], out / "cv_learning_curves.png",
                    title=f"{folds}-fold cross-validation ({config.model})")
    return summary


def _fold(config: TrainConfig, data: FashionMNIST, out: Path, parts: tuple[torch.Tensor, ...],
          k: int, progress: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Fold k's result: trained on the other parts, scored on part k (or found done)."""
    folds, fold_dir = len(parts), out / f"fold{k + 1}"
    result_path = fold_dir / "result.json"
    if result_path.is_file():
        saved = json.loads(result_path.read_text())
        if saved["config"] == asdict(config) and saved["folds"] == folds:
            log(f"fold {k + 1}/{folds}: done earlier, accuracy {saved['accuracy']:.4f}")
            return saved
    log(f"fold {k + 1}/{folds}")
    held_out = parts[k]
    train_idx = torch.cat([p for j, p in enumerate(parts) if j != k])
    torch.manual_seed(config.seed + k)
    arch, kwargs = config.architecture()
    model = build_model(arch, **kwargs)
    history = fit(model, config, data.train_images[train_idx], data.train_labels[train_idx],
                  data.train_images[held_out], data.train_labels[held_out],
                  state_path=fold_dir / "state.pt", progress=progress, log=log)
    result = {"fold": k + 1, "folds": folds, "config": asdict(config),
              "accuracy": history[-1]["val_accuracy"], "history": history}
    if world()[0] == 0:
        write_json(result_path, result)
        (fold_dir / "state.pt").unlink(missing_ok=True)
    return result
