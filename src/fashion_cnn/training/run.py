"""Training: the SGD loop, a resumable training run, and k-fold cross-validation.

The faithful recipe of the reference Keras model: SGD lr 0.01, momentum 0.9, batch 32,
10 epochs, cross-entropy, reshuffled every epoch. PyTorch's SGD momentum (v = m*v + g;
w -= lr*v) equals Keras' (v = m*v - lr*g; w += v) at a constant learning rate.

The seed CNN trains through its hand-fused step (fused.py: same function and update, ~3x
faster per step than autograd on a CPU, its conv block compiled by numba: kernels.py);
`fused=False` runs plain autograd, for any architecture.

Runs are resumable: after every epoch the model, optimizer and history are written
atomically to DIR/state.pt, so an interrupted run loses at most the current epoch.
Shuffling uses a generator seeded by (seed, epoch), so a resumed run matches an uninterrupted one.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data import FashionMNIST
from ..errors import FashionCNNError
from ..evaluate import loss_and_accuracy
from ..files import atomic_path, write_json
from ..models import SeedCNN, build_model, count_parameters, save_checkpoint
from ..provenance import provenance
from ..seed_fast.fused import FusedSeed, soft_targets
from ..seed_fast.threads import ThreadTuner, same_result_counts
from .augment import Augment, augment_all
from .distributed import all_reduce_sum, shard, sync_batch_norm, world


@dataclass
class TrainConfig:
    """Everything that defines one training run; saved with its results."""

    model: str = "seed"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    seed: int = 0
    val_fraction: float = 0.1  # from the training set; the test set is never used for choices
    # torch intra-op threads; 0: automatic (threads.py: the fused numba step tries all cores,
    # one fewer and one while it trains and keeps the fastest; other paths: one per core)
    threads: int = 0
    # Speed (same function and update, measured in benchmarks/train_seed.py):
    fused: bool = True  # the seed CNN's hand-fused step (fused.py); other models ignore it
    numba: bool = True  # fused step: the conv block as compiled kernels (kernels.py)
    channels_last: bool = False  # plain path: NHWC activations (faster max-pooling on CPU)
    bf16: bool = False  # bfloat16 products: autocast (plain path), fc1's products (fused)
    nesterov: bool = False
    weight_decay: float = 0.0  # L2 penalty added to the gradient (torch SGD's weight_decay)
    schedule: str = "constant"  # or "onecycle": warm up to lr, then anneal to ~0, per step
    label_smoothing: float = 0.0
    # Augmentation (see augment.Augment; all off = the faithful recipe)
    flip: bool = False
    shift: float = 0.0
    scale: float = 0.0
    contrast: float = 0.0
    sharpness: float = 0.0
    noise: float = 0.0
    translate: int = 0
    erase: float = 0.0

    def augmentation(self) -> Augment:
        return Augment(**{f.name: getattr(self, f.name) for f in fields(Augment)})

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append("--epochs must be at least 1")
        if self.batch_size < 1:
            problems.append("--batch-size must be at least 1")
        if not self.lr > 0:
            problems.append("--lr must be positive")
        if not 0 <= self.val_fraction < 1:
            problems.append("--val-fraction must be in [0, 1)")
        if self.nesterov and self.momentum <= 0:
            problems.append("Nesterov needs --momentum > 0")
        if self.schedule not in ("constant", "onecycle"):
            problems.append("schedule must be 'constant' or 'onecycle'")
        if problems:
            raise FashionCNNError("; ".join(problems) + ".")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A saved config; those written before the fused step (or its compiled kernels)
        existed ran the plain path (or the fused step's torch operations)."""
        known = {f.name for f in fields(cls)}
        return cls(**{"fused": False, "numba": False,
                      **{k: v for k, v in d.items() if k in known}})


# Named recipes: overrides of the TrainConfig defaults (which are the faithful Keras recipe).
RECIPES: dict[str, dict[str, Any]] = {
    "faithful": {},
    # Same architecture, trained for time: bigger batches (fewer, cheaper steps), one-cycle LR,
    # Nesterov, label smoothing and flips; chosen on the validation split (README).
    "fast": dict(batch_size=128, epochs=6, lr=0.1, nesterov=True, schedule="onecycle",
                 label_smoothing=0.1, flip=True),
    # The best model (models.BestCNN): bf16 channels-last convolutions, one-cycle SGD with
    # weight decay and label smoothing, flips, 2-pixel shifts and random erasing.
    "best": dict(model="best", batch_size=128, epochs=36, lr=0.1, nesterov=True,
                 schedule="onecycle", label_smoothing=0.1, weight_decay=5e-4, flip=True,
                 translate=2, erase=0.5, bf16=True, channels_last=True),
}


