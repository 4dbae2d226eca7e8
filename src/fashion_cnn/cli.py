"""The `fashion-cnn` command: a thin typer shell over the library.

User mistakes (FashionCNNError) print one line to stderr and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import FashionCNNError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Classify clothing images with CNNs trained on Fashion-MNIST.")

DataDir = Annotated[Optional[Path], typer.Option(
    "--data-dir", help="Folder with the four Fashion-MNIST .gz files "
    "(default: $FASHION_MNIST_DIR, the cache, /usr/share/datasets/fashion-mnist, download).")]
Offline = Annotated[bool, typer.Option("--offline", help="Never download the data.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
# Training options shared by `train` and `cv` (defaults: the faithful Keras recipe).
Model = Annotated[str, typer.Option(help="Architecture.")]
Epochs = Annotated[int, typer.Option(help="Passes over the training data.")]
BatchSize = Annotated[int, typer.Option(help="Images per SGD step.")]
Lr = Annotated[float, typer.Option(help="SGD learning rate.")]
Momentum = Annotated[float, typer.Option(help="SGD momentum (Keras-style).")]
Seed = Annotated[int, typer.Option(help="Random seed (init, split or folds, shuffling).")]
Threads = Annotated[int, typer.Option(help=(
    "Torch threads. 0: automatic (the seed model's fused step times all cores, one fewer and "
    "one while it trains and keeps the fastest; other models: one per core)."))]


def _progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def _load_data(data_dir: Path | None, offline: bool, quiet: bool = False):
    from .data import load_fashion_mnist

    return load_fashion_mnist(data_dir, offline=offline, progress=not quiet)


# ---------------------------------------------------------------------------------------------


@app.command()
def data(data_dir: DataDir = None, offline: Offline = False,
         grid: Annotated[Optional[Path], typer.Option(
             help="Write a PNG grid of sample training images, one row per class.")] = None,
         ) -> None:
    """Find, verify and describe the Fashion-MNIST data."""
    from .data import CLASS_NAMES, class_counts

    ds = _load_data(data_dir, offline)
    typer.echo(f"data: {ds.directory}")
    for name, digest in (ds.checksums or {}).items():
        typer.echo(f"  {name:<24} sha256 {digest[:16]}... verified")
    typer.echo(f"train: {len(ds.train_labels):,} images   test: {len(ds.test_labels):,} images")
    typer.echo(f"{'class':<12} {'train':>7} {'test':>6}")
    for name, n_train, n_test in zip(CLASS_NAMES, class_counts(ds.train_labels),
                                     class_counts(ds.test_labels), strict=True):
        typer.echo(f"{name:<12} {n_train:>7,} {n_test:>6,}")
    if grid is not None:
        from .plots import sample_grid

        sample_grid(ds.train_images, ds.train_labels, grid)
        typer.echo(f"sample grid -> {grid}")


@app.command()
def train(
    model: Annotated[Optional[str], typer.Option(
        help="Architecture: seed or best [default: the recipe's].", show_default=False)] = None,
    recipe: Annotated[Optional[str], typer.Option(
        help="faithful (the Keras article: batch 32, SGD 0.01, 10 epochs), fast (seed CNN: "
        "batch 128, 6 epochs, one-cycle LR 0.1, Nesterov, label smoothing 0.1, flips) or best "
        "(the best model's; see README) [default: best for --model best, else faithful]. "
        "Options given explicitly override the recipe.", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(
        help="Passes over the training data [recipe: 10 | 6 | 36].", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        help="Images per SGD step [recipe: 32 | 128 | 128].", show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(
        help="SGD (peak) learning rate [recipe: 0.01 | 0.1 | 0.1].", show_default=False)] = None,
    momentum: Momentum = 0.9, seed: Seed = 0,
    val_fraction: Annotated[float, typer.Option(
        help="Share of the training set held out for validation.")] = 0.1,
    threads: Threads = 0,
    fused: Annotated[Optional[bool], typer.Option(
        "--fused/--no-fused", help="Seed CNN: the hand-fused training step (same result, "
        "2-3x faster; the default); --no-fused runs plain PyTorch autograd.",
        show_default=False)] = None,
    numba: Annotated[Optional[bool], typer.Option(
        "--numba/--no-numba", help="Fused step: the conv block as compiled numba kernels "
        "(same result, faster; the default); --no-numba uses torch operations.",
        show_default=False)] = None,
    channels_last: Annotated[Optional[bool], typer.Option(
        "--channels-last/--no-channels-last", help="Plain path: channels-last activations "
        "(faster convolutions and pooling on CPU) [recipe].", show_default=False)] = None,
    bf16: Annotated[Optional[bool], typer.Option(
        "--bf16/--no-bf16", help="bfloat16 matrix products: autocast on the plain path, "
        "fc1's products in the fused step; weights and update stay float32 [recipe].",
        show_default=False)] = None,
    weight_decay: Annotated[Optional[float], typer.Option(
        help="SGD weight decay [recipe].", show_default=False)] = None,
    augment: Annotated[Optional[str], typer.Option(
        help="Augmentation preset: none or photo (flip, shift, scale, contrast, sharpness, "
        "noise); default: the recipe's.", show_default=False)] = None,
    flip: Annotated[Optional[bool], typer.Option(
        "--flip/--no-flip", help="Mirror left-right (overrides the preset).",
        show_default=False)] = None,
    shift: Annotated[Optional[float], typer.Option(help="Max shift, pixels.")] = None,
    scale: Annotated[Optional[float], typer.Option(help="Max relative zoom.")] = None,
    contrast: Annotated[Optional[float], typer.Option(help="Gain/gamma range.")] = None,
    sharpness: Annotated[Optional[float], typer.Option(help="Blur/sharpen range.")] = None,
    noise: Annotated[Optional[float], typer.Option(help="Max noise std (0..255).")] = None,
    translate: Annotated[Optional[int], typer.Option(
        help="Max whole-pixel shift.", show_default=False)] = None,
    erase: Annotated[Optional[float], typer.Option(
        help="Random-erasing probability.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder.")] = None,
    resume: Annotated[Optional[Path], typer.Option(
        help="Continue the interrupted run in this folder (its saved config is used).")] = None,
    nproc: Annotated[int, typer.Option(
        min=1, help="Processes to train with (torchrun, gloo backend): the same result as one "
        "process, the batches split between them.")] = 1,
    data_dir: DataDir = None, offline: Offline = False, quiet: Quiet = False,
) -> None:
    """Train a model; writes model.pt, metrics.json and learning_curves.png into --out."""
    from .training import recipe_config, resolve_run_config, run_training
    from .training.distributed import init_from_env, torchrun_command, world

    if nproc > 1 and "WORLD_SIZE" not in os.environ:  # start nproc copies of this command
        command = torchrun_command(nproc, _without_option(sys.argv[1:], "--nproc"))
        sys.stdout.flush()
        os.execv(command[0], command)
    init_from_env()
    quiet = quiet or world()[0] != 0  # one progress display: the first process's

    if resume is not None:
        config, out_dir = None, resume
    else:
        config = recipe_config(recipe, augment, model=model, epochs=epochs,
                               batch_size=batch_size, lr=lr, momentum=momentum, seed=seed,
                               val_fraction=val_fraction, threads=threads, fused=fused, numba=numba,
                               channels_last=channels_last, bf16=bf16,
                               weight_decay=weight_decay, translate=translate, erase=erase,
                               flip=flip,
                               shift=shift, scale=scale, contrast=contrast,
                               sharpness=sharpness, noise=noise)
        out_dir = out or Path("runs") / f"{config.model}-seed{seed}"
    resolve_run_config(config, out_dir, resume is not None)  # a bad folder fails before the data
    ds = _load_data(data_dir, offline, quiet)
    try:
        metrics = run_training(config, ds, out_dir, resume=resume is not None,
                               progress=_progress(quiet))
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted; continue with: fashion-cnn train --resume {out_dir}",
                   err=True)
        raise typer.Exit(130) from None
    if world()[0] != 0:
        return
    typer.echo(f"Accuracy : {100 * metrics['test_accuracy']:.3f}  (official test set)")
    typer.echo(f"train time {metrics['train_seconds']:.1f}s, "
               f"{metrics['images_per_second']:,.0f} images/s; results in {out_dir}")


@app.command()
def cv(
    folds: Annotated[int, typer.Option(help="Number of folds.")] = 5,
    model: Model = "seed", epochs: Epochs = 10, batch_size: BatchSize = 32, lr: Lr = 0.01,
    momentum: Momentum = 0.9, seed: Seed = 0, threads: Threads = 0,
    out: Annotated[Path, typer.Option(
        help="Output folder; re-running with the same folder skips finished folds.")
    ] = Path("runs/cv"),
    data_dir: DataDir = None, offline: Offline = False, quiet: Quiet = False,
) -> None:
    """k-fold cross-validation on the training set: per-fold accuracy, mean, std, plots."""
    from .training import TrainConfig, cross_validate

    config = TrainConfig(model=model, epochs=epochs, batch_size=batch_size, lr=lr,
                         momentum=momentum, seed=seed, val_fraction=0.0, threads=threads)
    ds = _load_data(data_dir, offline, quiet)
    try:
        summary = cross_validate(config, ds, out, folds, progress=_progress(quiet))
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted; finished folds are kept: re-run with --out {out}", err=True)
        raise typer.Exit(130) from None
    for k, acc in enumerate(summary["fold_accuracies"], 1):
        typer.echo(f"> fold {k}: {100 * acc:.3f}")
    typer.echo(f"Accuracy: mean={100 * summary['mean_accuracy']:.3f} "
               f"std={100 * summary['std_accuracy']:.3f}, n={folds}; results in {out}")


@app.command()
def evaluate(
    checkpoint: Annotated[Optional[str], typer.Argument(
        help="Checkpoint file or run folder, or a shipped model name (default: the shipped "
        "default model).")] = None,
    model: Annotated[Optional[str], typer.Option(
        help="The same as CHECKPOINT, as `predict` and `app` take it.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plots: Annotated[Optional[Path], typer.Option(
        help="Write confusion_matrix.png and worst_mistakes.png into this folder.")] = None,
    tta: Annotated[Optional[bool], typer.Option(
        "--tta/--no-tta", help="Average each image with its mirror image (test-time "
        "augmentation) [default: as the model ships].", show_default=False)] = None,
    data_dir: DataDir = None, offline: Offline = False,
) -> None:
    """Score a model on the official 10,000 test images."""
    from .evaluate import evaluate as run_evaluation
    from .evaluate import format_report, worst_mistakes
    from .models import load_checkpoint

    if checkpoint is not None and model is not None:
        raise FashionCNNError("Give the model once: as CHECKPOINT or as --model.")
    net, meta = load_checkpoint(checkpoint or model)
    if tta is not None:
        if not hasattr(net, "tta"):
            raise FashionCNNError(f"The {meta['arch']} model has no test-time augmentation.")
        net.tta = tta
    ds = _load_data(data_dir, offline, quiet=as_json)
    report = run_evaluation(net, ds.test_images, ds.test_labels)
    report["checkpoint"] = meta["path"]
    report["arch"] = meta["arch"]
    report["tta"] = getattr(net, "tta", False)
    if plots is not None:
        from .plots import confusion_plot, mistakes_grid

        confusion_plot(report["confusion_matrix"], plots / "confusion_matrix.png")
        mistakes_grid(ds.test_images, worst_mistakes(net, ds.test_images, ds.test_labels),
                      plots / "worst_mistakes.png")
    if as_json:
        typer.echo(json.dumps(report))
    else:
        flip = ", test-time flip averaging" if report["tta"] else ""
        typer.echo(f"model: {meta['arch']} ({meta['path']}){flip}")
        typer.echo(format_report(report))
        if plots is not None:
            typer.echo(f"plots -> {plots}")


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command()
def predict(
    paths: Annotated[list[str], typer.Argument(
        help="Image files or folders (every image inside); '-' reads one image from stdin.",
        show_default=False)],
    model: Annotated[Optional[str], typer.Option(
        help="Checkpoint file or run folder, or a shipped model name.")] = None,
    top_k: Annotated[int, typer.Option(min=1, max=10, help="Classes listed per image.")] = 3,
    output: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    recursive: Annotated[bool, typer.Option(
        "--recursive", "-r", help="Also look in subfolders.")] = False,
    quiet: Quiet = False,
) -> None:
    """Classify pictures of clothing. Exit status 1 if any picture could not be read."""
    from tqdm import tqdm

    from .predict import Classifier, collect_pictures, format_predictions

    names, sources = collect_pictures(paths, recursive, stdin=sys.stdin.buffer)
    classifier = Classifier(model)
    results = tqdm(classifier.iter_classify(sources, names, top_k=top_k), total=len(names),
                   unit="img", file=sys.stderr, disable=True if quiet or len(names) < 50 else None)
    failed: list[str] = []
    for line in format_predictions(results, output.value, names, failed):
        typer.echo(line)
    if failed:
        typer.echo(f"{len(failed)} of {len(names)} pictures could not be classified", err=True)
    raise typer.Exit(1 if failed else 0)


@app.command("app")
def app_command(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(
        help="Address to listen on; 0.0.0.0 shares the app on your network.")] = "localhost",
    model: Annotated[Optional[str], typer.Option(
        help="Checkpoint file or run folder, or a shipped model name.")] = None,
) -> None:
    """Start the web app (Streamlit): upload clothing pictures and see what they are."""
    import importlib.util
    import os

    from .models import load_checkpoint
    from .serve import app_env, streamlit_command

    if importlib.util.find_spec("streamlit") is None:
        raise FashionCNNError("The app needs Streamlit: pip install 'fashion-cnn[app]'.")
    load_checkpoint(model)  # a wrong checkpoint fails here, with a clear message
    if model and Path(model).exists():
        model = str(Path(model).resolve())  # the server may not share our idea of '.'
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    typer.echo(f"fashion-cnn app: open http://{shown}:{port} in your browser (Ctrl-C stops it)",
               err=True)
    # Become the server (exec): signals and the exit status are then Streamlit's own, and
    # stopping this process cannot leave an orphaned server behind.
    command = streamlit_command(port, host)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, app_env(model))


def _without_option(args: list[str], name: str) -> list[str]:
    """args minus `name VALUE` / `name=VALUE`."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI on `argv` and return the exit status (never a user traceback)."""
    try:
        app(args=argv, prog_name="fashion-cnn")  # standalone mode: ends with SystemExit
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except FashionCNNError as err:
        typer.echo(f"error: {err}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("\ninterrupted", err=True)
        return 130
    return 0


def run() -> None:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":  # `python -m fashion_cnn.cli`, as torchrun starts each process
    run()
