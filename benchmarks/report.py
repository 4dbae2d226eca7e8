"""Write docs/benchmarks.md and README's shipped-models table from the recorded results.

    python benchmarks/report.py          # rewrite both (atomically)
    python benchmarks/report.py --check  # exit 1, naming the stale file, if either is out of date

Every figure comes from a JSON file: benchmarks/results/*.json for docs/benchmarks.md;
src/fashion_cnn/weights/*/metrics.json (plus the model files' sizes and the prediction-speed
results) for README's block between the two marker comments. Each results file has a
renderer chosen by its name (`SECTIONS`); a file no renderer knows, or one whose layout a
renderer no longer understands, gets a generic section (its provenance and top-level numbers),
so a new benchmark never breaks the report. Nothing here reads the clock: the same JSON gives
the same text, byte for byte.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import statistics
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fashion_cnn.files import file_sha256
from fashion_cnn.models import SHIPPED_MODELS, training_seconds, tta_views

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
WEIGHTS_DIR = ROOT / "src" / "fashion_cnn" / "weights"
README = ROOT / "README.md"
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- begin generated: models (python benchmarks/report.py) -->"
END = "<!-- end generated: models -->"
PROVENANCE_KEYS = ("command", "cwd", "seed", "git_commit", "date", "versions", "machine",
                   "data_checksums")

Result = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Formatting helpers


def pct(x: float | None, digits: int = 2) -> str:
    """0.9530 -> '95.30%'; None -> 'n/a'."""
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def num(x: float | None, digits: int = 0) -> str:
    """Thousands separators: 23817.9 -> '23,818'; None -> 'n/a'."""
    return "n/a" if x is None else f"{x:,.{digits}f}"


def secs(x: float | None) -> str:
    """Seconds as '29 s' or '44.8 min'."""
    if x is None:
        return "n/a"
    return f"{x / 60:.1f} min" if x >= 600 else f"{x:.0f} s" if x >= 10 else f"{x:.2f} s"


def load(busy: int) -> str:
    """'quiet machine' or 'N busy-loop process(es) beside'."""
    return "quiet machine" if not busy else f"{busy} busy-loop process(es) beside"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def short_commit(commit: str | None) -> str:
    """First 10 hex digits, keeping a '-dirty' suffix."""
    if not commit:
        return "n/a"
    head, dash, dirty = commit.partition("-")
    return head[:10] + dash + dirty


def provenance(data: Result) -> str:
    """One line: the command that made the file, its date and commit."""
    if not any(k in data for k in ("command", "date", "git_commit")):
        return "_No provenance recorded: the file has no command, date or commit._"
    command = data.get("command", "n/a")
    where = f" (in `{data['cwd']}`)" if data.get("cwd") not in (None, ".") else ""
    line = (f"Command{where}: `{command}`; date: {data.get('date', 'n/a')}; "
            f"commit: `{short_commit(data.get('git_commit'))}`")
    versions = data.get("versions") or {}
    if "torch" in versions:
        line += f"; torch {versions['torch']}"
    machine = data.get("machine") or {}
    if machine.get("cpu_count"):
        line += f"; {machine['cpu_count']} CPUs"
        if machine.get("cpu_capability"):  # AVX2 against AVX512: speeds differ several-fold
            line += f" ({machine['cpu_capability']})"
    return line + "."


# ---------------------------------------------------------------------------------------------
# One renderer per kind of results file: (name, data) -> Markdown body (without heading)

PATH_LABELS = {
    "plain": "plain autograd (`--no-fused`)",
    "channels_last": "plain, `--channels-last`",
    "fused_torch": "fused step, torch ops (`--no-numba`)",
    "fused": "fused step + numba kernels (the default)",
    "fused_2threads": "the default with `--threads 2` (not automatic)",
    "fused_bf16": "the default with `--bf16`",
    "fused_serial_kernels": "the default, conv kernels on one thread",
}


def render_accuracy(name: str, d: Result) -> str:
    """Shipped models beside the published results."""
    rows = []
    for m in d["shipped"]:
        acc = pct(m["test_accuracy"])
        if m.get("tta"):
            acc += f" ({pct(m.get('test_accuracy_without_tta'))} without test-time flip)"
        rows.append([f"`{m['model']}`", acc, num(m.get("parameters")),
                     f"{m['file_mb']:.2f} MB ({m.get('weights', '?')})",
                     secs(m.get("train_seconds")), num(m.get("ms_per_image"), 2)])
    for m in d.get("published", []):
        rows.append([m["model"] + " (published)", pct(m["test_accuracy"], 1), "", "", "", ""])
    note = ("`ms per picture`: one 28x28 picture through `Classifier.classify_one`, as timed "
            "by `benchmarks/accuracy.py` on the CPU the line above names (on a busy machine; "
            "`predict_speed*.json` below is the dedicated measurement). `training`: every run "
            "behind the weights. Published results: the dataset's benchmark board.")
    return table(["model", "test accuracy", "parameters", "file", "training",
                  "ms per picture"], rows) + "\n\n" + note


def render_train_seed(name: str, d: Result) -> str:
    """Training speed of each path against Keras, per round."""
    per_round = d.get("speedup_vs_keras_per_round", {})
    rows = []
    for path, r in d["runs"].items():
        rounds = " / ".join(f"x{s:.2f}" for s in per_round.get(path, []))
        rows.append([PATH_LABELS.get(path, path), num(r["median_images_per_second"]),
                     f"x{d['speedup_vs_keras'][path]:.2f} ({rounds})" if path in per_round
                     else "n/a",
                     " / ".join(secs(s) for s in r["train_seconds_per_round"]),
                     pct(r["test_accuracy"]), secs(r.get("test_eval_seconds"))])
    k = d.get("keras") or {}
    if "median_images_per_second" in k:
        rows.append([f"Keras reference ({k.get('framework', '?')})",
                     num(k["median_images_per_second"]), "x1",
                     " / ".join(secs(s) for s in k.get("train_seconds_per_round", [])),
                     pct(k.get("test_accuracy")), secs(k.get("test_eval_seconds"))])
    intro = (f"{d['rounds']} rounds, taking turns, {load(d.get('busy_processes', 0))}; the "
             "faithful recipe (batch 32, SGD 0.01/0.9, 10 epochs).")
    return intro + "\n\n" + table(
        ["path", "median images/s", "vs Keras (per round)", "train time per round",
         "test accuracy", "test-set evaluation"], rows)


def render_train_profile(name: str, d: Result) -> str:
    """Per-phase time of one training step on each path."""
    phases = ["data", "forward", "backward", "optimizer"]
    rows = []
    for path, p in d["paths"].items():
        ms = p["median_ms_per_phase"]
        rows.append([PATH_LABELS.get(path, path), f"{p['ms_per_step']:.2f}",
                     num(p["images_per_second"])] + [f"{ms[k]:.2f}" for k in phases]
                    + [pct(p["fraction_of_peak"], 1)])
    intro = (f"Batch {d['batch_size']}, {d['steps']} steps x {d['rounds']} rounds per path; "
             f"{num(d['flop_per_image']['total'])} FLOP per training image; fp32 peak "
             f"{d['peak_gflops']:.0f} GFLOP/s ({d.get('cores', '?')} cores of {d.get('cpu', '?')}"
             f" at {d.get('clock_ghz', 0):.2f} GHz). Phase columns in ms; the fused step's "
             "backward includes adding fc1's weight gradient into the momentum buffer; `--bf16` "
             "runs fc1's products at twice the fp32 peak, so its share is not comparable.")
    return intro + "\n\n" + table(["path", "ms per step", "images/s"] + phases
                                  + ["share of fp32 peak"], rows)


def render_threads(name: str, d: Result) -> str:
    """Automatic thread count against fixed counts, quiet and busy."""
    scenarios = d["scenarios"]
    settings = {"auto": "automatic (the default)", "threads_2": "`--threads 2`",
                "threads_1": "`--threads 1`"}
    header = ["setting"] + [f"median images/s, {load(s['busy_processes'])}"
                            for s in scenarios.values()]
    rows = [[label] + [num(s[key]["median_images_per_second"]) if key in s else "n/a"
                       for s in scenarios.values()] for key, label in settings.items()]
    notes = []
    for s in scenarios.values():
        steps: dict[str, int] = {}
        for epoch in s.get("auto", {}).get("thread_steps", []):
            for count, n in (epoch or {}).items():  # None: the tuner stood down
                steps[count] = steps.get(count, 0) + n
        spread = (", ".join(f"{num(n)} steps on {c} thread(s)" for c, n in sorted(steps.items()))
                  or "no switch: the tuner stood down, as no other count trains alike here")
        notes.append(f"- {load(s['busy_processes'])}: the automatic runs made {spread}; "
                     "weights bit-identical to the all-cores run: "
                     f"{s.get('automatic_weights_equal_all_cores')}")
    intro = (f"{d['epochs']} epochs per run, {d['rounds']} rounds, taking turns, "
             f"{d.get('cores', '?')} cores.")
    return intro + "\n\n" + table(header, rows) + "\n\n" + "\n".join(notes)


def render_bf16(name: str, d: Result) -> str:
    """float32 against bfloat16 fc1 products, per seed."""
    seeds = sorted(d["float32"]["test_accuracy"], key=int)
    rows = [[s, pct(d["float32"]["test_accuracy"][s]), pct(d["bf16"]["test_accuracy"][s]),
             secs(d["float32"]["train_seconds"][s]), secs(d["bf16"]["train_seconds"][s])]
            for s in seeds]
    rows.append(["mean ± std", *(f"{pct(d[k]['mean_test_accuracy'])} ± "
                                 f"{100 * d[k]['std_test_accuracy']:.2f}" for k in
                                 ("float32", "bf16")), "", ""])
    target = d.get("target_test_accuracy")
    footer = (f"Seeds at or above the {pct(target, 1)} target: float32 "
              f"{d['float32'].get('seeds_meeting_target')}, bf16 "
              f"{d['bf16'].get('seeds_meeting_target')} of {len(seeds)}.")
    return table(["seed", "float32 test accuracy", "`--bf16` test accuracy",
                  "float32 train time", "bf16 train time"], rows) + "\n\n" + footer


def render_cpu_bf16(name: str, d: Result) -> str:
    """Seconds of one training step of the best model in each precision and memory layout."""
    rows = [[r["setting"], f"{r['step_seconds']:.2f} s", f"{r['vs_float32']:.2f}x"]
            for r in d["rows"]]
    have = "has" if d["native_bf16"] else "has no"
    return (table(["setting", "seconds per step (batch 128, median)", "vs float32"], rows)
            + f"\n\nThis CPU ({d['capability']}) {have} native bfloat16, so a training run "
            f"{'keeps' if d['native_bf16'] else 'switches off'} `--bf16` here "
            "(`training.steps.for_this_cpu`); channels-last stays on.")


def render_time_to_accuracy(name: str, d: Result) -> str:
    """One recipe's runs: training minutes, final and validation-selected test accuracy, and
    the minutes to 95% (with test-time augmentation in brackets where the model has it); the
    curve."""
    rows = []
    for seed, s in sorted(d["seeds"].items(), key=lambda item: int(item[0])):
        selected = f"{pct(s['selected_test_accuracy'])} (epoch {s['selected_epoch']})"
        to_95 = _minutes(s["minutes_to_95"])
        if "selected_test_accuracy_tta" in s:
            selected += f" [{pct(s['selected_test_accuracy_tta'])}]"
            to_95 += f" [{_minutes(s.get('minutes_to_95_tta'))}]"
        rows.append([d["recipe"], seed, str(len(s["epochs"])), f"{s['train_minutes']:.2f}",
                     pct(s["final_test_accuracy"]), selected, to_95])
    refs = "; ".join(f"{r['label']}: {pct(r['test_accuracy'])} after "
                     f"{r['train_minutes']:.2f} min (`{r['source']}`)"
                     for r in d.get("references", []))
    reach = _reach(d, "")
    if "all_seeds_reach_95_tta" in d:  # [in brackets]: with test-time augmentation
        views = tta_views(d.get("config", {}).get("tta_shift", 0))
        reach += (f" (with test-time augmentation: {_reach(d, '_tta')}; in brackets above: "
                  f"with test-time augmentation, each image averaged with {views})")
    footer = (f"Every seed reaches {pct(d['target_test_accuracy'], 0)}: {reach}. "
              "Minutes: cumulative `epoch_seconds` "
              "(no validation, no test scoring); selected: the test accuracy of the epoch with "
              "the best validation accuracy so far (the test set selects nothing). Reference "
              f"points: {refs or 'none'}.{_load_note(d)}\n\n"
              "![time to accuracy](../docs/time_to_accuracy.png)")
    return table(["recipe", "seed", "epochs", "train minutes", "final test accuracy",
                  "selected test accuracy", "minutes to 95%"], rows) + "\n\n" + footer


def _load_note(d: Result) -> str:
    """The 1-minute load average at the epochs' ends, lowest to highest (if recorded)."""
    if "load_average" not in d:
        return ""
    low, high = d["load_average"]
    return (f" Load average (1 min) at the epochs' ends, this training included: {low:.1f} to "
            f"{high:.1f}.")


