"""The `fashion-cnn` command: a thin typer shell over the library.

User mistakes (FashionCNNError) print one line to stderr and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional, get_type_hints

import typer

from .batching import BatchSettings
from .errors import FashionCNNError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Classify clothing images with CNNs trained on Fashion-MNIST.")


def _version(asked: bool) -> None:
    if asked:
        from . import __version__

        typer.echo(f"fashion-cnn {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")
] = False) -> None:
    """Classify clothing images with CNNs trained on Fashion-MNIST."""

DataDir = Annotated[Optional[Path], typer.Option(
    "--data-dir", help="Folder with the four Fashion-MNIST .gz files (`evaluate` needs only the "
    "two t10k ones; default: $FASHION_MNIST_DIR, the cache, /usr/share/datasets/fashion-mnist, "
    "download).")]
Offline = Annotated[bool, typer.Option("--offline", help="Never download the data.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Out = Annotated[Optional[Path], typer.Option(help="Output folder.", show_default=False)]
Backend = Annotated[str, typer.Option(  # checked by predict.choose_backend (predict.BACKENDS)
    help="What runs the model: torch, onnxruntime (its checked ONNX export; needs the onnx "
    "extra of fashion-cnn), onnxruntime-int8 (that export quantized to int8: faster, top class "
    "checked against PyTorch's; calibrated on the training images) or auto (the one "
    "benchmarks/backend_speed.py measured faster for this model; torch without onnxruntime).")]
Nproc = Annotated[int, typer.Option(
    min=1, help="Processes to train with (gloo backend): the batches split between "
    "them, the same training up to float rounding (sums taken in another order).")]


CHANCE_LEVEL = 0.15  # below this accuracy (10 classes: 10% by guessing) `train` warns


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


# ---------------------------------------------------------------------------------------------
# Training options: one per field of TrainConfig (and of its nested Augment), generated here


def _defaults_note(name: str, default: object) -> str:
    """' (default: D; fast recipe: F, ...)' for an option, from the config and the recipes."""
    from .training.config import RECIPES

    by_recipe = "".join(f", {r} recipe: {o[name]}" for r, o in RECIPES.items() if name in o)
    return f" (default: {default}{by_recipe})"


def _training_options() -> list[inspect.Parameter]:
    """--recipe, --augment PRESET, then every config field with help text, as typer options
    that default to None (not given: the recipe's value)."""
    from .training.config import PRESETS, RECIPE_NOTES, RECIPES, Augment, TrainConfig

    recipes = "; ".join(
        f"{name}: {RECIPE_NOTES[name]}" + (" (" + ", ".join(f"{k}={v}" for k, v in o.items())
                                           + ")" if o else "")
        for name, o in RECIPES.items())
    options = {
        "recipe": (str, ["--recipe"], f"Named recipe. {recipes}. Default: the model's own "
                   "recipe if it has one, else faithful. Options given explicitly override it."),
        "augment": (str, ["--augment"], "Augmentation preset: " + "; ".join(
            f"{n} ({', '.join(f'{k}={v}' for k, v in asdict(a).items() if v) or 'off'})"
            for n, a in PRESETS.items()) + ". Overrides the recipe's augmentation; the single "
            "augmentation options below override the preset."),
    }
    for cls in (TrainConfig, Augment):
        hints = get_type_hints(cls)
        for f in fields(cls):
            if "help" in f.metadata:
                dash = f.name.replace("_", "-")
                names = [f"--{dash}/--no-{dash}"] if hints[f.name] is bool else [f"--{dash}"]
                options[f.name] = (hints[f.name], names,
                                   f.metadata["help"] + _defaults_note(f.name, f.default))
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                              annotation=Annotated[Optional[kind], typer.Option(
                                  *names, help=text, show_default=False)])
            for name, (kind, names, text) in options.items()]