def recipe_config(recipe: str | None = "faithful", augment: str | None = None,
                  **options: Any) -> TrainConfig:
    """A TrainConfig from a named recipe, then an augmentation preset, then explicit options
    (options that are None count as not given). No recipe: the model's own ("best" for the
    best model), else the faithful one."""
    from .augment import PRESETS

    if recipe is None:
        recipe = "best" if options.get("model") == "best" else "faithful"
    if recipe not in RECIPES:
        raise FashionCNNError(f"--recipe must be one of {', '.join(RECIPES)}, not {recipe!r}.")
    if augment is not None and augment not in PRESETS:
        raise FashionCNNError(f"--augment must be one of {', '.join(PRESETS)}, not {augment!r}.")
    settings = {**RECIPES[recipe], **(asdict(PRESETS[augment]) if augment else {})}
    settings.update({k: v for k, v in options.items() if v is not None})
    return TrainConfig(**settings)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (train, validation) index split of n items, reproducible from `seed`."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return perm[n_val:], perm[:n_val]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffling RNG of one epoch; depends only on (seed, epoch) so resuming is exact."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


# ---------------------------------------------------------------------------------------------
# The training loop


def fit(model: nn.Module, config: TrainConfig, images: torch.Tensor, labels: torch.Tensor,
        val_images: torch.Tensor | None = None, val_labels: torch.Tensor | None = None, *,
        state_path: Path | None = None, progress: bool = True,
        log: Callable[[str], None] = _log) -> list[dict[str, Any]]:
    """Train `model` in place on uint8 images [N, 28, 28]; return the per-epoch history.

    If `state_path` holds a saved state, training continues from it; after every epoch the
    state is saved there.
    """
    rank, processes = world()
    if processes > 1:
        sync_batch_norm(model)  # batch statistics over every process's share of the batch
        progress = progress and rank == 0
    state = None
    if state_path is not None and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    fused = (FusedSeed(model, numba=config.numba, bf16=config.bf16)
             if config.fused and isinstance(model, SeedCNN) else None)
    optimizer = _optimizer(config, [fused.theta] if fused else model.parameters(),
                           fused=fused is not None)  # one kernel for the flat vector
    steps_per_epoch = -(-len(labels) // config.batch_size)
    scheduler = None
    if config.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
            pct_start=0.25)
    history: list[dict[str, Any]] = []
    if state is not None:
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as err:
            raise FashionCNNError(f"{state_path} does not match this run's config ({err}); "
                                  "start a new run with another --out.") from None
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        history = state["history"]
        if history and rank == 0:
            log(f"resuming after epoch {history[-1]['epoch']} of {config.epochs}")

    n, bs = len(labels), config.batch_size
    augmentation = config.augmentation()
    tuner = _thread_tuner(config, model, fused, processes, images, labels)
    # the shares' gradients of a multi-process run add up to the whole batch's
    reduce = all_reduce_sum if processes > 1 else None
    for epoch in range(len(history) + 1, config.epochs + 1):
        start = time.perf_counter()  # the epoch's time includes shuffling and augmentation
        rng = epoch_generator(config.seed, epoch)
        perm = torch.randperm(n, generator=rng)
        xs, ys = images[perm], labels[perm]  # this epoch's order; batches are slices
        if augmentation.active:  # the whole epoch at once, batched, before the step loop
            xs = augment_all(xs, augmentation, rng)
        targets = soft_targets(ys, config.label_smoothing) if fused else None  # [N, 10]
        model.train()
        logits_all = torch.zeros(n, 10)  # [N, 10]: the epoch's loss and accuracy come from it
        bar = tqdm(range(0, n, bs), desc=f"epoch {epoch}/{config.epochs}", unit="batch",
                   disable=not progress, leave=False, mininterval=0.5, file=sys.stderr)
        thread_steps = dict(tuner.steps) if tuner else {}  # at the epoch's start
        if tuner:
            tuner.restart()
        for step, i in enumerate(bar):
            rows = slice(i, min(i + bs, n))  # this batch; [rows][mine]: this process's share
            mine = shard(rows.stop - i)
            x, y = xs[rows][mine], ys[rows][mine]  # [b, 28, 28] uint8, [b] int64
            if fused is not None:  # forward, backward and SGD update in one call
                logits = fused.train_step(x, targets[rows][mine], optimizer,
                                          1 / (rows.stop - i), reduce)
            else:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                    logits = model(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing,
                                           reduction="sum") / (rows.stop - i)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if reduce is not None:
                    reduce([p.grad for p in optimizer.param_groups[0]["params"]])
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if tuner:
                tuner.step()
            logits_all[rows][mine] = logits.detach()  # one copy: no per-step bookkeeping
            if progress and processes == 1 and step % 200 == 0:
                bar.set_postfix(_loss_and_accuracy(logits_all[:i + bs], ys[:i + bs], config),
                                refresh=False)
        all_reduce_sum([logits_all])  # every process's rows
        epoch_seconds = time.perf_counter() - start
        bar.close()
        if fused is not None:
            fused.write_back(model)

        record: dict[str, Any] = {
            "epoch": epoch,
            "epoch_seconds": epoch_seconds,
            "images_per_second": n / epoch_seconds,
            **_loss_and_accuracy(logits_all, ys, config),  # over the epoch, as Keras reports
            "val_loss": None,
            "val_accuracy": None,
        }
        if tuner:  # steps run on each thread count in this epoch
            record["thread_steps"] = {str(c): k - thread_steps[c] for c, k in tuner.steps.items()}
        if val_images is not None and len(val_images) and rank == 0:  # only it reports
            record["val_loss"], record["val_accuracy"] = loss_and_accuracy(
                model, val_images, val_labels)
        history.append(record)
        if state_path is not None and rank == 0:
            with atomic_path(state_path) as tmp:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict() if scheduler else None,
                            "history": history, "config": asdict(config)}, tmp)
        val = (f", val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.4f}"
               if record["val_accuracy"] is not None else "")
        if rank == 0:
            log(f"epoch {epoch}/{config.epochs}: {epoch_seconds:.1f}s "
                f"({record['images_per_second']:,.0f} img/s), loss "
                f"{record['train_loss']:.4f} acc {record['train_accuracy']:.4f}{val}")
    if tuner:
        torch.set_num_threads(tuner.choices[0])
    return history