def _reach(d: Result, suffix: str) -> str:
    """'yes, the slowest first after X min (its whole run: Y min)' or 'no' (suffix '' or
    '_tta'). The whole run is what a user of the recipe waits for; the first epoch at 95% is
    mid-schedule, before the learning rate has annealed."""
    if not d[f"all_seeds_reach_95{suffix}"]:
        return "no"
    whole = max(s["train_minutes"] for s in d["seeds"].values())
    return (f"yes, the slowest first after {_minutes(d[f'worst_minutes_to_95{suffix}'])} min "
            f"(the slowest whole run: {whole:.2f} min)")


def _minutes(x: float | None) -> str:
    """Minutes to 2 decimals, or 'never' (None: the mark was not reached)."""
    return "never" if x is None else f"{x:.2f}"


def hours_apart(a: str, b: str) -> float:
    """Hours between two ISO dates (results' `date` fields)."""
    return abs((datetime.fromisoformat(a) - datetime.fromisoformat(b)).total_seconds()) / 3600


def render_speedrun_ablation(name: str, d: Result) -> str:
    """One line per trick changed from the speed-run recipe: validation accuracy (plain and
    flip-averaged) against the recipe's own line, and training time against a run of the
    recipe near it in time (the machine's speed drifts)."""
    lines, base = d["lines"], d["lines"].get(d["base"])
    recipe_runs = [line for line in lines.values() if not line["changes"]]
    rows = []
    for label, line in lines.items():
        vs = "" if base is None or line is base else (
            f" ({100 * (line['val_accuracy_tta'] - base['val_accuracy_tta']):+.2f})")
        near = [r for r in recipe_runs if hours_apart(r["date"], line["date"]) <= 3]
        time_vs = "" if not line["changes"] else (
            f" ({line['train_seconds'] / near[0]['train_seconds']:.2f}x)" if near
            else " (no recipe run near it)")
        low, high = line["load_average"]
        rows.append([label, pct(line["val_accuracy"]), pct(line["val_accuracy_tta"]) + vs,
                     secs(line["train_seconds"]) + time_vs, f"{low:.1f}-{high:.1f}",
                     line["date"][:10], short_commit(line["git_commit"])])
    return (table(["line (one change from the recipe)", "validation", "validation, flips "
                   "averaged (vs recipe)", "training time (vs recipe)", "load", "date",
                   "commit"], rows)
            + "\n\nValidation split of the training set only (the test set is not looked at); "
            "one seed per line. The recipe's own seeds differ by a few tenths of a point (the "
            "five members in `ensemble_size.json`; the control line here repeats the recipe's "
            "seed, so it checks the code, not the noise), so differences that small are "
            "noise. Times are "
            "comparable only between lines trained on an equally quiet machine (load ~2) within "
            "a few hours of each other: this shared machine's speed drifts within a day and "
            "from day to day, so a line's time ratio is against a run of the recipe itself "
            "that ended within 3 hours of it (the recipe's line or the control), and a line "
            "with none gets no ratio.")


def render_cv(name: str, d: Result) -> str:
    """k-fold cross-validation of the faithful recipe."""
    rows = [[str(i + 1), pct(a)] for i, a in enumerate(d["fold_accuracies"])]
    rows.append(["mean ± std", f"{pct(d['mean_accuracy'])} ± {100 * d['std_accuracy']:.2f}"])
    plot = BENCHMARKS_MD.parent / "cv_boxplot.png"  # the run's own plot, copied with its cv.json
    return (f"{d['folds']} folds of the training set, model `{d['config']['model']}`; "
            f"all folds trained in {secs(d.get('train_seconds'))}.\n\n"
            + table(["fold", "accuracy"], rows)
            + (f"\n\n![the folds' accuracies]({plot.name})" if plot.is_file() else ""))