def training_command(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with every training option added in front of its own; they reach it as one
    dict, `options` (name -> value, None where not given)."""
    extra = _training_options()
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for p in inspect.signature(command, eval_str=True).parameters.values()
           if p.name != "options"]

    @functools.wraps(command)
    def wrapper(**kwargs: object) -> None:
        options = {p.name: kwargs.pop(p.name) for p in extra}
        command(options=options, **kwargs)

    wrapper.__signature__ = inspect.Signature(extra + own)  # what typer reads
    wrapper.__annotations__ = {p.name: p.annotation for p in extra + own}
    return wrapper


def _config(options: dict[str, object], resume: Path | None, **fixed: object):
    """The run's TrainConfig from the options (None with --resume: the saved one is used)."""
    from .training.config import recipe_config

    if resume is not None:
        ignored = [k for k, v in options.items() if v is not None]
        if ignored:
            typer.echo(f"note: --resume continues with the run's saved config; ignoring "
                       f"{', '.join('--' + k.replace('_', '-') for k in ignored)}", err=True)
        return None
    settings = {**options, **fixed}
    recipe, preset = settings.pop("recipe"), settings.pop("augment")
    return recipe_config(recipe, preset, **settings)


def _new_folder(out: Path | None) -> Path | None:
    """--out for a new run; refuses the current folder (also what an empty --out gives, as an
    unset "$OUT" does): a run's files would mix with the user's own."""
    if out is not None and out == Path():
        raise FashionCNNError("--out is empty or the current folder; a run writes config.json, "
                              "model.pt and more into its own folder. Name one, e.g. --out "
                              "runs/mine.")
    return out


def _start_processes(nproc: int, data: Callable[[], object]) -> bool:
    """With nproc > 1, run nproc copies of this command (`distributed.launch`) and exit with
    their status; in a copy, join the process group. True for the process that reports (the
    first). `data()` finds and checks the data first, once: a problem with it is one message,
    not one per process, and a download happens once."""
    from .training.distributed import init_from_env, launch, world

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        data()
        sys.stdout.flush()
        argv = ["-m", "fashion_cnn.cli", *_without_option(sys.argv[1:], "--nproc")]
        raise typer.Exit(launch(nproc, argv))
    init_from_env()
    return world()[0] == 0


@app.command()
@training_command
def train(
    options: dict[str, object],
    out: Out = None,
    resume: Annotated[Optional[Path], typer.Option(
        help="Continue the interrupted run in this folder (its saved config is used).")] = None,
    nproc: Nproc = 1,
    test: Annotated[Optional[bool], typer.Option(
        help="Score the official test set once, at the end; --no-test leaves it alone (for "
             "runs that choose something, on the validation split). Default: score it, or, "
             "with --resume, as the run was started.",
        show_default=False)] = None,
    data_dir: DataDir = None, offline: Offline = False, quiet: Quiet = False,
) -> None:
    """Train a model; writes model.pt, metrics.json and learning_curves.png into --out."""
    from .models import tta_views
    from .training import resolve_run_config, run_training
    from .training.distributed import finish

    config = _config(options, resume)
    out_dir = resume or _new_folder(out) or Path("runs") / f"{config.model}-seed{config.seed}"
    resolve_run_config(config, out_dir, resume is not None, test)  # fails before the data
    # ... and before --nproc's processes start: one message, exit status 2
    first = _start_processes(nproc, lambda: _load_data(data_dir, offline, quiet))
    quiet = quiet or not first  # one progress display: the first process's
    ds = _load_data(data_dir, offline, quiet)
    try:
        metrics = run_training(config, ds, out_dir, resume=resume is not None,
                               progress=_progress(quiet), score_test=test)
        finish()
    except KeyboardInterrupt:
        if first:  # one message, however many processes
            typer.echo(f"\ninterrupted; continue with: fashion-cnn train --resume {out_dir}",
                       err=True)
        raise typer.Exit(130) from None
    if not first:
        return
    if "test_accuracy" not in metrics:
        typer.echo(f"Accuracy : {100 * metrics['val_accuracy']:.2f}%  (validation split; "
                   "test set not scored)")
    else:
        typer.echo(f"Accuracy : {100 * metrics['test_accuracy']:.2f}%  (official test set)")
    if "test_accuracy_tta" in metrics:
        views = tta_views(metrics["config"].get("tta_shift", 0))
        typer.echo(f"           {100 * metrics['test_accuracy_tta']:.2f}%  averaged with "
                   f"{views} (test-time augmentation; `evaluate --tta`)")
    typer.echo(f"train time {metrics['train_seconds']:.1f}s, "
               f"{metrics['images_per_second']:,.0f} images/s; results in {out_dir}")
    accuracy = metrics.get("test_accuracy", metrics.get("val_accuracy"))
    if accuracy is not None and accuracy < CHANCE_LEVEL:
        typer.echo(f"warning: {100 * accuracy:.1f}% is chance level (10 classes): the model "
                   "learned nothing. The usual cause is a learning rate too high for the run "
                   f"(--lr {metrics['config']['lr']:g}).", err=True)


@app.command()
@training_command
def cv(
    options: dict[str, object],
    folds: Annotated[Optional[int], typer.Option(
        help="Number of folds (default 5; with --resume, the run's).")] = None,
    out: Annotated[Path, typer.Option(
        help="Output folder; re-running with the same folder skips finished folds.")
    ] = Path("runs/cv"),
    resume: Annotated[Optional[Path], typer.Option(
        help="Continue the cross-validation in this folder with its saved config "
        "(finished folds are kept).")] = None,
    nproc: Nproc = 1,
    data_dir: DataDir = None, offline: Offline = False, quiet: Quiet = False,
) -> None:
    """k-fold cross-validation on the training set: per-fold accuracy, mean, std, plots."""
    from .training import cross_validate
    from .training.distributed import finish
    from .training.run import check_cv_config, check_cv_folder, saved_config, saved_folds

    if resume is not None:
        config, out = saved_config(resume / "config.json"), resume
        _config(options, resume)  # says which options it ignores
        folds = saved_folds(resume) if folds is None else folds
    else:
        config = _config(options, None, val_fraction=0.0)  # each fold is held out in turn
        out = _new_folder(out)
    folds = 5 if folds is None else folds
    check_cv_config(config, folds)  # both fail before the data and --nproc's processes
    check_cv_folder(out, config, folds)
    first = _start_processes(nproc, lambda: _load_data(data_dir, offline, quiet))
    quiet = quiet or not first
    ds = _load_data(data_dir, offline, quiet)
    try:
        summary = cross_validate(config, ds, out, folds, progress=_progress(quiet))
        finish()
    except KeyboardInterrupt:
        if first:
            typer.echo(f"\ninterrupted; finished folds are kept: continue with --resume {out}",
                       err=True)
        raise typer.Exit(130) from None
    if not first:
        return
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
        "--tta/--no-tta", help="Average each image with its mirror image, and its shifts for a "
        "model trained with --tta-shift (test-time augmentation; default: as the model "
        "ships).", show_default=False)] = None,
    backend: Backend = "auto",
    data_dir: DataDir = None, offline: Offline = False,
) -> None:
    """Score a model on the official 10,000 test images."""
    from .data import load_test_set
    from .evaluate import format_report, predict_logits, report_of, worst_mistakes
    from .files import file_in_the_way
    from .models import tta_views
    from .predict import Classifier

    if checkpoint is not None and model is not None:
        raise FashionCNNError("Give the model once: as CHECKPOINT or as --model.")
    blocking = None if plots is None else file_in_the_way(plots)  # before the scoring
    if blocking is not None:
        raise FashionCNNError(f"--plots {plots}: {blocking} is a file; give a folder for the "
                              "plots.")
    warn_if_shadowed(checkpoint or model)
    classifier = Classifier(checkpoint or model, backend=backend, tta=tta)
    net, meta = classifier.net, classifier.meta
    # torch: the model itself (evaluation's fused forward pass where the model has one).
    forward = net if classifier.backend == "torch" else classifier.logits
    images, labels = load_test_set(data_dir, offline=offline, progress=not as_json)
    logits = predict_logits(forward, images, progress="" if as_json else "scoring")
    report = report_of(logits, labels)
    report["checkpoint"] = meta["path"]
    report["arch"] = meta["arch"]
    report["tta"] = getattr(net, "tta", False)
    report["backend"] = classifier.backend
    if plots is not None:
        from .plots import confusion_plot, mistakes_grid

        confusion_plot(report["confusion_matrix"], plots / "confusion_matrix.png")
        mistakes_grid(images, worst_mistakes(logits, labels), plots / "worst_mistakes.png")
    if as_json:
        typer.echo(json.dumps(report))
    else:
        flip = (f", test-time augmentation ({tta_views(getattr(net, 'tta_shift', 0))})"
                if report["tta"] else "")
        typer.echo(f"model: {meta['arch']} ({meta['path']}){flip}, backend {classifier.backend}")
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
    backend: Backend = "auto",
    upright: Annotated[bool, typer.Option(
        help="Turn a photo whose garment lies on its side upright before classifying it.")
    ] = True,
    out: Annotated[Optional[Path], typer.Option(
        help="Write the results to this file instead of the screen; it appears only once every "
        "picture is done (an interrupted run leaves no half-written file).",
        show_default=False)] = None,
    quiet: Quiet = False,
) -> None:
    """Classify pictures of clothing. Exit status 1 if any picture could not be read."""
    from tqdm import tqdm

    from .files import atomic_path
    from .predict import Classifier
    from .records import collect_pictures, format_predictions

    # stdin is None when it is closed (`<&-`, some service managers)
    names, sources = collect_pictures(paths, recursive, stdin=getattr(sys.stdin, "buffer", None))
    _check_out(out, sources, output.value)
    warn_if_shadowed(model)
    classifier = Classifier(model, backend=backend, upright=upright)
    results = tqdm(classifier.iter_classify(sources, names, top_k=top_k), total=len(names),
                   unit="img", file=sys.stderr, disable=True if quiet or len(names) < 50 else None)
    failed: list[str] = []
    lines = format_predictions(results, output.value, names, failed)
    if out is None:
        for line in lines:
            typer.echo(line)
    else:
        with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as file:
            file.writelines(line + "\n" for line in lines)
        if not quiet:
            typer.echo(f"wrote {out}", err=True)
    if failed:
        typer.echo(f"{len(failed)} of {len(names)} picture{'s' * (len(names) > 1)} could not be "
                   "classified", err=True)
    raise typer.Exit(1 if failed else 0)


