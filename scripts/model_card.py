"""The shipped models' cards (MODEL_CARD.md), written by ship_model.py from the model's
metrics.json: `seed_card` and `best_card`, and the parts both end with (the run's provenance
line, the data checksums and the per-class results)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fashion_cnn.data import FILES
from fashion_cnn.photos import CROP, TURN_DEGREES
from fashion_cnn.training.config import ONE_CYCLE_MOMENTUM_WORDS


def provenance_line(run: dict[str, Any]) -> str:
    """'- Date: ...; git commit ...; versions: ...' of a training run's metrics."""
    versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
    return f"- Date: {run['date']}; git commit {run['git_commit']}; versions: {versions}."


def data_and_per_class(run: dict[str, Any], per_class: list[dict]) -> str:
    """The '## Data' checksum table and the '## Per-class results' table (shipped weights)."""
    checksums = "\n".join(f"| {idx.name} | `{run['data_checksums'][idx.name]}` |"
                          for idx in FILES.values())
    rows = "\n".join(f"| {r['class']} | {r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{r['f1']:.3f} |" for r in per_class)
    return f"""## Data (SHA-256 of the decompressed IDX files)
| file | sha256 |
| --- | --- |
{checksums}

## Per-class results (shipped weights, test set)
| class | precision | recall | F1 |
| --- | --- | --- | --- |
{rows}"""


def seed_card(s: dict[str, Any], model: Path, weights: str) -> str:
    """The seed model's card, from its metrics.json `s` and shipped checkpoint `model`."""
    run = s["training_run"]
    cfg = run["config"]
    per_seed = ", ".join(f"seed {k}: {100 * v:.2f}%" for k, v in s["seeds"].items())
    return f"""# Model card: `seed` (the classic Keras CNN for Fashion-MNIST, reproduced)

**Test accuracy (official 10,000 test images): {100 * s['shipped_test_accuracy']:.2f}%**
(shipped {weights} weights; {100 * s['trained_test_accuracy']:.2f}% with the float32 weights).
Over {len(s['seeds'])} seeds: mean {100 * s['mean_test_accuracy']:.2f}%,
std {100 * s['std_test_accuracy']:.2f} points ({per_seed}). The reference article reports 91.14%.
Seed {s['shipped_seed']} is shipped; it was chosen before training, not by test score.

## Architecture
Conv2D(32, 3x3, ReLU, He-uniform) -> MaxPool 2x2 -> Flatten -> Dense(100, ReLU, He-uniform)
-> Dense(10, softmax; Glorot-uniform), zero biases; {run['model']['parameters']:,} parameters,
{model.stat().st_size / 1e6:.2f} MB on disk ({weights}, one float32 scale per output row).
Input: 28x28 grayscale, white article on black (Fashion-MNIST form), 0..255 scaled to [0, 1].

## Training
- Command: `python scripts/ship_model.py --model seed`; each seed's run is the same as
  `fashion-cnn train --model seed --seed N --no-fused` (the faithful recipe, plain PyTorch
  autograd: these weights predate the fused training step, which computes the same function
  and update with different float rounding, so it gives other, equally accurate weights).
- Recipe: SGD lr {cfg['lr']}, momentum {cfg['momentum']}, batch {cfg['batch_size']},
  {cfg['epochs']} epochs, cross-entropy; {run['n_train']:,} training images, {run['n_val']:,}
  held out for validation (final validation accuracy {100 * run['val_accuracy']:.2f}%).
- Training time: {run['train_seconds']:.0f} s ({run['images_per_second']:,.0f} images/s) on
  {run['machine']['cpu_count']} CPU cores ({run['machine']['processor']}), on a machine shared
  with other work; `benchmarks/train_seed.py` measures speed properly.
{provenance_line(run)}

{data_and_per_class(run, s["evaluation"]["per_class"])}

Files here: `metrics.json` (all numbers above plus the confusion matrix),
`learning_curves.png`, `confusion_matrix.png`.

## Limits
Trained on Fashion-MNIST only: 28x28 grayscale product shots on a black background, no
augmentation, and never on a phone photo: on the real validation photos it is near chance
(README's table); use the default model for photos. `fashion-cnn predict` and the app convert
a product photo on a plain backdrop the way the dataset's authors did (`fashion_cnn.preprocess`:
trim, fit to 28x28, centre, negate, stretch) and cut the garment out of any other; this model
was never trained on such conversions, yet on photo-style versions of the test images it keeps most
of its accuracy (see `benchmarks/results/photo_accuracy_seed_test.json`, made by
`python benchmarks/photo_accuracy.py`). Shirt vs T-shirt/top, pullover and coat are its weakest
classes.
"""