def render_fast_recipe(name: str, d: Result) -> str:
    """The fast recipe's runs and its settings."""
    rows = [[s, pct(r["test_accuracy"]), pct(r["val_accuracy"]), f"{r['train_seconds']:.1f} s",
             num(r.get("images_per_second"))] for s, r in sorted(d["runs"].items())]
    recipe = ", ".join(f"{k}={v}" for k, v in d.get("recipe", {}).items())
    targets = d.get("targets", {})
    footer = (f"Recipe: {recipe}.\n\nTargets: test accuracy {pct(targets.get('test_accuracy'))}"
              f", train time {targets.get('train_seconds', 'n/a')} s; all met: "
              f"{d.get('all_met')}. `train_seconds` counts shuffling, augmentation and every "
              "training step (validation and the final test are outside it).")
    return table(["seed", "test accuracy", "validation", "`train_seconds`", "images/s"],
                 rows) + "\n\n" + footer


def render_fast_search(name: str, d: Result) -> str:
    """Candidate fast recipes, scored on the validation split only."""
    rows = []
    for cand, c in d["candidates"].items():
        runs = c["runs"]
        accs = [runs[s]["val_accuracy"] for s in sorted(runs, key=int)]
        over = ", ".join(f"{k}={v}" for k, v in c.get("overrides", {}).items())
        times = [runs[s]["train_seconds"] for s in sorted(runs, key=int)]
        rows.append([cand, over, " / ".join(pct(a) for a in accs), pct(statistics.mean(accs)),
                     " / ".join(f"{t:.1f} s" for t in times)])
    return ("Overrides are relative to batch 128, one-cycle peak 0.1, Nesterov, label smoothing "
            "0.1, flips; seeds 0, 1, 2 where several.\n\n"
            + table(["candidate", "overrides", "validation (per seed)", "mean",
                     "train time (per seed)"], rows))


def render_augment(name: str, d: Result) -> str:
    """Augmentation flags on the seed model: clean and photo-style accuracy."""
    rows = [[run, f"`{' '.join(s['flags'])}`" if s["flags"] else "(faithful recipe)",
             pct(s["val_accuracy"]), pct(s["val_photo_accuracy"]), pct(s["test_accuracy"]),
             secs(s.get("train_seconds"))] for run, s in d["settings"].items()]
    return (f"Seed model, one run each; photo-style validation on {num(d.get('n_photo_images'))} "
            "validation images.\n\n"
            + table(["run", "flags", "validation", "photo-style validation", "test",
                     "train time"], rows))


HARD_CONDITIONS = ("pattern", "background", "gradient", "blur", "grey", "size")


def render_photo(name: str, d: Result) -> str:
    """Clean against photo-style accuracy, by format and enlargement; for the hard set, by each
    condition and on the articles alone; then by class."""
    head = table(["model", "split", "images", "clean", "as photos", "gap (points)"],
                 [[f"`{d['model']}`" + (f" ({d['backend']})" if "backend" in d else ""),
                   d["split"], num(d["n_images"]), pct(d["clean_accuracy"]),
                   pct(d["photo_accuracy"]), f"{d['gap_points']:.2f}"]])
    parts = [head]
    for key in ("format", "enlargement", *HARD_CONDITIONS):
        accuracy = d.get(f"photo_accuracy_by_{key}", {})
        counts = d.get("photos_by_condition", {}).get(key, {})
        if accuracy:
            parts.append(f"By {key}: " + ", ".join(
                f"{k} {pct(v, 1)}" + (f" ({num(counts[k])})" if k in counts else "")
                for k, v in accuracy.items()) + ".")
    if "article_alone_accuracy" in d:
        alone = d["article_alone_accuracy"]
        parts.append(
            f"The articles alone, drawn as the photos draw them and shrunk back to 28 px (no "
            f"dye, room, camera or cut-out): {pct(alone)}. Of the gap, "
            f"{100 * (d['clean_accuracy'] - alone):.2f} points are the article's rendering "
            f"(enlarged, softened, tone curve) and {100 * (alone - d['photo_accuracy']):.2f} "
            "the rest (dye, room, camera, cut-out).")
    if "by_class" in d:
        parts.append(render_photo_classes(d["by_class"]))
    return "\n\n".join(parts)


def render_photo_classes(classes: dict[str, Any]) -> str:
    """Per class: clean, articles alone (hard set), photos, what the photos lose, and the
    photos' commonest wrong answers."""
    alone = "alone_accuracy" in next(iter(classes.values()))
    rows = [[name, num(c["n"]), pct(c["clean_accuracy"], 1),
             *([pct(c["alone_accuracy"], 1)] if alone else []), pct(c["photos_accuracy"], 1),
             f"{100 * (c['clean_accuracy'] - c['photos_accuracy']):.1f}",
             ", ".join(f"{label} {pct(share, 1)}" for label, share in c["photo_mistakes"])]
            for name, c in classes.items()]
    return table(["class", "images", "clean", *(["articles alone"] if alone else []),
                  "as photos", "lost (points)", "commonest mistakes on photos"], rows)


def render_real_photos(name: str, d: Result) -> str:
    """Strict, lenient, out-of-class AUROC and the 95%-coverage operating point, per split;
    then the per-folder table of the first split."""
    splits = [k for k in ("validation", "train") if k in d]
    backend = f" ({d['backend']})" if "backend" in d else ""
    rows = []
    for split in splits:
        scored = [(split, d[split])]
        if "retaken" in d[split]:  # the same photos retaken (benchmarks/real_photos.py)
            scored.append((f"{split}, retaken x{d[split]['retaken']['views']}",
                           d[split]["retaken"]))
        for label, r in scored:
            at = r["at_threshold"]
            rows.append([f"`{d['model']}`{backend}", label, num(r["n"]),
                         pct(r["strict_accuracy"]), pct(r["lenient_accuracy"]),
                         f"{r['out_of_class_auroc']:.3f}", f"{at['threshold']:.3f}",
                         pct(at["in_class_coverage"]), pct(at["out_of_class_rejection"]),
                         pct(at["strict_accuracy_kept"])])
    head = table(["model", "split", "photos", "strict", "lenient", "out-of-class AUROC",
                  "threshold", "in-class kept", "out-of-class rejected", "strict on kept"],
                 rows)
    folders = d[splits[0]]["per_folder"]
    per_folder = table(
        ["folder", "photos", "accuracy", "kept", "most common answers"],
        [[f, num(v["n"]), "n/a" if v["accuracy"] is None else pct(v["accuracy"]),
          pct(v["kept"]), ", ".join(f"{c} {pct(x, 0)}" for c, x in v["predicted"])]
         for f, v in folders.items()])
    return head + "\n\n" + per_folder


def render_photo_finetune(name: str, d: Result) -> str:
    """One row per peak learning rate: both validation splits (no test figures)."""
    rows = [[lr, pct(r["fashion_mnist_val_accuracy"]), pct(r["strict_accuracy"]),
             pct(r["lenient_accuracy"]), f"{r['out_of_class_auroc']:.3f}",
             pct(r["out_of_class_rejection"]), f"{r['train_seconds'] / 60:.1f} min"]
            for lr, r in d["runs"].items()]
    return (f"Fine-tuning `{d['init']}` for {d['epochs']} epochs on Fashion-MNIST plus the "
            "real train photos; validation splits only.\n\n"
            + table(["peak lr", "Fashion-MNIST validation", "photos strict", "photos lenient",
                     "out-of-class AUROC", "out-of-class rejected at 95%", "training"], rows))


def photo_cells(r: dict[str, float]) -> list[str]:
    """A photo score's four figures (photo_views.py's photo_figures) as table cells."""
    return [pct(r["strict_accuracy"]), pct(r["lenient_accuracy"]),
            f"{r['out_of_class_auroc']:.3f}", pct(r["out_of_class_rejection"])]


PHOTO_FIGURES = ["strict", "lenient", "AUROC", "rejected at 95%"]
# the columns of photo_cells(photos) + photo_cells(retaken)
PHOTO_AND_RETAKEN = [f"{part}: {f}" for part in ("photos", "retaken") for f in PHOTO_FIGURES]