def _check_out(out: Path | None, sources: list[object], fmt: str) -> None:
    """Refuse, before any picture is classified, an --out that cannot take the results: the
    current folder (what an empty --out gives), a folder, or one of the pictures themselves
    (the results would overwrite it)."""
    if out is None:
        return
    example = f"predictions.{'txt' if fmt == 'table' else fmt}"
    if out == Path() or out.is_dir():
        where = "is empty or the current folder" if out == Path() else f"{out} is a folder"
        raise FashionCNNError(f"--out {where}; give a file name such as "
                              f"{out / example}.")
    if out.is_file() and any(isinstance(s, Path) and s.is_file() and out.samefile(s)
                             for s in sources):  # (a missing picture has no file to compare)
        raise FashionCNNError(f"--out {out} is one of the pictures to classify: the results "
                              f"would overwrite it. Give another file name, such as "
                              f"{out.with_name(example)}.")


def warn_if_shadowed(model: str | None) -> None:
    """Warn when --model names a shipped model and a folder or file of that name is here too:
    the shipped model is the one used."""
    from .models import SHIPPED_MODELS

    if model in SHIPPED_MODELS and Path(model).exists():
        typer.echo(f"warning: --model {model} is the shipped model {model!r}; for the "
                   f"{'folder' if Path(model).is_dir() else 'file'} here, write ./{model}",
                   err=True)


