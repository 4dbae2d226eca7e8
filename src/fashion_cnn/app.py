"""The web app: upload clothing pictures and see what they are. Run it with `fashion-cnn app`.

A thin Streamlit page: decoding, preprocessing, prediction and explanation are library
functions (`fashion_cnn.predict`, `fashion_cnn.explain`) shared with `fashion-cnn predict`.
The model comes from $FASHION_CNN_MODEL (a checkpoint path or shipped name; default: the
shipped default model) and is loaded once per server.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from fashion_cnn.app_server import MODEL_ENV
from fashion_cnn.explain import overlay, saliency
from fashion_cnn.formats import PICTURE_SUFFIXES, readable_names
from fashion_cnn.models import model_files
from fashion_cnn.predict import NO_GARMENT, NOT_A_CLASS, Classifier, Prediction
from fashion_cnn.records import percent

SAMPLES = Path(__file__).resolve().parent / "samples"
# What a model is good for: one with an unsure rule was chosen on real phone photos
PHOTOS_NOTE = ("Works with one garment, whole, photographed on a floor, bed, table, hanger or "
               "plain background, and with shop photos.")
DATASET_NOTE = ("This model knows Fashion-MNIST's product pictures (one article on a plain "
                "background) and never saw a phone photo: for those, use the default model.")
UPLOAD_TYPES = [suffix.removeprefix(".") for suffix in PICTURE_SUFFIXES]
TOP_K = 5
MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]<>~:$|])")  # emphasis, links, HTML, colour, LaTeX
MARKDOWN_LEADING = re.compile(r"^([#+>-])")  # a heading, list or quote at the start
NUMBERED = re.compile(r"^(\d+)([.)])")  # "1. " starts a numbered list
SHOWN_SIDE = 1600  # px: the picture is shown at most this size (the page is narrower)
SHOWN_RATIO = 20  # a thinner strip is padded to this width:height, so scaling keeps >= 1 px


def literal(text: str) -> str:
    """`text` as Streamlit's Markdown shows it, character for character: a file named
    `**bold**.jpg`, `[x](y).jpg` or `:red[a].jpg` is not formatted, linked or coloured."""
    text = MARKDOWN_INLINE.sub(r"\\\1", text)
    return NUMBERED.sub(r"\1\\\2", MARKDOWN_LEADING.sub(r"\\\1", text))


def shown(img: Image.Image) -> Image.Image:
    """The picture as the page shows it: at most SHOWN_SIDE px, a strip padded with white to
    SHOWN_RATIO:1 (Streamlit scales a 3000x2 picture to the column's width and rounds its
    height to 0, which fails)."""
    img = img.copy()
    img.thumbnail((SHOWN_SIDE, SHOWN_SIDE))
    w, h = img.size
    size = (max(w, math.ceil(h / SHOWN_RATIO)), max(h, math.ceil(w / SHOWN_RATIO)))
    if size == (w, h):
        return img
    canvas = Image.new("RGB", size, "white")
    canvas.paste(img, ((size[0] - w) // 2, (size[1] - h) // 2))
    return canvas


@st.cache_resource(show_spinner="Loading the model ...")
def get_classifier(model: str | None) -> Classifier:
    return Classifier(model)


# Streamlit runs the page again on every click: a picture already classified (or explained)
# is answered from these caches, not computed again
@st.cache_data(max_entries=200, show_spinner="Classifying ...")
def classify_cached(model: str | None, data: bytes, name: str) -> Prediction:
    """One picture's prediction by `model` (None: the default)."""
    return get_classifier(model).classify_one(data, name, top_k=TOP_K)


@st.cache_data(max_entries=200, show_spinner="Finding the pixels that drove it ...")
def saliency_cached(model: str | None, image: np.ndarray, index: int) -> np.ndarray:
    """`explain.saliency` of a model input (uint8 [28, 28]) for class `index`."""
    return saliency(get_classifier(model).net, image, index)


def model_from_env() -> str | None:
    """The model `fashion-cnn app --model` asked for (None: the default)."""
    return os.environ.get(MODEL_ENV) or None


def accuracy_words(meta: dict) -> tuple[str, str]:
    """(what was scored, accuracy) of a checkpoint: the official test set, or its validation
    split for a run trained with `--no-test`."""
    metrics = meta.get("metrics") or {}
    if metrics.get("test_accuracy") is not None:
        return "the 10,000 Fashion-MNIST test images", f"{100 * metrics['test_accuracy']:.2f}%"
    if metrics.get("val_accuracy") is not None:
        return ("its validation split (not scored on the test set)",
                f"{100 * metrics['val_accuracy']:.2f}%")
    return "no data recorded with it", "n/a"


def sample_pictures() -> dict[str, Path]:
    """Bundled sample pictures by display name, e.g. 'Sneaker 2'."""
    paths = sorted(SAMPLES.glob("*.jpg"))
    return {p.stem.replace("-", " ").capitalize().replace("T shirt top", "T-shirt/top"): p
            for p in paths}


# ---------------------------------------------------------------------------------------------
# Page 1: classify pictures