def render_photo_views(name: str, d: Result) -> str:
    """One row per fine-tuning (retaken views, their crop, seed), then each variant's mean: the
    real validation photos as they are and retaken (validation splits only)."""
    def variant(r: dict[str, Any]) -> str:
        return f"{r['views']}, crop {r['crop']:g}" if r["views"] else "0"

    rows, groups = [], {}
    for r in d["runs"].values():
        groups.setdefault(variant(r), []).append(r)
        rows.append([variant(r), num(r["seed"]), pct(r["fashion_mnist_val_accuracy"]),
                     *photo_cells(r["photos"]), *photo_cells(r["retaken"]),
                     f"{r['train_seconds'] / 60:.1f} min"])
    for label, group in groups.items():
        mean = {part: {k: sum(r[part][k] for r in group) / len(group) for k in group[0][part]}
                for part in ("photos", "retaken")}
        fm = sum(r["fashion_mnist_val_accuracy"] for r in group) / len(group)
        rows.append([f"**{label}**", "mean", pct(fm), *photo_cells(mean["photos"]),
                     *photo_cells(mean["retaken"]), ""])
    return (f"Fine-tuning `{d['init']}` ({d['tuning']}) with each real train photo also "
            "retaken V times (turned, relit, up to `crop` of the width and height cut off); "
            f"the real validation photos as they are, then each retaken {d['retaken_views']} "
            "times (crop 0.1). Validation splits only.\n\n"
            + table(["views V", "seed", "Fashion-MNIST validation", *PHOTO_AND_RETAKEN,
                     "training"], rows))


HARD_FIGURES = ["hard photos", "gap (points)", "won / lost", "p"]


def hard_cells(h: dict[str, Any]) -> list[str]:
    """The hard photos' figures (weight_interpolation.py's hard_figures) as table cells."""
    return [pct(h["photo_accuracy"]), f"{h['gap_points']:.2f}", f"{h['won']} / {h['lost']}",
            f"{h['sign_test_p']:.3f}"]


def combination(row: dict[str, Any]) -> str:
    """A weight_interpolation.py row's first cell: its alpha, or which ensemble."""
    if row.get("ensemble"):
        return "ensemble, mirrors" if row["mirror"] else "ensemble, no mirror"
    return f"{row['alpha']:g}"


def training_note(d: Result) -> str:
    """' The training behind TUNED: M min in N runs (commands).', where recorded."""
    behind = d.get("tuned_training")
    if not behind:
        return ""
    times = [r["train_seconds"] for r in behind]
    total = ("unknown (a run's time is missing)" if None in times
             else f"{sum(times) / 60:.1f} min")
    commands = "; ".join(f"`{r['command'] or 'unknown'}`" for r in behind)
    return (f" The training behind `{d['tuned']}`: {total} in {len(behind)} "
            f"run{'s' * (len(behind) > 1)} ({commands}).")


def render_weight_interpolation(name: str, d: Result) -> str:
    """One row per alpha (and last layer averaged, where not all were; then the ensembles, where
    scored): Fashion-MNIST validation with and without the mirror, the real validation photos
    as they are and retaken, and where scored the hard synthetic validation photos with the
    sign test against the base (validation splits only)."""
    hard = bool(d.get("hard_photos"))
    layers = any(r.get("until") for r in d["rows"])
    rows = [[combination(r), *([r["until"] or "all"] if layers else []),
             pct(r["fashion_mnist_val_accuracy"]),
             pct(r["fashion_mnist_val_accuracy_without_tta"]), *photo_cells(r["photos"]),
             *photo_cells(r["retaken"]), *(hard_cells(r["hard"]) if hard else [])]
            for r in sorted(d["rows"], key=lambda r: (r["alpha"] is None, r["alpha"] or 0,
                                                      r.get("mirror", False),
                                                      r.get("until") or ""))]
    hard_note = (f" Hard: the first {d['hard_photos']:,} Fashion-MNIST validation images as "
                 "hard synthetic photos, cut out once (the same model inputs for every alpha); "
                 "gap: their clean accuracy minus the photos'; won / lost: photos right where "
                 "the base (alpha 0) is wrong and the reverse, with the two-sided sign test's "
                 "p." if hard else "")
    ensemble_note = (" Ensemble: the two models not averaged but answering together, logits "
                     "averaged (`models.Ensemble`), each without the mirror (two forward passes "
                     "a picture, as one model with it) or with it (four)."
                     if any(r.get("ensemble") for r in d["rows"]) else "")
    layer_note = (" Averaged up to: only the layers from the input to this one averaged, the "
                  "later ones the base's (`models.layer_names`)." if layers else "")
    alphas = {r["alpha"] for r in d["rows"]}
    models = (f"`{d['base']}` (alpha 0) and `{d['tuned']}` (alpha 1), not averaged"
              if alphas <= {0, 1} else f"The weights (1 - alpha) `{d['base']}` + alpha "
              f"`{d['tuned']}` (batch-norm statistics averaged too)")
    # files from before base_mirror was recorded: their bases were shipped, with the mirror
    mirror = ("scored with the mirror" if d.get("base_mirror", True) else "scored without the "
              "mirror, as the base has none (a run's `model.pt`)")
    return (f"{models}, {mirror}; the real validation photos as "
            f"they are, then each retaken {d['retaken_views']} times. Validation splits "
            f"only.{training_note(d)}{hard_note}{layer_note}{ensemble_note}\n\n"
            + table(["alpha" if not ensemble_note else "alpha, or ensemble",
                     *(["averaged up to"] if layers else []),
                     "Fashion-MNIST validation", "without the mirror", *PHOTO_AND_RETAKEN,
                     *(HARD_FIGURES if hard else [])], rows))


# Issue 17's rule for a default trained within an hour (docs/design.md, "A one-run default"):
# each figure at least the shipped default's minus this much, as weight_interpolation.py
# scores both (alpha 0 is the default, alpha 1 the candidate), and the chain at most 60 min.
ONE_HOUR_BARS = {"Fashion-MNIST validation": 0.002, "strict": 0.01, "lenient": 0.01,
                 "AUROC": 0.01, "hard photos": 0.005}
ONE_HOUR_MINUTES = 60
ONE_HOUR_FILES = "weight_interpolation_onerun*"  # weight_interpolation.py's one-hour candidates


def one_hour_figures(row: dict[str, Any]) -> dict[str, float]:
    """A weight_interpolation.py row's figures that the one-hour rule bars."""
    photos = row["photos"]
    return {"Fashion-MNIST validation": row["fashion_mnist_val_accuracy"],
            "strict": photos["strict_accuracy"], "lenient": photos["lenient_accuracy"],
            "AUROC": photos["out_of_class_auroc"], "hard photos": row["hard"]["photo_accuracy"]}


def render_one_hour_summary(results: dict[str, Result]) -> str:
    """The one-hour candidates side by side against the rule, from the files that score one
    against the shipped default with the mirror (weight_interpolation_onerun*.json)."""
    rows = []
    for name, d in results.items():
        if (not fnmatch.fnmatchcase(name, ONE_HOUR_FILES)
                or not d.get("base_mirror", True) or not d.get("tuned_training")
                or not d.get("hard_photos")):
            continue
        by_alpha = {r["alpha"]: one_hour_figures(r) for r in d["rows"] if not r.get("until")}
        if not {0, 1} <= by_alpha.keys():  # not the default against one candidate
            continue
        base, tuned = by_alpha[0], by_alpha[1]
        minutes = sum(r["train_seconds"] for r in d["tuned_training"]) / 60
        short = [k for k, bar in ONE_HOUR_BARS.items() if tuned[k] < base[k] - bar - 1e-9]
        short += ["minutes"] * (minutes > ONE_HOUR_MINUTES)
        rows.append([f"`{d['tuned']}`", f"{minutes:.1f}",
                     *(f"{v:.3f}" if k == "AUROC" else pct(v) for k, v in tuned.items()),
                     ", ".join(short) or "none: eligible"])
    bars = ", ".join(f"{k} -{v * 100:g} points" if k != "AUROC" else f"AUROC -{v:g}"
                     for k, v in ONE_HOUR_BARS.items())
    return ("Each candidate against the shipped default as the same file scores it (its alpha "
            f"0 row), by the rule in design.md: at most {ONE_HOUR_MINUTES} training minutes "
            f"for the whole chain, and at most this much below the default: {bars}. "
            "Validation splits only; files scored without the mirror are left out.\n\n"
            + table(["candidate", "chain (min)", *ONE_HOUR_BARS, "short on"], rows))