class ExportFormat(str, Enum):
    onnx = "onnx"


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="The file to write, e.g. best.onnx.",
                                      show_default=False)],
    export_format: Annotated[ExportFormat, typer.Option(
        "--format", help="File format (ONNX needs the onnx extra of fashion-cnn).")
    ] = ExportFormat.onnx,
    model: Annotated[Optional[str], typer.Option(
        help="Checkpoint file or run folder, or a shipped model name.")] = None,
    int8: Annotated[bool, typer.Option(
        "--int8", help="Quantize to int8 (onnxruntime static quantization, calibrated on "
        "training images): a smaller file that runs faster; checked by the same top class as "
        "PyTorch on 99% of the check images instead of the logits.")] = False,
    data_dir: DataDir = None, offline: Offline = False, quiet: Quiet = False,
) -> None:
    """Export a model for other runtimes, checked against PyTorch before the file is written.

    The ONNX graph takes uint8 images [N, 28, 28] (N free) and returns logits [N, 10]; the
    pixel scaling and test-time views are inside it; class names, preprocessing settings, the
    unsure threshold, architecture and checkpoint SHA-256 are in its metadata.
    """
    from .data import load_test_images
    from .export import (
        CHECK_IMAGES,
        INT8_MIN_AGREEMENT,
        MAX_LOGIT_DIFF,
        OPSET,
        calibration_images,
        check_target,
        export_onnx,
        require_onnx,
    )
    from .models import load_checkpoint

    # Mistakes fail before any work: a missing package, a bad --out, a bad checkpoint.
    require_onnx()
    warn_if_shadowed(model)
    meta = load_checkpoint(model)[1]
    check_target(out, meta["path"])
    checkpoint = meta["path"]
    images = load_test_images(data_dir, offline=offline, progress=not quiet)[:CHECK_IMAGES]
    calibration = (calibration_images(meta, data_dir, offline=offline, progress=not quiet)
                   if int8 else None)
    if not quiet:
        kind = f", int8 calibrated on {len(calibration):,} training images" if int8 else ""
        typer.echo(f"exporting {checkpoint} to ONNX (opset {OPSET}{kind}), then checking it "
                   f"on {len(images):,} test images...", err=True)
    result = export_onnx(checkpoint, out, images, calibration)
    if not quiet:
        limit = (f"at least {INT8_MIN_AGREEMENT:.0%} the same top class" if int8 else
                 f"limit {MAX_LOGIT_DIFF:g}")
        typer.echo(f"checked: max |logit difference| {result.max_logit_diff:.2g} ({limit}), "
                   f"same top class on {result.same_argmax:,} of {result.n_checked:,} images",
                   err=True)
    typer.echo(f"wrote {result.path} ({result.bytes / 1e6:.1f} MB, {result.arch}"
               f"{', int8' if int8 else ''}, checkpoint sha256 "
               f"{result.checkpoint_sha256[:16]}...)")