def classify_page() -> None:
    classifier = get_classifier(model_from_env())
    st.title("What is this piece of clothing?")
    scored_on, accuracy = accuracy_words(classifier.meta)
    st.caption(f"Model `{classifier.meta['arch']}`, {accuracy} on {scored_on}. "
               + (PHOTOS_NOTE if classifier.meta.get("unsure") else DATASET_NOTE))
    upload_tab, camera_tab, sample_tab = st.tabs(["Upload", "Camera", "Samples"])
    with upload_tab:
        uploads = st.file_uploader(f"Pictures of clothing ({readable_names()})",
                                   type=UPLOAD_TYPES, accept_multiple_files=True)
    with camera_tab:
        photo = st.camera_input("Take a picture") if st.toggle("Use the camera") else None
    with sample_tab:
        samples = sample_pictures()
        chosen = st.pills("Sample pictures (Fashion-MNIST test images as product photos)",
                          list(samples), selection_mode="multi", key="samples")
    explain = st.toggle("Show which pixels drove each prediction", value=False)

    names = [f.name for f in uploads or []] + (["camera"] if photo else []) + list(chosen or [])
    sources = ([f.getvalue() for f in uploads or []] + ([photo.getvalue()] if photo else [])
               + [samples[c].read_bytes() for c in chosen or []])
    if not sources:
        st.info("Upload pictures, take one with the camera, or pick a sample.")
        return
    for source, name in zip(sources, names, strict=True):
        show_prediction(classify_cached(model_from_env(), source, name), explain)


def headline(p: Prediction) -> str:
    """The answer in words: the label when the model is sure, else why it is not."""
    if p.unsure_reason == NO_GARMENT:
        return "No garment found in this picture"
    if p.unsure_reason == NOT_A_CLASS:
        return "Not sure: this does not look like one of the 10 kinds of clothing"
    if p.unsure:  # low confidence: torn between the two most likely classes
        return f"Not sure: between {' and '.join(t['label'] for t in p.top_k[:2])}"
    return f"Result: {p.label}"


def show_prediction(p: Prediction, explain: bool) -> None:
    st.divider()
    st.subheader(literal(p.path))
    if p.error:
        st.error(f"Could not classify this picture: {p.error}")
        return
    original, seen, result = st.columns([2, 1, 2])
    original.image(shown(p.input.original), caption="The picture", width="stretch")
    seen.image(Image.fromarray(p.input.image).resize((140, 140), Image.Resampling.NEAREST),
               caption="What the model sees (28x28)")
    # the unsure verdict's details go under the headline that says it in short, the picture's
    # own warnings (cut-out, size) in boxes
    verdict, warnings = p.verdict()
    with result:
        st.markdown(f"### {headline(p)}")
        if verdict:
            st.caption(verdict)
        if p.label is not None:  # no garment found: there is no guess to show
            lead = f"Best guess {p.label}, confidence" if p.unsure else "Confidence"
            st.markdown(f"{lead} **{percent(p.confidence)}**")
            chart = {t["label"]: t["confidence"] for t in p.top_k}
            st.bar_chart(chart, horizontal=True, sort=False, x_label="probability", height=180)
    for warning in warnings:
        st.warning(warning)
    if explain and p.index is not None:
        heat = saliency_cached(model_from_env(), p.input.image, p.index)
        st.image(overlay(p.input.image, heat), width=224,
                 caption=f"Pixels that most raised the score of '{p.label}' (SmoothGrad)")


# ---------------------------------------------------------------------------------------------
# Page 2: the model


def model_page() -> None:
    classifier = get_classifier(model_from_env())
    meta = classifier.meta
    files = model_files(model_from_env())
    st.title(f"Model: {meta['arch']}")
    scored_on, accuracy = accuracy_words(meta)
    st.metric(f"Accuracy on {scored_on}", accuracy)
    if "metrics" in files:
        shipped = json.loads(files["metrics"].read_text())
        rows = shipped.get("evaluation", {}).get("per_class", [])
        if rows:
            st.subheader("Per class")
            st.dataframe([{k: r[k] for k in ("class", "precision", "recall", "f1", "support")}
                          for r in rows], hide_index=True,
                         column_config={k: st.column_config.NumberColumn(format="%.3f")
                                        for k in ("precision", "recall", "f1")})
    plots = [(key, title) for key, title in (("confusion_matrix", "Confusion matrix"),
                                             ("learning_curves", "Learning curves"))
             if key in files]
    for column, (key, title) in zip(st.columns(max(len(plots), 1)), plots, strict=False):
        column.image(str(files[key]), caption=title, width="stretch")
    if "card" in files:
        with st.expander("Model card", expanded=True):
            st.markdown(files["card"].read_text())
    else:
        st.info(f"No model card next to {meta['path']}; its training config: "
                f"{json.dumps(meta.get('config'))}")


def main() -> None:
    st.set_page_config(page_title="fashion-cnn", page_icon="👕", layout="wide")
    page = st.navigation([st.Page(classify_page, title="Classify", default=True),
                          st.Page(model_page, title="Model", url_path="model")])
    page.run()


if __name__ == "__main__":
    main()
