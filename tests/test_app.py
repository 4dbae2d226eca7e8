"""The web app: page logic with Streamlit's AppTest, and the real server in a real browser."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import cli_executable, undecided_pictures
from fashion_cnn import app_server
from fashion_cnn.app import (
    DATASET_NOTE,
    PHOTOS_NOTE,
    SAMPLES,
    UPLOAD_TYPES,
    headline,
    sample_pictures,
)
from fashion_cnn.ports import free_port
from fashion_cnn.predict import LOW, NO_GARMENT, NOT_A_CLASS, Classifier, Prediction

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
APP = Path(__file__).resolve().parents[1] / "src" / "fashion_cnn" / "app.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


def _app():
    at = streamlit_testing.AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _results(at) -> list[str]:
    return [m.value.removeprefix("### Result: ") for m in at.markdown
            if m.value.startswith("### Result: ")]


def _headlines(at) -> list[str]:
    """Every result's headline: 'Result: Coat', 'Not sure: ...' or 'No garment found ...'."""
    return [m.value.removeprefix("### ") for m in at.markdown if m.value.startswith("### ")]


def test_page_renders_and_asks_for_pictures() -> None:
    at = _app()
    assert at.title[0].value.startswith("What is this")
    assert "Upload pictures" in at.info[0].value
    assert at.file_uploader[0].accept_multiple_files


def test_sample_gallery_predictions_match_the_library(classifier: Classifier) -> None:
    samples = sample_pictures()
    assert len(samples) >= 20 and (SAMPLES / "LICENSE.md").is_file()
    assert all(p.stat().st_size < 30_000 for p in samples.values())
    chosen = ["Sneaker 1", "Bag 2", "Trouser 3"]
    at = _app()
    at.pills(key="samples").set_value(chosen).run()
    assert not at.exception
    expected = [classifier.classify_one(samples[c]).label for c in chosen]
    assert _results(at) == expected
    assert [s.value for s in at.subheader] == chosen