@app.command("app")
def app_command(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(
        help="Address to listen on; 0.0.0.0 shares the app on your network.")] = "localhost",
    model: Annotated[Optional[str], typer.Option(
        help="Checkpoint file or run folder, or a shipped model name.")] = None,
) -> None:
    """Start the web app (Streamlit): upload clothing pictures and see what they are."""
    import importlib.util
    import os

    from .app_server import app_env, streamlit_command
    from .models import SHIPPED_MODELS, load_checkpoint
    from .ports import bind

    if importlib.util.find_spec("streamlit") is None:
        raise FashionCNNError("The app needs Streamlit: pip install -e '.[app]' in "
                              "fashion-cnn's checkout.")
    warn_if_shadowed(model)
    load_checkpoint(model)  # a wrong checkpoint fails here, with a clear message
    if model and model not in SHIPPED_MODELS and Path(model).exists():
        model = str(Path(model).resolve())  # the server may not share our idea of '.'
    bind(host, port).close()  # a taken port fails here, before the address is announced
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    typer.echo(f"fashion-cnn app: open http://{shown}:{port} in your browser (Ctrl-C stops it)",
               err=True)
    # Become the server (exec): signals and the exit status are then Streamlit's own, and
    # stopping this process cannot leave an orphaned server behind.
    command = streamlit_command(port, host)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, app_env(model))


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(
        help="Address to listen on; 0.0.0.0 serves your network (set --api-key then).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8000,
    model: Annotated[Optional[str], typer.Option(
        help="Checkpoint file or run folder, or a shipped model name.")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Server processes, each with its own copy of the model.")] = 1,
    api_key: Annotated[Optional[str], typer.Option(
        envvar="FASHION_CNN_API_KEY", show_default=False,
        help="Require this key ('X-API-Key: KEY' or 'Authorization: Bearer KEY') on every "
        "endpoint but /v1/health, /v1/ready and the docs (/docs, /openapi.json).")] = None,
    backend: Backend = "auto",
    batching: Annotated[bool, typer.Option(
        "--batching/--no-batching", help="Let concurrent requests share forward passes.")
    ] = True,
    max_batch: Annotated[int, typer.Option(
        min=1, help="Pictures per shared forward pass.")] = BatchSettings.max_batch,
    max_wait_ms: Annotated[float, typer.Option(
        min=0, help="How long a forward pass waits for requests still being decoded.")
    ] = BatchSettings.max_wait_ms,
) -> None:
    """Serve the model over HTTP (FastAPI): POST /v1/predict, /docs for the rest."""
    import importlib.util

    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise FashionCNNError("The HTTP API needs FastAPI: pip install -e '.[api]' in "
                              "fashion-cnn's checkout.")
    from .api import Settings, serve
    from .models import load_checkpoint
    from .ports import bind
    from .predict import choose_backend

    settings = Settings(model=model, backend=backend, api_key=api_key or None,
                        batching=batching, max_batch=max_batch, max_wait_ms=max_wait_ms)
    warn_if_shadowed(model)
    arch = load_checkpoint(model)[1]["arch"]  # a wrong checkpoint or backend, or a taken
    choose_backend(backend, arch)  # port, fails here, before the address is announced
    bind(host, port).close()
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    typer.echo(f"fashion-cnn serve: http://{shown}:{port}/docs (Ctrl-C stops it)", err=True)
    serve(settings, host, port, workers)


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


def _hint_dashed_files(args: list[str]) -> None:
    """After click's "No such option: -x": say so when -x is a file (`predict -- -x.jpg`)."""
    dashed = next((a for a in args if a.startswith("-") and a != "-" and Path(a).is_file()),
                  None)
    if dashed is not None:
        typer.echo(f"hint: {dashed} is a file; put -- before file names that start with '-': "
                   f"fashion-cnn predict -- {dashed}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI on `argv` and return the exit status (never a user traceback)."""
    try:
        app(args=argv, prog_name="fashion-cnn")  # standalone mode: ends with SystemExit
    except SystemExit as exit_:
        if isinstance(getattr(exit_.__context__, "__cause__", None), KeyboardInterrupt):
            typer.echo("\ninterrupted", err=True)  # typer turns Ctrl-C into a silent exit 130
        if exit_.code == 2:  # a usage error: was an "option" a file named like one?
            _hint_dashed_files(sys.argv[1:] if argv is None else argv)
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except FashionCNNError as err:
        typer.echo(f"error: {err}", err=True)
        return 2
    except OSError as err:  # the machine's doing (a full disk under `> out.csv`), not ours
        where = f" ({err.filename})" if err.filename else ""
        typer.echo(f"error: {err.strerror or err}{where}", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("\ninterrupted", err=True)
        return 130
    return 0


def run() -> None:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":  # `python -m fashion_cnn.cli`, as --nproc starts each process
    run()