def _loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor,
                       config: TrainConfig) -> dict[str, float]:
    """Training loss (with the run's label smoothing) and accuracy of logits [N, 10]."""
    with torch.no_grad():
        loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        return {"train_loss": loss.item(),
                "train_accuracy": (logits.argmax(1) == labels).float().mean().item()}


def _set_threads(config: TrainConfig) -> None:
    if config.threads:
        torch.set_num_threads(config.threads)


def _optimizer(config: TrainConfig, params, fused: bool) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           nesterov=config.nesterov, weight_decay=config.weight_decay,
                           fused=fused)


def _thread_tuner(config: TrainConfig, model: SeedCNN, fused: FusedSeed | None, processes: int,
                  images: torch.Tensor, labels: torch.Tensor) -> ThreadTuner | None:
    """A ThreadTuner, where the thread count is automatic and the fused step with its numba
    kernels runs in one process, over the counts under which three training steps (the
    first, one adding into the momentum buffer, one of the epoch's last batch size) on a copy
    give exactly the weights that all cores give: the run's result then cannot depend on
    the counts it ran on (threads.py)."""
    cores = torch.get_num_threads()
    if config.threads or fused is None or not fused.numba or processes > 1 or cores < 2:
        return None
    bs = config.batch_size
    sizes = [min(bs, len(labels))] * 2 + [len(labels) % bs or bs]
    targets = soft_targets(labels[:max(sizes)], config.label_smoothing)

    def three_steps() -> torch.Tensor:
        trial = FusedSeed(model, numba=True, bf16=config.bf16)
        optimizer = _optimizer(config, [trial.theta], fused=True)
        for b in sizes:
            trial.train_step(images[:b], targets[:b], optimizer, 1 / b)
        return trial.theta.detach()

    choices = same_result_counts(ThreadTuner.default_choices(cores), three_steps)
    return ThreadTuner(choices) if len(choices) > 1 else None


# ---------------------------------------------------------------------------------------------
# A training run: DIR/config.json, state.pt (while running), model.pt, metrics.json, PNG


def resolve_run_config(config: TrainConfig | None, out_dir: str | Path,
                       resume: bool = False) -> TrainConfig:
    """The config a run in `out_dir` will use; refuses a folder that does not fit the request.

    Cheap and writes nothing, so the CLI can call it before loading the data.
    """
    out = Path(out_dir)
    config_path, model_path = out / "config.json", out / "model.pt"
    if not resume:
        if config_path.exists() or model_path.exists():
            raise FashionCNNError(f"{out} already holds a training run. Continue it with "
                                  f"--resume {out}, or choose another --out.")
        return config or TrainConfig()
    if model_path.is_file():
        raise FashionCNNError(f"The run in {out} already finished ({model_path} exists).")
    if not config_path.is_file():
        raise FashionCNNError(f"Nothing to resume in {out}: no config.json. Start a run "
                              "with `fashion-cnn train --out DIR`.")
    try:
        return TrainConfig.from_dict(json.loads(config_path.read_text()))
    except (ValueError, TypeError) as err:
        raise FashionCNNError(f"{config_path} is not a valid run config ({err}); start a new "
                              "run with another --out.") from None