def render_resolution(name: str, d: Result) -> str:
    """resolution.py: the shipped default, then its fine-tunes at 28 and f*28 px, on
    Fashion-MNIST validation and the hard synthetic validation photos (per dye)."""
    patterns = sorted(d["rows"][0]["hard_by_pattern"])
    rows = [[r["arm"], pct(r["val_accuracy"]), pct(r["hard_accuracy"]),
             f"{r['gap_points']:.2f}", *(pct(r["hard_by_pattern"][p]) for p in patterns),
             secs(r.get("train_seconds"))] for r in d["rows"]]
    paired = d["fine_against_coarse"]
    return (f"Two fine-tunes of the shipped default ({d['epochs']} epochs, "
            f"{d['train_images']:,} images an epoch: the Fashion-MNIST training part and "
            f"{d['synthetic']:,} synthetic hard photos), one fed each input area-averaged to "
            f"28 px, the other fed it at {28 * d['factor']} px through its first convolution "
            f"enlarged {d['factor']}x (the same function before training). Hard: the first "
            f"{d['hard_photos']:,} validation images as hard photos; gap: their clean accuracy "
            f"minus the photos'. The {28 * d['factor']} px arm against the 28 px one: won "
            f"{paired['won']}, lost {paired['lost']}, sign test p = "
            f"{paired['sign_test_p']:.3f}. Validation splits only.\n\n"
            + table(["arm", "Fashion-MNIST validation", "hard photos", "gap (points)",
                     *patterns, "training"], rows))


def render_ship_candidate(name: str, d: Result) -> str:
    """A candidate default scored by scripts/ship_model.py but not shipped: validation (what
    decides), then the test set as it would ship."""
    v, run, photos = d["validation_accuracy"], d["training_run"], d["photos"]
    figures = {**photos, "out_of_class_rejection": photos["at_threshold"]["out_of_class_rejection"]}
    chosen = "with" if d["tta"] else "without"
    rows = [["Fashion-MNIST validation", pct(v["plain"]), pct(v["tta"])],
            ["real photos, lenient (validation)", pct(v.get("photos_plain")),
             pct(v.get("photos_tta"))],
            ["official test, as shipped", pct(d["shipped_test_accuracy_without_tta"]),
             pct(d["shipped_test_accuracy"]) if d["tta"] else ""]]
    return (f"Fine-tuned from `{run['config']['init']}` (`{run['command']}`), "
            f"{d['weights']} weights, test-time mirror {chosen} (chosen on validation). "
            f"int8 graph on test: {pct(d['int8'].get('test_accuracy'))}.\n\n"
            + table(["", "without the mirror", "with the mirror"], rows) + "\n\n"
            + "As shipped, on the real validation photos:\n\n"
            + table(PHOTO_FIGURES, [photo_cells(figures)]))


FLAG_ROWS = {  # predict_speed's speed flags: (what the row says, shipped way, other way)
    "side_thread": ("second cut-out beside the first / after it", "beside", "after"),
    "ort_spinning": ("onnxruntime threads resting / spinning between runs", "resting",
                     "spinning"),
}


def render_predict_speed(name: str, d: Result) -> str:
    """Prediction and evaluation speed of one model."""
    png, jpeg = d["png_folder"], d["megapixel_jpeg"]
    one, ev = d["single_28x28"], d["evaluate_10k"]
    rows = [
        [f"folder of {num(png['n_images'])} 28x28 PNGs, library",
         f"{num(png['images_per_second'])} images/s"],
        ["the same through `fashion-cnn predict` (process start-up included)",
         f"{num(png['cli_images_per_second'])} images/s"],
        [f"1-megapixel photo-style JPEG ({num(jpeg['n_pictures'])} pictures), median / p90",
         f"{jpeg['median_ms']:.2f} / {jpeg['p90_ms']:.2f} ms"],
        ["one 28x28 image, `Classifier.classify_one` / model only",
         f"{one['median_ms_classify_one']:.2f} / {one['median_ms_model_only']:.2f} ms"],
    ]
    real = d.get("real_photo_megapixel_jpeg")
    if real:
        rows.insert(3, [f"real phone photo enlarged to 1 megapixel, JPEG ({num(real['n_pictures'])}"
                        " pictures), median / p90",
                        f"{real['median_ms']:.2f} / {real['p90_ms']:.2f} ms"])
    flags = d.get("flags", {})
    rows[4:4] = [[f"the same, {label} (median ratio of "
                  + (f"{num(f['pairs'])} pairs of calls)" if "pairs" in f else
                     f"{num(f['rounds'])} rounds)"),
                  f"{f[f'median_ms_{shipped}']:.2f} / {f[f'median_ms_{other}']:.2f} ms "
                  f"({f['ratio']:.2f}x)"]
                 for flag, (label, shipped, other) in FLAG_ROWS.items() if (f := flags.get(flag))]
    rows += [[f"folder of {num(f['n_pictures'])} {what}, pictures prepared {f['threads']} at a "
              f"time ({f['share_on_threads']:.0%} of them on threads) / one after another "
              f"(median ratio of {num(f['rounds'])} rounds)",
              f"{num(f['images_per_second_threads'])} / "
              f"{num(f['images_per_second_one'])} images/s ({f['ratio']:.2f}x the time)"]
             for flag, what in (("prepare_threads_pngs", "28x28 PNGs"),
                                ("prepare_threads_photos", "real validation photos"))
             if (f := flags.get(flag))]
    rows += [[f"10,000 test images, {k.replace('_seconds', '').replace('_', ' ')}",
              f"{v:.2f} s"] for k, v in ev.items()]
    backend = f", backend `{d['backend']}`" if "backend" in d else ""
    return f"Model `{d['model']}`{backend}.\n\n" + table(["measurement", "result"], rows)


def render_backend_speed(name: str, d: Result) -> str:
    """torch against onnxruntime (and its int8 graph, where measured) per model: 10,000 images
    and one picture, medians; agreement with torch and test accuracy."""
    rows, rounds = [], set()
    for model, r in d["models"].items():
        for backend, v in r["runs"].items():
            rounds.add(len(v["rounds"]["test_10k_seconds"]))
            same = {"onnxruntime": r["same_argmax"],
                    "onnxruntime-int8": r.get("same_argmax_int8")}.get(backend)
            rows.append([f"`{model}`", f"`{backend}`" + (" (auto)" * (backend == r["faster"])),
                         f"{v['test_10k_seconds']:.2f} s", f"{v['single_ms']:.3f} ms",
                         pct(v.get("test_accuracy")), pct(v.get("val_accuracy")),
                         "-" if same is None else f"{num(same)} of {num(r['n_images'])}"])
    load_note = ""
    if "load_average" in d:
        load_note = (f" Load average (1 min) before and after: "
                     f"{' / '.join(f'{x:.1f}' for x in d['load_average'])}.")
    intro = (f"Medians of {' / '.join(map(str, sorted(rounds)))} rounds, the backends taking "
             "turns: the 10,000 test images as `evaluate` runs them, in batches of "
             f"{d['batch_size']} (torch: the seed CNN's fused forward pass), and one 28x28 "
             "image through `Classifier.probabilities` (median of "
             f"{d['single_calls_per_round']} calls per round); {d['torch_threads']} torch "
             "threads, as many onnxruntime intra-op threads. `auto` takes the faster exact "
             "backend, or the int8 graph where it is faster still and costs at most "
             "0.1 points of validation accuracy (the checkpoint's held-out training images; a "
             "file without them chose on test accuracy) (`fashion_cnn.predict.FASTER_BACKEND`, "
             "checked "
             "against this file; a checkpoint without calibration images gets float32 "
             f"onnxruntime instead).{load_note}")
    return intro + "\n\n" + table(
        ["model", "backend", "10,000 test images", "one picture", "test accuracy",
         "validation accuracy", "same top class as torch"], rows)


def render_app_latency(name: str, d: Result) -> str:
    """The web app's start-up and upload-to-result times."""
    rows = [["server start-up to healthy", f"{d['server_startup_seconds']:.2f} s"],
            ["first page in the browser", f"{d['first_page_seconds']:.2f} s"],
            [f"upload to result, median of {d['repeats']}",
             f"{d['median_upload_to_result_seconds']:.2f} s"]]
    return table(["measurement", "seconds"], rows)


TARGET_LABELS = {"requests_per_second": "requests/s", "p99_ms": "p99",
                 "no_5xx": "no 5xx", "no_dropped_connections": "no dropped connection",
                 "memory_growth_mb_at_most_50": "memory growth <= 50 MB",
                 "at_least_20000_requests": "20,000 requests run"}