def _encoded(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_bad_uploads_get_a_message_and_the_rest_still_works(classifier: Classifier) -> None:
    good = (SAMPLES / "coat-1.jpg").read_bytes()
    bomb = _encoded(Image.new("L", (20_000, 20_000), 255), "PNG", optimize=True)  # 400 MP
    photo_50mp = _encoded(Image.new("RGB", (8660, 5774), (240, 240, 240)), "JPEG")
    at = _app()
    at.file_uploader[0].set_value([
        ("empty.png", b"", "image/png"),
        ("coat.jpg", good, "image/jpeg"),
        ("notes.png", b"this is not an image", "image/png"),
        ("cut.jpg", good[: len(good) // 3], "image/jpeg"),
        ("bomb.png", bomb, "image/png"),
        ("huge.jpg", photo_50mp, "image/jpeg"),
    ]).run()
    assert not at.exception
    assert _results(at) == [classifier.classify_one(good).label]
    errors = [e.value for e in at.error]
    assert len(errors) == 4 and not any("Traceback" in e for e in errors)
    assert [s.value for s in at.subheader] == ["empty.png", "coat.jpg", "notes.png", "cut.jpg",
                                               "bomb.png", "huge.jpg"]
    for error, words in zip(errors, ["empty", "not an image", "truncated", "400 megapixels"],
                            strict=True):
        assert words in error, error
    # a phone's 50-megapixel JPEG is decoded at a reduced scale, not refused (one colour: no
    # garment in it)
    assert _headlines(at)[-1] == "No garment found in this picture"


def test_a_strip_far_wider_than_tall_is_shown_and_the_rest_still_works(
        classifier: Classifier) -> None:
    """A 3000x2 picture (Streamlit would scale it to 0 px high) and its padded display copy:
    no exception box, and the pictures after it are answered."""
    coat, bag = ((SAMPLES / name).read_bytes() for name in ("coat-1.jpg", "bag-1.jpg"))
    strip = _encoded(Image.new("RGB", (3000, 2), (30, 30, 30)), "PNG")
    at = _app()
    at.file_uploader[0].set_value([("coat.jpg", coat, "image/jpeg"),
                                   ("banner.png", strip, "image/png"),
                                   ("bag.jpg", bag, "image/jpeg")]).run()
    assert not at.exception, at.exception
    assert _headlines(at)[1] == "No garment found in this picture"
    assert _results(at) == [classifier.classify_one(x).label for x in (coat, bag)]


def test_unlike_a_product_photo_gets_a_warning(classifier: Classifier) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    noise_png = _encoded(Image.fromarray(noise), "PNG")
    at = _app()
    at.file_uploader[0].set_value(("street.png", noise_png, "image/png")).run()
    assert not at.exception
    # still answers, in words that say how far to trust it
    assert _headlines(at) == [headline(classifier.classify_one(noise_png))]
    assert any("background" in w.value for w in at.warning)


def test_headline_says_unsure_in_words() -> None:
    top = [{"label": "Shirt", "index": 6, "confidence": 0.5},
           {"label": "T-shirt/top", "index": 0, "confidence": 0.4}]
    sure = Prediction("a", label="Shirt", index=6, confidence=0.9, top_k=top)
    assert headline(sure) == "Result: Shirt"
    torn = Prediction("a", label="Shirt", index=6, confidence=0.5, top_k=top, unsure=True,
                      unsure_reason=LOW)
    assert headline(torn) == "Not sure: between Shirt and T-shirt/top"
    other = Prediction("a", label="Shirt", index=6, confidence=0.3, top_k=top, unsure=True,
                       unsure_reason=NOT_A_CLASS)
    assert headline(other) == ("Not sure: this does not look like one of the 10 kinds of "
                               "clothing")
    blank = Prediction("a", unsure=True, unsure_reason=NO_GARMENT)
    assert headline(blank) == "No garment found in this picture"


def test_unsure_pictures_say_so_instead_of_a_label(classifier: Classifier) -> None:
    white = _encoded(Image.new("RGB", (300, 300), "white"), "PNG")
    # a picture the shipped model is unsure of (which one depends on the model)
    torn = next(blob for blob in undecided_pictures() if classifier.classify_one(blob).unsure)
    sure = (SAMPLES / "coat-1.jpg").read_bytes()
    at = _app()
    at.file_uploader[0].set_value([("white.png", white, "image/png"),
                                   ("torn.jpg", torn, "image/jpeg"),
                                   ("coat.jpg", sure, "image/jpeg")]).run()
    assert not at.exception and not at.error  # a blank picture is not an error
    blank, unsure, result = _headlines(at)
    assert blank == "No garment found in this picture"
    assert unsure.startswith("Not sure: ") and unsure == headline(classifier.classify_one(torn))
    assert result == f"Result: {classifier.classify_one(sure).label}"
    assert len(at.get("vega_lite_chart")) == 2  # no chart for the blank picture
    # each verdict's details once, under its headline, not again in a warning box
    details = [c.value for c in at.caption]
    assert any(d.startswith("No garment found in this picture:") for d in details)
    assert any(d.startswith(unsure) and "%" in d for d in details)
    assert not any(w.value.startswith(("No garment", "Not sure")) for w in at.warning)


def test_phone_pictures_upload(classifier: Classifier) -> None:
    assert {"heic", "heif", "avif"} <= set(UPLOAD_TYPES)
    jpeg = Image.open(SAMPLES / "trouser-1.jpg")
    at = _app()
    at.file_uploader[0].set_value([
        ("trouser.heic", _encoded(jpeg, "HEIF", quality=90), "image/heic"),
        ("trouser.avif", _encoded(jpeg, "AVIF", quality=90), "image/avif")]).run()
    assert not at.exception and not at.error
    expected = classifier.classify_one(SAMPLES / "trouser-1.jpg").label
    assert _results(at) == [expected, expected]


def test_explanation_overlay_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """And clicking does not classify the same pictures again: the page runs again on every
    click, and with 30 photos each click once took seconds."""
    import streamlit as st

    st.cache_data.clear()  # other tests' pictures may be in it
    seen: list[str] = []
    classify_one = Classifier.classify_one
    monkeypatch.setattr(Classifier, "classify_one", lambda self, source, name=None, top_k=3: (
        seen.append(name) or classify_one(self, source, name, top_k)))
    at = _app()
    at.pills(key="samples").set_value(["Dress 1", "Bag 1"]).run()
    n_images = len(at.image)
    at.toggle[1].set_value(True).run()
    assert not at.exception
    assert len(at.image) == n_images + 2
    assert "SmoothGrad" in at.image[-1].proto.imgs[0].caption
    at.toggle[1].set_value(False).run()
    assert len(at.image) == n_images and sorted(seen) == ["Bag 1", "Dress 1"]  # once each


def test_model_page_reads_the_shipped_files() -> None:
    at = streamlit_testing.AppTest.from_string(
        "from fashion_cnn.app import model_page\nmodel_page()", default_timeout=60)
    at.run()
    assert not at.exception
    assert at.metric[0].value.endswith("%") and float(at.metric[0].value[:-1]) >= 90.5
    assert len(at.dataframe) == 1 and len(at.image) == 2
    assert any("Model card" in e.label for e in at.expander)


@pytest.mark.parametrize("model,note", [("best", PHOTOS_NOTE), ("seed", DATASET_NOTE)])
def test_the_page_says_what_its_model_is_good_for(model: str, note: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed model never saw a phone photo: the page must not promise that it reads them."""
    monkeypatch.setenv(app_server.MODEL_ENV, model)
    assert note in _app().caption[0].value


def test_model_page_of_a_run_that_left_the_test_set_alone(tiny_data, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from fashion_cnn.training import TrainConfig, run_training

    run_training(TrainConfig(epochs=1, val_fraction=0.25), tiny_data, tmp_path, progress=False,
                 log=lambda _: None, score_test=False)
    monkeypatch.setenv(app_server.MODEL_ENV, str(tmp_path / "model.pt"))
    at = streamlit_testing.AppTest.from_string(
        "from fashion_cnn.app import model_page\nmodel_page()", default_timeout=60)
    at.run()
    assert not at.exception
    assert at.metric[0].label == "Accuracy on its validation split (not scored on the test set)"
    assert at.metric[0].value.endswith("%")


# --- the real server in a real browser --------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    """The real server, started through the real `fashion-cnn app` command."""
    port = free_port()
    proc = subprocess.Popen([cli_executable(), "app", "--port", str(port), "--host",
                             "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        app_server.wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.mark.slow
def test_upload_in_a_real_browser(server: str, browser, classifier: Classifier,
                                  tmp_path: Path) -> None:
    picture = tmp_path / "**boot** [x](y) :red[z].jpg"  # shown as named, not as Markdown
    picture.write_bytes((SAMPLES / "ankle-boot-1.jpg").read_bytes())  # a sure one: the
    # headline is "Result: <label>"
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server)
    page.get_by_text("Upload pictures, take one").wait_for(timeout=60_000)
    page.locator('input[type="file"]').set_input_files([str(picture), str(bad)])
    result = page.locator("h3", has_text="Result:").first
    result.wait_for(timeout=60_000)
    page.get_by_text("Could not classify this picture").wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    label = result.inner_text().removeprefix("Result:").strip()
    assert label == classifier.classify_one(picture).label
    error = page.get_by_text("Could not classify this picture").inner_text()
    assert "the PNG file is truncated or corrupt" in error  # what is wrong, and what to do
    assert page.locator("h3", has_text="broken.png").count() == 1
    assert page.locator("h3", has_text=picture.name).count() == 1
    assert (tmp_path / "app.png").stat().st_size > 10_000
    page.close()


@pytest.mark.slow
def test_model_page_in_a_real_browser(server: str, browser, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(f"{server}/model")
    page.get_by_text("Accuracy on the 10,000 Fashion-MNIST test images").wait_for(timeout=60_000)
    page.get_by_text("Per class").wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "model.png"), full_page=True)
    page.close()


def test_the_app_on_the_default_model_never_imports_numba() -> None:
    from conftest import modules_loaded_by

    code = ("from streamlit.testing.v1 import AppTest\n"
            f"at = AppTest.from_file({str(APP)!r}, default_timeout=120)\n"
            "at.run()\n"
            "at.pills(key='samples').set_value(['Sneaker 1']).run()\n"
            "assert not at.exception and any(m.value.startswith('### Result: ') "
            "for m in at.markdown)")
    assert "numba" not in modules_loaded_by(code)