def run_training(config: TrainConfig | None, data: FashionMNIST, out_dir: str | Path, *,
                 resume: bool = False, progress: bool = True,
                 log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Train, test once on the official test set, and write checkpoint + metrics + plot.

    With `resume=True`, `config` may be None: the one saved in `out_dir` is used.
    """
    out = Path(out_dir)
    state_path, model_path = out / "state.pt", out / "model.pt"
    config = resolve_run_config(config, out, resume)
    rank, processes = world()
    if processes > 1:
        torch.distributed.barrier()  # every process has checked the folder before it fills
    if not resume and rank == 0:
        write_json(out / "config.json", asdict(config))

    _set_threads(config)
    torch.manual_seed(config.seed)
    model = build_model(config.model)
    train_idx, val_idx = split_indices(len(data.train_labels), config.val_fraction, config.seed)
    history = fit(model, config, data.train_images[train_idx], data.train_labels[train_idx],
                  data.train_images[val_idx], data.train_labels[val_idx],
                  state_path=state_path, progress=progress, log=log)
    if rank != 0:  # the first process tests the model and writes the results
        return {"rank": rank}

    start = time.perf_counter()
    test_loss, test_accuracy = loss_and_accuracy(model, data.test_images, data.test_labels)
    eval_seconds = time.perf_counter() - start
    train_seconds = sum(h["epoch_seconds"] for h in history)
    metrics = {
        **provenance(config.seed, data.checksums),
        "config": asdict(config),
        "model": {"arch": config.model, "parameters": count_parameters(model)},
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "epochs": history,
        "train_seconds": train_seconds,  # shuffling, augmentation and steps; no validation
        "images_per_second": len(train_idx) * len(history) / train_seconds,
        "val_accuracy": history[-1]["val_accuracy"],
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "test_eval_seconds": eval_seconds,
    }
    save_checkpoint(model_path, model, config=asdict(config),
                    metrics={k: metrics[k] for k in ("test_accuracy", "test_loss",
                                                     "val_accuracy", "train_seconds")},
                    data_checksums=data.checksums)
    write_json(out / "metrics.json", metrics)
    from ..plots import learning_curves

    learning_curves([history], out / "learning_curves.png",
                    title=f"{config.model} model, seed {config.seed}")
    state_path.unlink(missing_ok=True)
    log(f"test accuracy {100 * test_accuracy:.2f}% -> {model_path}")
    return metrics


# ---------------------------------------------------------------------------------------------
# k-fold cross-validation (the reference article's protocol, on the training set)


def cross_validate(config: TrainConfig, data: FashionMNIST, out_dir: str | Path, folds: int = 5,
                   *, progress: bool = True,
                   log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Train one model per fold, score it on the held-out fold; resumable fold by fold."""
    if folds < 2:
        raise FashionCNNError("--folds must be at least 2.")
    out = Path(out_dir)
    _set_threads(config)
    n = len(data.train_labels)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))
    parts = perm.chunk(folds)
    results = []
    for k in range(folds):
        fold_dir = out / f"fold{k + 1}"
        result_path = fold_dir / "result.json"
        if result_path.is_file():
            saved = json.loads(result_path.read_text())
            if saved["config"] == asdict(config) and saved["folds"] == folds:
                log(f"fold {k + 1}/{folds}: done earlier, accuracy {saved['accuracy']:.4f}")
                results.append(saved)
                continue
        log(f"fold {k + 1}/{folds}")
        held_out = parts[k]
        train_idx = torch.cat([p for j, p in enumerate(parts) if j != k])
        torch.manual_seed(config.seed + k)
        model = build_model(config.model)
        history = fit(model, config, data.train_images[train_idx], data.train_labels[train_idx],
                      data.train_images[held_out], data.train_labels[held_out],
                      state_path=fold_dir / "state.pt", progress=progress, log=log)
        result = {"fold": k + 1, "folds": folds, "config": asdict(config),
                  "accuracy": history[-1]["val_accuracy"], "history": history}
        write_json(result_path, result)
        (fold_dir / "state.pt").unlink(missing_ok=True)
        results.append(result)

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