def int8_section(s: dict[str, Any]) -> str:
    """The '## Inference' part: what `auto` runs (the int8 graph), where it was measured."""
    q = s.get("int8")
    if not q:
        return ""
    if "error" in q:
        return f"""
## Inference
Runs as a float32 ONNX graph by default: its int8 graph failed the check ({q['error']})
"""
    return f"""
## Inference
`predict`, `evaluate`, the app and the API run this model as an int8 ONNX graph by default
(`--backend auto`; `--backend torch` or `onnxruntime` give the float32 model): int8 weights,
activation ranges calibrated on {q['calibration_images']:,} training images of the training
part that the checkpoint carries (`export.calibration_images`). Test accuracy on the CPU that
shipped it {100 * q['test_accuracy']:.2f}% (float32 {100 * s['shipped_test_accuracy']:.2f}%); the
same top class as PyTorch on {q['same_top_class']:,} of {q['n_images']:,} test images (int8 kernels
differ a little between CPUs: `benchmarks/results/backend_speed*.json`).
"""


def best_card(s: dict[str, Any], model: Path, weights: str) -> str:
    """The best model's card, from its metrics.json `s` and shipped checkpoint `model`."""
    run, cfg = s["training_run"], s["training_run"]["config"]
    augment = cfg.get("augment", cfg)  # the augmentation settings, nested or not
    per_seed = "\n".join(
        f"| {seed} | {100 * v['test_accuracy']:.2f}% | {100 * v['test_accuracy_tta']:.2f}% | "
        f"{v['train_seconds'] / 60:.1f} min | {v['images_per_second']:,.0f} |"
        for seed, v in s["seeds"].items())
    tta = ("on: each picture is averaged with its mirror image" if s["tta"] else
           "off (it did not help on the validation split)")
    val = s["validation_accuracy"]
    photo_val = (f"; on the real photos' validation split, lenient accuracy "
                 f"{100 * val['photos_plain']:.2f}% without, {100 * val['photos_tta']:.2f}% with; "
                 "the two gains added decide" if "photos_tta" in val else "")
    resumed = f", resumed as `{run['resumed_with']}`" if "resumed_with" in run else ""
    command = (f"`{run['command']}`{resumed} (shipped by `python scripts/{s['command']}`)"
               if cfg.get("init") else
               "`fashion-cnn train --model best --seed N` (`python scripts/ship_model.py "
               "--model best` trains the seeds and ships seed 0)")
    if start := run.get("init"):  # `init` may name a shipped model: the file says which
        command += f" (it started from `{cfg['init']}` as it was then, sha256 `{start['sha256']}`)"
    momentum = (f"cycling {ONE_CYCLE_MOMENTUM_WORDS} against the learning rate"
                if cfg.get("schedule") == "onecycle" else cfg["momentum"])
    tuned = (" of the fine-tuning (the base model: `fashion-cnn train --recipe best`, from "
             "scratch)" if cfg.get("init") else "")
    if average := s.get("weight_average"):  # WiSE-FT: this run's weights averaged with another's
        command += (f". Its weights were then averaged, {1 - average['alpha']:g} : "
                    f"{average['alpha']:g} with batch-norm statistics, with those of "
                    f"`{average['with']}` (made by `{average['with_command']}`"
                    + (f", sha256 `{average['with_sha256']}`" if "with_sha256" in average else "")
                    + "; the same network, from the same start)"
                    " (WiSE-FT, Wortsman et al. 2022; the share chosen on validation: "
                    f"docs/design.md), and shipped by `{s['command']}`. The recipe and "
                    "training time below are this run's")
    return f"""# Model card: `best` (fashion-cnn's default model)

**Test accuracy (official 10,000 test images): {100 * s['shipped_test_accuracy']:.2f}%** as
shipped ({weights} weights, test-time augmentation {'on' if s['tta'] else 'off'});
{100 * s['shipped_test_accuracy_without_tta']:.2f}% without test-time augmentation.

## Seeds (float32 weights of each run; the test set scored once per model)
| seed | test accuracy | with test-time flip averaging | training time | images/s |
| --- | --- | --- | --- | --- |
{per_seed}

Seed {s['shipped_seed']} is shipped; it was chosen before training, not by test score.
Test-time augmentation: {tta} (validation accuracy {100 * val['plain']:.2f}% without,
{100 * val['tta']:.2f}% with{photo_val}).

## Architecture
A ResNet-9-style CNN (`fashion_cnn.models.BestCNN`): conv 32 -> conv 64, max-pool, residual
block -> conv 128, max-pool -> conv 256, max-pool, residual block -> global max-pool -> linear
10; 3x3 convolutions with batch norm and ReLU. {s['parameters']:,} parameters,
{model.stat().st_size / 1e6:.2f} MB on disk.
Input: 28x28 grayscale, white article on black (Fashion-MNIST form), 0..255, standardised by the
training set's pixel mean and std; photos are converted by `fashion_cnn.preprocess`.
{int8_section(s)}
## Training
- Command: {command}
- Recipe{tuned}: SGD with Nesterov momentum {momentum}, batch {cfg['batch_size']},
  {cfg['epochs']} epochs, one-cycle learning rate peaking at {cfg['lr']}, weight decay
  {cfg['weight_decay']}, label smoothing {cfg['label_smoothing']}; augmentation: mirror
  (p=0.5), whole-pixel shifts up to {augment['translate']} px, random erasing
  (p={augment['erase']}); {precision(run)}, channels-last. {run['n_train']:,} training images,
  {run['n_val']:,} held out for validation (final validation accuracy
  {100 * run['val_accuracy']:.2f}%).
- Training time: {run['train_seconds'] / 60:.1f} min ({run['images_per_second']:,.0f} images/s) on
  {run['machine']['cpu_count']} CPU cores ({run['machine']['processor']}), shared with other work.
{provenance_line(run)}
{lineage_section(s)}
{data_and_per_class(run, s["evaluation"]["per_class"])}

{photos_section(s) if s.get("photos") else LIMITS_FASHION_MNIST_ONLY}"""