def render_api_load(name: str, d: Result) -> str:
    """The HTTP API under load: one row per server setting and case, then the CLI started
    per picture, then issue 16's targets."""
    load = ", ".join(f"{x:.2f}" for x in d["load_average_before"])
    after = ", ".join(f"{x:.2f}" for x in d["load_average_after"])
    intro = (f"Client: {d['client']}; {pct(d['malformed_share'], 0)} of requests malformed; "
             f"load average (1, 5, 15 min) {load} before, {after} after"
             + ("; a `--quick` smoke run" if d.get("quick") else "") + ".")
    rows = []
    for server in d["servers"]:
        for c in server["cases"]:
            lat = c["latency_ms"]
            refused = sum(n for k, n in c["statuses"].items() if k.startswith("4"))
            rows.append([f"`{server['model']}`", "on" if server["batching"] else "off",
                         c["pictures"].replace("_", " "), str(c["concurrency"]),
                         num(c["requests"]), num(c["requests_per_second"]),
                         num(c["ok_per_second"]),
                         f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f}",
                         num(refused), num(c["server_errors_5xx"]),
                         num(c["dropped_connections"]),
                         f"{c['rss_mb_before']:.0f} -> {c['rss_mb_after']:.0f}"])
    cases = table(["model", "batching", "pictures", "concurrency", "requests", "requests/s",
                   "200s/s", "latency p50 / p95 / p99 (ms)", "4xx", "5xx", "dropped",
                   "server RSS (MB)"], rows)
    cli = table(["model", "`fashion-cnn predict one.png`, a process per picture",
                 "the server, concurrency 1, 28x28 PNG"],
                [[f"`{m}`", f"{v['pictures_per_second']:.2f} pictures/s",
                  num(next(c["ok_per_second"] for s in d["servers"] for c in s["cases"]
                           if s["model"] == m and s["batching"] and c["concurrency"] == 1
                           and c["pictures"] == "png_28x28")) + " pictures/s"]
                 for m, v in d["cli_process_per_picture"].items()])
    goals = "; ".join(f"`{m}`: " + ", ".join(f"{TARGET_LABELS.get(k, k)} "
                                             f"{'met' if ok else 'NOT met'}"
                                             for k, ok in met.items())
                      for m, met in d["targets_met"].items())
    return (f"{intro}\n\n{cases}\n\n{cli}\n\nTargets (concurrency 64, 28x28 PNGs, batching "
            f"on: `best` >= {d['targets']['best']['rps']} requests/s with p99 <= "
            f"{d['targets']['best']['p99_ms']} ms, `seed` >= {d['targets']['seed']['rps']} "
            f"requests/s): {goals}.")


def render_generic(name: str, d: Result) -> str:
    """Any results file: its top-level scalar values."""
    rows = [[f"`{k}`", _scalar(v)] for k, v in d.items()
            if k not in PROVENANCE_KEYS and isinstance(v, (int, float, str, bool))]
    if not rows:
        return "_No top-level numbers; see the file._"
    return table(["key", "value"], rows)