def precision(run: dict[str, Any]) -> str:
    """The arithmetic the run trained in: `--bf16` falls back to float32 on a CPU without
    native bfloat16 (`bf16_used`; runs from before it record only the config)."""
    return "bfloat16 autocast" if run.get("bf16_used", run["config"]["bf16"]) else "float32"


def lineage_section(s: dict[str, Any]) -> str:
    """'## All the training behind these weights': every run of the chain (metrics.json's
    `lineage`) with its time, for a model that is more than one run."""
    runs = s.get("lineage", [])
    if len(runs) < 2:
        return ""
    rows = "\n".join(
        f"| {(r['date'] or '?')[:10]} | "
        + ("unknown" if r["train_seconds"] is None else f"{r['train_seconds'] / 60:.1f} min")
        + f" | `{r['command'] or r.get('source')}` |" for r in runs)
    total = s.get("total_train_seconds")
    total = "unknown (a source is missing)" if total is None else f"{total / 60:.1f} min"
    return f"""
## All the training behind these weights
The shipped weights come from {len(runs)} training runs (from scratch, fine-tunes of it and the
runs averaged in), each counted once: **{total}** of training in all (`train_seconds` of each;
rendering synthetic photos not counted). The "Training" section above is the last run's.

| date | training time | command |
| --- | --- | --- |
{rows}
"""


LIMITS_FASHION_MNIST_ONLY = """## Limits
Trained on Fashion-MNIST only: centred, grayscale product photos of ten classes. Shirt,
T-shirt/top, pullover and coat are the classes it confuses most (see confusion_matrix.png).
"""


def _score_words(photos: dict[str, Any]) -> str:
    """The in-class score the photo scores were computed with, in words."""
    if "energy_offset" in photos:
        return "the in-class score: the logits' energy, `predict.in_class_scores`"
    return "the in-class score: the top probability"