def _scalar(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def render_upright(name: str, d: Result) -> str:
    """upright.py: the real validation photos at each turn, classified as they come and with
    the orientation network turning sure ones back; then Fashion-MNIST validation both ways."""
    photos = [r for r in d["rows"] if "fashion_mnist_validation" not in r]
    rows = [[f"{r['turn']}°", "on" if r["upright"] else "off", pct(r["strict_accuracy"], 1),
             pct(r["lenient_accuracy"], 1), f"{r['out_of_class_auroc']:.3f}",
             pct(r["turned_back"], 1)]
            for r in sorted(photos, key=lambda r: (r["turn"], r["upright"]))]
    fm = {r["upright"]: r["fashion_mnist_validation"] for r in d["rows"]
          if "fashion_mnist_validation" in r}
    return (f"`{d['model']}` ({d['backend']}) on the {photos[0]['n']} real validation photos, "
            "each turned counter-clockwise by the angle shown, classified through `predict` "
            "with the orientation step off and on (`Classifier(upright=...)`; "
            "weights/upright/MODEL_CARD.md). Turned back: the share of pictures the step "
            "turned before classifying.\n\n"
            + table(["photos turned", "turning back", "strict", "lenient", "AUROC",
                     "turned back"], rows)
            + f"\n\nFashion-MNIST validation ({fm[False]['n']:,} images, dataset form, all "
            f"upright): {pct(fm[False]['accuracy'])} with the step off, "
            f"{pct(fm[True]['accuracy'])} with it on ({pct(fm[True]['turned_back'])} turned).")


def render_empty_surfaces(name: str, d: Result) -> str:
    """empty_surfaces.py: empty floors, walls and doors through `predict`, then what the
    shipped bare-surface rule and the dropped confidence rule catch and cost, bar by bar."""
    v, raw, kept = d["surfaces"], d["surfaces_without_rule"], d["in_class_pictures"]
    ship = d["shipped"]
    spread_rows = [[f"{r['spread']:g}", f"{r['bar']:.1f}",
                    f"{r['surfaces_answered']} of {v['n']}", str(r["surfaces_no_garment"]),
                    pct(r["train_labels_lost"]), pct(r["validation_labels_lost"])]
                   for r in d["spread_rule"] if r["bar"] >= 0.6]
    rows = [[f"{r['bar']:.1f}", "yes" if r["one_surface"] else "no",
             f"{r['surfaces_answered']} of {v['n']}", pct(r["train_newly_turned_away"]),
             pct(r["validation_newly_turned_away"])] for r in d["rule"]]
    return (f"`{d['model']}` ({d['backend']}) through `predict` on {v['n']} empty floors, "
            "walls and doors (crops of the real validation photos beside their garment, each "
            "looked at: `benchmarks/empty_surfaces.csv`): "
            f"**{v['answered']} answered with a class**, **{v['no garment found']} \"no "
            f"garment found\"**, {v['not one of the 10 classes']} \"not one of the 10 "
            f"classes\", {v['low confidence']} \"low confidence\"; {v['whole_frame']} "
            "classified whole (nothing stood out from the edges). Without the bare-surface "
            f"rule below: {raw['answered']} answered, {raw['no garment found']} \"no garment "
            "found\".\n\n"
            "The bare-surface rule (`predict.bare_surface`): a picture classified whole, whose "
            "colour spread (`preprocess.colour_spread`) is under the first bar and whose "
            "in_class score is under the second, is \"no garment found\". Its cost is the "
            "share of in-class pictures whose label it takes (answered or unsure: accuracy "
            "counts an unsure picture's label too): "
            f"{kept['train']['n']:,} train and {kept['validation']['n']:,} validation "
            "pictures (the photos of the seven in-class folders as taken, and retaken "
            f"{kept['train']['views_per_photo']} and {kept['validation']['views_per_photo']} "
            "times: turned, up to 10% cut off). Shipped: spread "
            f"{ship['spread']:g}, in_class {ship['bar']:.1f}; chosen on train (at most "
            f"{pct(d['max_cost'])} of its labels taken, the fewest empty surfaces "
            "answered, then the most \"no garment found\"): spread "
            f"{d['chosen']['spread']:g}, in_class {d['chosen']['bar']:.1f}."
            "\n\n"
            + table(["spread below", "in_class below", "empty surfaces answered",
                     "no garment found", "train labels taken", "validation labels taken"],
                    spread_rows)
            + "\n\nDropped earlier, the same without the colour test (\"one surface\": only "
            "if the picture has no second cut-out either); its cost counted as then, the share "
            "of in-class pictures answered without it that it turns away:\n\n"
            + table(["in_class below", "one surface", "empty surfaces answered",
                     "train turned away", "validation turned away"], rows))


def render_other_things(name: str, d: Result) -> str:
    """other_things.py: photos of things that are not clothing through `predict`, under the
    model's unsure rule and the former one."""
    now, before = d["verdicts"], d["verdicts_former_rule"]

    def verdict(row: dict[str, Any]) -> str:
        return row["reason"] or f"{row['label']} ({pct(row['confidence'], 0)})"

    rows = [[f"`{p['picture']}`", verdict(p), num(p["in_class"], 2), verdict(p["former"])]
            for p in d["pictures"]]
    return (f"`{d['model']}` ({d['backend']}) through `predict` on {now['n']} photos of things "
            "that are not clothing (scikit-image's and scikit-learn's bundled photos, Debian's "
            "mate-backgrounds nature photos; any unsure verdict is right): "
            f"**{now['answered']} answered with a class**, {now['not one of the 10 classes']} "
            f"\"not one of the 10 classes\", {now['no garment found']} \"no garment found\", "
            f"{now['low confidence']} \"low confidence\". Under the former unsure rule (the top "
            f"probability below {d['former_rule']['threshold']:.3f}): {before['answered']} "
            f"answered with a class, {before['not one of the 10 classes']} \"not one of the 10 "
            "classes\". Nothing is chosen on these pictures.\n\n"
            + table(["picture", "answer", "in_class", "under the former rule"], rows))


def render_tta_views(name: str, d: Result) -> str:
    """Validation accuracy of each checkpoint under each set of test-time views, and each
    set's mean gain over the mirror image alone."""
    runs = d["checkpoints"]
    settings = list(d["mean_gain_over_flip"])
    rows = [[f"`{path}`", str(r["arch_kwargs"].get("width", 32)), str(r["epochs"]),
             str(r["seed"]), *(pct(r["val_accuracy"][s]) for s in settings)]
            for path, r in runs.items()]
    rows.append(["mean gain over the mirror alone", "", "", "",
                 *(f"{100 * g:+.2f}" for g in d["mean_gain_over_flip"].values())])
    return (table(["checkpoint", "width", "epochs", "seed", *settings], rows)
            + "\n\nValidation split of each checkpoint's own training run (the test set is "
            "not looked at). Views are averaged as logits inside the model "
            "(`BestCNN.tta`, `tta_shift`); shifted pixels are filled with black.")


def render_ensemble_size(name: str, d: Result) -> str:
    """Validation accuracy of the ensembles of the first k members, with their training time."""
    settings = list(d["ensembles"][0]["val_accuracy"])
    rows = [[str(e["members"]), f"{e['train_minutes']:.1f}",
             *(pct(e["val_accuracy"][s]) for s in settings)] for e in d["ensembles"]]
    members = ", ".join(f"{100 * m['val_accuracy'][settings[-1]]:.2f}%" for m in d["members"])
    return (table(["members", "training minutes", *(f"validation, {s}" for s in settings)],
                  rows)
            + f"\n\nRecipe `{d['recipe']}`, one run per member (seeds "
            f"{', '.join(str(m['seed']) for m in d['members'])}), all on one validation split of "
            f"{d['n_val']:,} images (the test set is not looked at); the ensemble averages its "
            f"members' logits (`models.Ensemble`). The members alone, last column's views: "
            f"{members}.")


def render_distillation(name: str, d: Result) -> str:
    """The teacher ensemble and speed-run models trained with and without it: validation
    accuracy and minutes (a model's own, and with the teacher's)."""
    teacher = d["teacher"]
    settings = list(teacher["val_accuracy"])

    def row(label: str, own: float, total: float, accuracy: dict[str, float]) -> list[str]:
        return [label, f"{own:.1f}", f"{total:.1f}", *(pct(accuracy[s]) for s in settings)]

    rows = [row(f"teacher: ensemble of {teacher['members']}", teacher["train_minutes"],
                teacher["train_minutes"], teacher["val_accuracy"])]
    for s in d["students"]:
        distilled = "teacher_minutes" in s
        label = (f"distilled, teacher's share {s['distill']:g}" if distilled
                 else "no teacher") + f", {s['epochs']} epochs"
        total = s["train_minutes"] + (s["teacher_minutes"] + teacher["train_minutes"]
                                      if distilled else 0)
        rows.append(row(label, s["train_minutes"], total, s["val_accuracy"]))
    answers = ", ".join(f"{s['teacher_minutes']:.1f}" for s in d["students"]
                        if "teacher_minutes" in s)
    return (table(["model", "own training minutes", "minutes with the teacher's",
                   *(f"validation, {s}" for s in settings)], rows)
            + f"\n\nRecipe `{d['recipe']}`, seed 0, on one validation split (the test set is "
            "not looked at); a distilled model and the one without a teacher differ only in "
            "their targets: the label mixed with the teacher's probabilities (`--teacher`, "
            "`--distill`: the teacher's share). \"Minutes with the teacher's\" adds the "
            f"teacher's training and its answers on the training images ({answers} minutes). "
            "The machine's speed drifts between runs, so compare minutes loosely.")


Renderer = Callable[[str, Result], str]

# (file-name pattern, section title, renderer), in the order the sections appear.
SECTIONS: list[tuple[str, str, Renderer]] = [
    ("accuracy", "Shipped models on the official test set", render_accuracy),
    ("train_seed*", "Training speed against Keras", render_train_seed),
    ("train_profile*", "Where a training step's time goes", render_train_profile),
    ("threads", "The automatic thread count on a quiet and a busy machine", render_threads),
    ("bf16_accuracy", "bfloat16 fc1 products: accuracy", render_bf16),
    ("cpu_bf16", "bfloat16 on a CPU without it: a best-model step", render_cpu_bf16),
    ("fast_recipe", "The fast recipe", render_fast_recipe),
    ("fast_recipe_search", "How the fast recipe was chosen", render_fast_search),
    ("time_to_accuracy_*", "Time to accuracy", render_time_to_accuracy),
    ("speedrun_ablation", "The speed-run recipe, one trick at a time", render_speedrun_ablation),
    ("tta_views", "Test-time views, chosen on validation", render_tta_views),
    ("ensemble_size", "Ensembles of speed-run models, by size", render_ensemble_size),
    ("distillation", "Distilling the ensemble into one speed-run model", render_distillation),
    ("cv_seed", "Cross-validation of the seed model", render_cv),
    ("augment_ablation", "Training augmentation flags", render_augment),
    ("photo_accuracy*", "Accuracy on photo-style pictures", render_photo),
    ("real_photos*", "Real phone photos (clothing-dataset-small)", render_real_photos),
    ("empty_surfaces", "Empty floors and walls: what `predict` answers", render_empty_surfaces),
    ("other_things", "Photos of other things: what `predict` answers", render_other_things),
    ("upright", "Garments lying on their side: turning them upright first", render_upright),
    ("photo_finetune", "Fine-tuning the default on real photos: the learning rate",
     render_photo_finetune),
    ("photo_views", "Fine-tuning the default on real photos: retaken views",
     render_photo_views),
    (ONE_HOUR_FILES, "A default trained within 60 minutes, against the shipped one",
     render_weight_interpolation),
    ("weight_interpolation_chain2_lr05_wise",
     "A default trained within 60 minutes: the two-run chain averaged with its own start",
     render_weight_interpolation),
    ("weight_interpolation*", "Averaging the default's weights with a photo fine-tune",
     render_weight_interpolation),
    ("resolution*", "Seeing photos at 84 px instead of 28 px: the dyes",
     render_resolution),
    ("ship_candidate_*", "A candidate default, not shipped", render_ship_candidate),
    ("predict_speed*", "Prediction and evaluation speed", render_predict_speed),
    ("backend_speed*", "torch against onnxruntime (`--backend`)", render_backend_speed),
    ("app_latency", "Web app latency", render_app_latency),
    ("api_load*", "The HTTP API under load", render_api_load),
]


# ---------------------------------------------------------------------------------------------
# docs/benchmarks.md


def load_results(results_dir: Path = RESULTS_DIR) -> dict[str, Result]:
    """Every results file, by name without '.json', in name order."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))}


def section(name: str, title: str, data: Result, render: Renderer) -> str:
    """One file's section: heading, provenance, body (generic if the renderer fails)."""
    try:
        body = render(name, data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        body = (f"_The `{render.__name__}` renderer could not read this file "
                f"({type(err).__name__}: {err}); its top-level values:_\n\n"
                + render_generic(name, data))
    return (f"## {title}: `{name}.json`\n\n{provenance(data)}\n\n{body}\n")


def render_benchmarks(results_dir: Path = RESULTS_DIR) -> str:
    """The whole of docs/benchmarks.md: what a user asks first (the shipped models), a list of
    contents, then one section per results file."""
    results = load_results(results_dir)
    parts = _file_sections(results)
    return "\n".join([
        "# Benchmarks\n",
        "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`; do not "
        "edit by hand (`python benchmarks/report.py --check` and `tests/test_docs.py` fail when "
        "this file is stale). Each section names the command that wrote its file, the date and "
        "the commit (`-dirty`: the working tree had uncommitted changes). The machine is a "
        "shared 2-core CPU, so speed figures drift between runs; compare rows of one table, "
        "measured in one run. Design decisions these figures back: [design.md](design.md).\n",
        "## For users: the shipped models\n\n" + render_models(results_dir=results_dir,
                                                                root="../")
        + "\n\nWhat each column means: [README](../README.md#the-shipped-models). Below, every "
        "measurement behind these figures and the experiments that chose them; sections named "
        "after a model measured it as it was then (its date and commit say when).\n",
        "## Contents\n\n" + _contents(parts) + "\n",
        *parts])


def _contents(parts: list[str]) -> str:
    """A linked list of the sections' headings (GitHub's anchors: lower case, punctuation
    dropped, spaces to hyphens, repeats numbered)."""
    seen: dict[str, int] = {}
    lines = []
    for part in parts:
        title = part.splitlines()[0].removeprefix("## ")
        anchor = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        lines.append(f"- [{title}](#{anchor}{f'-{count}' if count else ''})")
    return "\n".join(lines)


def _file_sections(results: dict[str, Result]) -> list[str]:
    """One section per results file, in SECTIONS' order (the rest last, as "Other results")."""
    parts: list[str] = []
    done: set[str] = set()
    for pattern, title, render in SECTIONS:
        if pattern == ONE_HOUR_FILES:
            parts.append("## A default trained within 60 minutes: every candidate\n\n"
                         + render_one_hour_summary(results) + "\n")
        for name in results:
            if name not in done and fnmatch.fnmatchcase(name, pattern):
                parts.append(section(name, title, results[name], render))
                done.add(name)
    for name in results:
        if name not in done:
            parts.append(section(name, "Other results", results[name], render_generic))
    return parts


# ---------------------------------------------------------------------------------------------
# README's shipped-models block


def render_models(weights_dir: Path = WEIGHTS_DIR, results_dir: Path = RESULTS_DIR,
                  root: str = "") -> str:
    """The shipped-models table from each model's metrics.json, file size and speed results
    (`root`: the way from the page it goes in to the checkout's root, for the cards' links)."""
    results = load_results(results_dir)
    # the reference machine's files: predict_speed.json (the default) and predict_speed_<model>;
    # others (e.g. predict_speed_avx2.json, another CPU) are in docs/benchmarks.md only
    speed = {d.get("model"): d for n, d in results.items()
             if n in ("predict_speed", f"predict_speed_{d.get('model')}")}
    dtypes = {m["model"]: m.get("weights")
              for m in results.get("accuracy", {}).get("shipped", [])}
    rows = []
    # the classifiers; weights/upright is a helper of predict's, with a card of its own
    for folder in sorted(weights_dir / name for name in SHIPPED_MODELS
                         if (weights_dir / name / "metrics.json").is_file()):
        rows.append(_model_row(folder, speed.get(folder.name, {}), dtypes.get(folder.name),
                               results, root))
    header = ["model", "test accuracy", "real photos: strict / lenient / AUROC", "parameters",
              "file (weights stored as)", "training (2-core CPU)", "one phone photo",
              "one 28x28 picture", "folder of PNGs"]
    return table(header, rows)


def _model_row(folder: Path, speed: Result, dtype: str | None, results: dict[str, Result],
               root: str) -> list[str]:
    m = json.loads((folder / "metrics.json").read_text())
    run = m.get("training_run", {})
    params = m.get("parameters") or run.get("model", {}).get("parameters")
    weights = folder / "model.pt"
    size = f"{weights.stat().st_size / 1e6:.2f} MB" if weights.is_file() else "n/a"
    dtype = m.get("weights") or dtype
    one = speed.get("single_28x28", {}).get("median_ms_classify_one")
    folder_rate = speed.get("png_folder", {}).get("images_per_second")
    name = folder.name
    card = f"[`{name}`]({root}src/fashion_cnn/weights/{name}/MODEL_CARD.md)"
    shipped = file_sha256(weights) if weights.is_file() else None
    real = _newest_real(results, name, shipped)
    val = (real or {}).get("validation")  # the real photos' validation split
    real_photos = "n/a" if val is None else (
        f"{pct(val['strict_accuracy'], 1)} / {pct(val['lenient_accuracy'], 1)} / "
        f"{val['out_of_class_auroc']:.3f}" + _earlier(real, [shipped]) + _cpu(real))
    # the 28x28 speeds depend on the weights alone, not on the unsure rule (`same_weights`)
    same = [shipped, *m.get("same_weights", [])]
    timed = _earlier(speed, same)  # one file's two cells
    # a phone photo's time also on the preprocessing (`other_preprocessing`: the same weights
    # saved with other settings), so it may come from another CPU's file measured as shipped
    as_shipped = [sha for sha in same if sha not in m.get("other_preprocessing", [])]
    photo_file = _photo_speed(results, name, speed, as_shipped)
    photo = photo_file.get("real_photo_megapixel_jpeg", {}).get("median_ms")
    return [card, pct(m.get("shipped_test_accuracy")), real_photos, num(params),
            size + (f" ({dtype})" if dtype else ""),
            secs(training_seconds(m)),  # the whole chain
            "n/a" if photo is None else
            f"{photo:.0f} ms{_earlier(photo_file, as_shipped)}{_cpu(photo_file)}",
            "n/a" if one is None else f"{one:.2f} ms{timed}",
            "n/a" if folder_rate is None else f"{num(folder_rate)} images/s{timed}"]


def _as_shipped(candidates: list[Result], accepted: list[str | None]) -> Result | None:
    """The first of `candidates` (the reference CPU's file first, then other CPUs') measured
    on an accepted checkpoint (`accepted`: SHA-256s), else the first."""
    found = [d for d in candidates if d.get("checkpoint_sha256") in accepted]
    return (found or candidates or [None])[0]


def _newest_real(results: dict[str, Result], model: str, shipped: str | None) -> Result | None:
    """A model's real-photo result: the reference CPU's file (real_photos_MODEL_validation)
    if it was measured on the shipped checkpoint (`shipped`: its SHA-256), else another CPU's
    that was (real_photos_MODEL_validation_<cpu>), else the reference CPU's."""
    name = f"real_photos_{model}_validation"
    others = [d for n, d in sorted(results.items()) if n.startswith(name + "_")]
    return _as_shipped([results[name], *others] if name in results else others, [shipped])


def _photo_speed(results: dict[str, Result], model: str, speed: Result,
                 as_shipped: list[str | None]) -> Result:
    """The speed file a model's phone-photo time (1 MP, cut out) comes from: the reference
    CPU's (`speed`) if measured on the checkpoint as shipped (`as_shipped`: SHA-256s of the
    same weights and preprocessing), else another CPU's that was (predict_speed_<cpu> of this
    model), else the reference CPU's."""
    others = [d for n, d in sorted(results.items())
              if n.startswith("predict_speed") and d.get("model") == model and d is not speed]
    return _as_shipped([speed, *others], as_shipped)


def _cpu(result: Result | None) -> str:
    """' (AVX2 CPU)' for a result measured on a CPU without AVX-512 (its int8 kernels round a
    little differently from the reference CPU's)."""
    capability = ((result or {}).get("machine") or {}).get("cpu_capability")
    return f" ({capability} CPU)" if capability and capability != "AVX512" else ""


def _earlier(result: Result | None, shipped: list[str | None]) -> str:
    """' (earlier weights)' when a result records the SHA-256 of a checkpoint other than the
    shipped one (`shipped`: its SHA-256, and those of the same weights before)."""
    measured = (result or {}).get("checkpoint_sha256")
    return "" if measured is None or measured in shipped else " (earlier weights)"


def splice(readme: str, block: str) -> str:
    """README text with everything between the two markers replaced by `block`."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md lacks the markers {BEGIN!r} ... {END!r}")
    return readme[:start + len(BEGIN)] + "\n" + block + "\n" + readme[end:]


# ---------------------------------------------------------------------------------------------
# Check or write


def expected_files(results_dir: Path = RESULTS_DIR, weights_dir: Path = WEIGHTS_DIR,
                   readme: Path = README, benchmarks_md: Path = BENCHMARKS_MD) -> dict[Path, str]:
    """What each generated file should contain."""
    return {benchmarks_md: render_benchmarks(results_dir),
            readme: splice(readme.read_text(), render_models(weights_dir, results_dir))}


def stale_files(expected: dict[Path, str]) -> list[Path]:
    """The files whose contents differ from what the report would write."""
    return [p for p, text in expected.items() if not p.is_file() or p.read_text() != text]


def write_atomically(path: Path, text: str) -> None:
    """Write to a temp file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/benchmarks.md or README's block is out of date")
    args = parser.parse_args(argv)
    expected = expected_files()
    stale = stale_files(expected)
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run python benchmarks/report.py",
                  file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        write_atomically(path, expected[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