def _threshold_words(photos: dict[str, Any]) -> str:
    """The unsure threshold the photo scores were computed at, in words."""
    at = photos["at_threshold"]
    if "energy_offset" in photos:
        return (f"an in-class score of {at['threshold']:.2f} (the sigmoid of the logits' "
                f"logsumexp minus {photos['energy_offset']:.3f})")
    return f"a top probability of {at['threshold']:.3f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _changed_preprocessing(s: dict[str, Any]) -> str:
    """A sentence naming the preprocessing settings re-saved after training (`ship_model.py
    --rechoose-unsure --preprocess`), or '' if none were."""
    changed = [f"{k} {v['to']} (the training's photos: {v['from']})"
               for k, v in s.get("preprocessing_changed", {}).items() if v["from"] != v["to"]]
    if not changed:
        return ""
    return ("\nIts picture preprocessing was changed after training, the weights unchanged "
            "(`scripts/ship_model.py --rechoose-unsure --preprocess`, chosen on validation: "
            f"docs/design.md): {', '.join(changed)}.")


def photos_section(s: dict[str, Any]) -> str:
    """What the model saw of real photos, and how it does on their validation split."""
    run, p = s["training_run"], s["photos"]
    cfg, seen, at = run["config"], run["photos"]["train"], p["at_threshold"]
    rows = "\n".join(f"| {folder} | {v['n']} | {_pct(v['accuracy'])} | {_pct(v['kept'])} | "
                      + ", ".join(f"{name} {100 * share:.0f}%" for name, share in v["predicted"])
                      + " |" for folder, v in p["per_folder"].items())
    source = (f"the model shipped as `{cfg['init']}` at commit {run['git_commit'][:10]}"
              if cfg["init"] in ("best", "seed") else f"`{cfg['init']}`")
    synthetic = (f", {cfg['synthetic']:,} synthetic photos of its images (`fashion_cnn.render`: "
                 "dyed plain, striped or checked on textured, unevenly lit backdrops with "
                 "shadows and blur; never of validation images)" if cfg.get("synthetic") else "")
    crop = cfg.get("photo_crop", CROP)  # runs from before the setting cut off up to CROP
    cut = (f"up to {100 * crop:.0f}% of the width and height cut off" if crop
           else "the frame not cut")
    views = (f" (as taken, and in turn {cfg['photo_views']} times retaken: "
             f"`photos.photo_view`, the phone turned by up to {TURN_DEGREES:.0f} degrees, {cut}, "
             "light and colour changed)" if cfg.get("photo_views") else "")
    return f"""## Real photos
Fine-tuned from {source} for {cfg['epochs']} epochs (peak learning rate {cfg['lr']})
on Fashion-MNIST's training split{synthetic} and the {seen['n']:,} phone photos of the
clothing-dataset-small `train` split (CC0), each {seen['repeat']} times per epoch{views}, all
converted by the same preprocessing as `predict` (the garment cut out of its surroundings
unless it lies on an even studio backdrop). longsleeve
photos count any of T-shirt/top, Pullover, Shirt as right, shoes any of Sandal, Sneaker, Ankle
boot; hat, shorts and skirt photos were trained towards the uniform distribution (outlier
exposure, weight {cfg['outlier_weight']}). Files: SHA-256 of the sorted file list
`{seen['checksums']['files_sha256'][:16]}...`.

On the `validation` split ({p['n']} photos; chosen on, never tested on), as the training run
scores it (PyTorch, the first cut-out; `predict` as shipped, with its int8 graph and a second
cut-out, is scored by `benchmarks/real_photos.py`, README's figures): strict accuracy
**{_pct(p['strict_accuracy'])}** (t-shirt, pants, dress, outwear, shirt), lenient
**{_pct(p['lenient_accuracy'])}** (the seven in-class folders), out-of-class AUROC
**{p['out_of_class_auroc']:.3f}** ({_score_words(p)}; hat, shorts, skirt against the rest).
`predict` flags a picture "not one of the 10 classes" below {_threshold_words(p)}, which keeps
{_pct(at['in_class_coverage'])} of in-class validation photos and rejects
{_pct(at['out_of_class_rejection'])} of the out-of-class ones.{_changed_preprocessing(s)}

| folder | photos | accuracy | kept | most common answers |
| --- | --- | --- | --- | --- |
{rows}

## Limits
The photos are of garments laid flat or hung, one per picture, about 400 px; a garment worn
by a person, several garments in one picture or a busy pattern that matches the background
are harder. Shirt, T-shirt/top, pullover and coat are the classes it confuses most.
"""
