"""Decoding every kind of picture, refusing bad ones, and the dataset authors' conversion."""

from __future__ import annotations

import io
import os
import signal
import struct
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES, synthetic_article
from fashion_cnn.formats import register_phone_formats
from fashion_cnn.preprocess import (
    FIRST_FRAME,
    NOISE_LIKENESS,
    UNSEPARATED,
    WHOLE_FRAME,
    ImageError,
    PreprocessConfig,
    analyse,
    colour_spread,
    decode_image,
    edge_cut_out,
    is_dataset_form,
    likeness,
    nothing_to_find,
    one_colour,
    preprocess,
    started,
    to_dataset_form,
)


def _article(size: tuple[int, int] = (300, 240), offset: tuple[int, int] = (40, 30),
             colour: tuple[int, int, int] = (40, 60, 160),
             background: tuple[int, int, int] = (250, 250, 250)) -> Image.Image:
    """A dark rectangle-with-notch 'article' on a plain light background."""
    img = Image.new("RGB", size, background)
    w, h = size[0] // 3, size[1] // 2  # 100x120: taller than wide
    x, y = offset
    block = Image.new("RGB", (w, h), colour)
    block.paste(background, (w // 3, 0, 2 * w // 3, h // 4))  # a notch, so it is not symmetric
    img.paste(block, (x, y))
    return img


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


REFERENCE = to_dataset_form(_article())


def _same_article(out: np.ndarray, reference: np.ndarray = REFERENCE) -> float:
    """Overlap (IoU) of the article's pixels: lossy codecs shift edges by a pixel or so."""
    a, b = out > 100, reference > 100
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "LA", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_decodes_to_the_same_article(mode: str) -> None:
    img = _article()
    if mode == "I;16":
        converted = Image.fromarray(np.asarray(img.convert("L"), np.uint16) * 257)
    elif mode == "1":
        converted = img.convert("1", dither=Image.Dither.NONE)
    elif mode == "P":
        converted = img.quantize(64)
    elif mode in ("I", "F"):
        converted = Image.fromarray(np.asarray(img.convert("L"), np.float32)).convert(mode)
    else:
        converted = img.convert(mode)
    fmt = {"CMYK": "TIFF", "I;16": "PNG", "I": "TIFF", "F": "TIFF"}.get(mode, "PNG")
    decoded = decode_image(_encode(converted, fmt))
    assert decoded.mode == "RGB" and decoded.size == img.size
    out = to_dataset_form(decoded)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert _same_article(out) > 0.9, mode


def test_transparency_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (100, 100), (0, 0, 0, 0))  # fully transparent black
    rgba.paste((200, 0, 0, 255), (30, 30, 70, 70))
    decoded = decode_image(_encode(rgba, "PNG"))
    assert decoded.getpixel((0, 0)) == (255, 255, 255)
    assert decoded.getpixel((50, 50)) == (200, 0, 0)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_formats(fmt: str) -> None:
    out = to_dataset_form(decode_image(_encode(_article(), fmt)))
    assert _same_article(out) > 0.8, fmt


def test_exif_orientation_is_applied() -> None:
    img = _article((300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    decoded = decode_image(_encode(img, "JPEG", exif=exif))
    assert decoded.size == (200, 300)


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [_article(), Image.new("RGB", (300, 200), (0, 0, 0))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert to_dataset_form(decode_image(data)).max() > 100  # not the black second frame


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"just some text, not a picture", "not an image"),
])
def test_unreadable_bytes(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image(data)


@pytest.mark.parametrize("fmt,name", [("JPEG", "JPEG"), ("PNG", "PNG"), ("GIF", "GIF"),
                                      ("BMP", "BMP"), ("TIFF", "TIFF"), ("WEBP", "WebP"),
                                      ("HEIF", "HEIC"), ("AVIF", "AVIF")])
def test_the_first_bytes_of_a_picture_are_a_damaged_picture(fmt: str, name: str) -> None:
    """Cut to its first 40 bytes, a picture is damaged, not "not an image this tool can read",
    whether Pillow still tells its format (then its error is shown) or not (then the first
    bytes name the format)."""
    register_phone_formats()
    data = _encode(_article(), fmt)
    with pytest.raises(ImageError, match=f"^the ({name} file|image) is truncated or corrupt"):
        decode_image(data[:40])


@pytest.mark.parametrize("fmt", ["PPM", "ICO", "TGA", "PCX"])
def test_formats_pillow_knows_but_this_tool_does_not_take_are_refused(fmt: str) -> None:
    """Only the formats the message names are decoded (not EPS through Ghostscript, nor an
    icon renamed .jpg), as a folder listing takes only their suffixes."""
    with pytest.raises(ImageError, match="not an image this tool can read; use a JPEG"):
        decode_image(_encode(_article(), fmt))


def test_truncated_image() -> None:
    data = _encode(_article(), "JPEG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_a_damaged_page_of_a_tiff_is_corrupt_not_a_crash() -> None:
    """Pillow fails on some damaged files with other errors than OSError (a TIFF whose second
    page has no width: TypeError while counting its frames): still one clear message."""
    data = bytearray(_encode(Image.new("RGB", (64, 64), "white"), "TIFF", save_all=True,
                             append_images=[Image.new("RGB", (64, 64))]))
    first = struct.unpack_from("<I", data, 4)[0]
    tags = struct.unpack_from("<H", data, first)[0]
    second = struct.unpack_from("<I", data, first + 2 + 12 * tags)[0]
    for i in range(struct.unpack_from("<H", data, second)[0]):  # rename page 2's ImageWidth
        if struct.unpack_from("<H", data, second + 2 + 12 * i)[0] == 256:
            struct.pack_into("<H", data, second + 2 + 12 * i, 0x7FFF)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(bytes(data))


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # A 20000x20000 PNG of one colour compresses to a few hundred KB: 400 megapixels.
    bomb = _encode(Image.new("L", (20_000, 20_000), 255), "PNG", optimize=True)
    assert len(bomb) < 2_000_000
    with pytest.raises(ImageError, match="400 megapixels"):
        decode_image(bomb)


def test_pixel_cap_is_configurable() -> None:
    with pytest.raises(ImageError, match="megapixel limit"):
        decode_image(_encode(_article(), "PNG"), max_pixels=10_000)


def test_a_jpeg_over_the_pixel_cap_is_decoded_at_a_reduced_scale() -> None:
    """Phones save 48- and 50-megapixel JPEGs; decoded at 1/8 scale they are small. Other
    formats decode whole, so the cap holds for them."""
    big = Image.new("RGB", (1600, 1200), "white")
    big.paste(Image.new("RGB", (600, 800), "navy"), (500, 200))
    cap = 500_000  # 1.9 megapixels is over it; at the 1/4 scale a 256 px copy needs, under
    decoded = decode_image(_encode(big, "JPEG"), max_pixels=cap, work_size=256)
    assert max(decoded.size) < 1600 and decoded.size[0] * 3 == decoded.size[1] * 4
    with pytest.raises(ImageError, match="1600x1200 .* over the 0-megapixel limit"):
        decode_image(_encode(big, "PNG"), max_pixels=cap, work_size=256)
    with pytest.raises(ImageError, match="megapixel limit"):
        decode_image(_encode(big, "JPEG"), max_pixels=cap)  # full size asked: the cap holds


def test_a_file_bigger_than_any_picture_is_refused_unread(tmp_path, monkeypatch) -> None:
    """`predict /dev/zero` or a video once read until the memory ran out."""
    from fashion_cnn import preprocess as module

    monkeypatch.setattr(module, "MAX_FILE_BYTES", 1000)
    big = tmp_path / "film.jpg"
    big.write_bytes(_encode(_article(), "PNG") + bytes(2000))
    for source in (big, str(big), io.BytesIO(big.read_bytes())):
        with pytest.raises(ImageError, match="over 0 MB, more than any picture"):
            decode_image(source)
    with open("/dev/zero", "rb") as endless:  # never ends: only the limit stops it
        with pytest.raises(ImageError, match="more than any picture"):
            decode_image(endless)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "WEBP", "PNG"])
def test_an_animation_says_only_its_first_frame_was_classified(fmt: str) -> None:
    frames = [Image.new("RGB", (200, 200), "white") for _ in range(3)]
    for i, frame in enumerate(frames):  # frames that differ: equal ones are merged on saving
        frame.paste(Image.new("RGB", (80, 120), "navy"), (60 + 5 * i, 40))
    moving = _encode(frames[0], fmt, save_all=True, append_images=frames[1:])
    assert preprocess(moving).warnings[0] == FIRST_FRAME
    assert FIRST_FRAME not in preprocess(_encode(frames[0], fmt)).warnings


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ImageError, match="cannot read"):
        decode_image(tmp_path / "nope.png")


def test_what_is_no_picture_is_a_type_error_and_bytes_like_ones_are_read(tmp_path) -> None:
    """A numpy array, None or a file opened in text mode failed with "AttributeError: ... has
    no attribute 'read'" or was called a corrupt image; bytearray and memoryview, bytes in all
    but name, failed the same way. The first are now a TypeError saying what a picture is, the
    second are read; a Pillow image of no pixels is an ImageError, not an IndexError."""
    data = _encode(_article(), "PNG")
    reference = preprocess(data).image
    for same in (bytearray(data), memoryview(data)):
        assert np.array_equal(preprocess(same).image, reference)
    (tmp_path / "a.png").write_bytes(data)
    with open(tmp_path / "a.png") as text:
        for wrong, message in ((np.zeros((28, 28), np.uint8), "Image.fromarray"), (None, "None"),
                               (text, "opened in text mode")):
            with pytest.raises(TypeError, match=f"A picture is bytes, a path.*{message}"):
                preprocess(wrong)
    with pytest.raises(ImageError, match=r"no pixels \(0x0\)"):
        preprocess(Image.new("RGB", (0, 0)))


def test_conversion_trims_centres_and_negates() -> None:
    out = to_dataset_form(_article(offset=(150, 90)))  # far off-centre
    assert out[:, :2].max() == 0 and out[:, -2:].max() == 0  # background black, margins
    ys, xs = np.nonzero(out > 60)
    assert ys.min() == 0 and ys.max() == 27  # longest side (height) fitted to 28
    assert abs((xs.min() + xs.max()) / 2 - 13.5) <= 1  # centred across
    assert out[14, 14] > 150  # negated: the dark article is now bright
    assert np.array_equal(out, to_dataset_form(_article(offset=(10, 5))))  # position-free


def test_dark_background_is_not_negated() -> None:
    light = to_dataset_form(_article(colour=(30, 30, 30), background=(250, 250, 250)))
    dark = to_dataset_form(_article(colour=(225, 225, 225), background=(5, 5, 5)))
    assert _same_article(light, dark) > 0.95


def test_dataset_form_images_are_left_alone() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros((28, 28), np.uint8)
    x[4:24, 8:20] = rng.integers(50, 255, (20, 12))
    img = Image.fromarray(x)
    assert is_dataset_form(img)
    assert np.array_equal(to_dataset_form(img.convert("RGB")), x)
    assert np.array_equal(preprocess(_encode(img, "PNG")).image, x)
    assert preprocess(img).dataset_form
    assert not is_dataset_form(Image.fromarray(255 - x))  # light background: a photo


def test_blank_picture_does_not_crash() -> None:
    out = preprocess(Image.new("RGB", (50, 50), (240, 240, 240))).image
    assert out.shape == (28, 28)


def test_busy_background_gets_a_warning_where_nothing_is_cut_out() -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))
    assert preprocess(noise, PreprocessConfig(foreground="trim")).warnings
    assert not preprocess(_article()).warnings


def _room_photo(seed: int = 0, garment: bool = True) -> tuple[Image.Image, np.ndarray]:
    """A garment (a dark T-shirt-like shape) lying on a textured, unevenly lit floor, and the
    garment's own mask: what the authors' trim cannot separate. `garment=False`: the floor
    alone."""
    rng = np.random.default_rng(seed)
    h, w = 400, 300
    yy, xx = np.mgrid[0:h, 0:w]
    grain = 25 * np.sin(xx / 7.0 + 3 * np.sin(yy / 40.0)) + rng.normal(0, 6, (h, w))
    light = 1.0 - 0.25 * yy / h  # a 25% gradient from top to bottom
    floor = np.stack([(190 + grain) * light, (150 + grain) * light, (110 + grain) * light], 2)
    mask = np.zeros((h, w), bool)
    mask[110:330, 95:205] = True  # body
    mask[110:170, 50:250] = True  # sleeves
    mask[110:130, 130:170] = False  # neckline
    mask &= garment
    shirt = np.array([40.0, 60.0, 150.0]) + rng.normal(0, 5, (h, w, 3))
    rgb = np.where(mask[..., None], shirt, floor)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)), mask


def _silhouette_iou(image: np.ndarray, mask: np.ndarray) -> float:
    """IoU of the model input's lit pixels with the garment mask fitted as preprocess fits."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32) * 255
    from fashion_cnn.preprocess import fit_centred

    expected = fit_centred(crop, 28) > 127
    lit = image > 60
    return float((lit & expected).sum() / (lit | expected).sum())


def test_an_empty_floor_is_classified_whole_and_said_so() -> None:
    """Nothing stands out from the edges of an empty floor: the whole picture becomes the
    silhouette, with the WHOLE_FRAME warning that says so; a garment on the same
    floor gets no such warning."""
    floor = preprocess(_room_photo(garment=False)[0])
    assert WHOLE_FRAME in floor.warnings and UNSEPARATED not in floor.warnings
    assert (floor.image > 40).mean() > 0.7  # the whole 3:4 frame (21 of 28 columns)
    assert WHOLE_FRAME not in preprocess(_room_photo()[0]).warnings


def test_a_garment_on_a_textured_floor_is_cut_out() -> None:
    photo, mask = _room_photo()
    cut = preprocess(photo).image
    assert _silhouette_iou(cut, mask) > 0.75
    assert cut.max() == 255 and cut[:, 0].max() == 0  # a bright garment on black
    trimmed = preprocess(photo, PreprocessConfig(foreground="trim")).image
    assert _silhouette_iou(trimmed, mask) < 0.5  # the authors' trim keeps the floor


@pytest.mark.parametrize("rounds", [1, 2])
def test_fewer_grabcut_rounds_still_find_the_garment(rounds: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`fg_iterations` is what GrabCut runs (a speed setting; checkpoints without it: 4)."""
    import cv2

    seen = []
    grab_cut = cv2.grabCut
    monkeypatch.setattr(cv2, "grabCut", lambda *a: seen.append(a[5]) or grab_cut(*a))
    photo, mask = _room_photo()
    cut = preprocess(photo, PreprocessConfig(fg_iterations=rounds)).image
    assert seen == [rounds]  # the garment leaves the border alone: no second cut-out
    assert _silhouette_iou(cut, mask) > 0.75
    assert PreprocessConfig.from_dict({"fg_size": 96}).fg_iterations == 4


def test_grabcut_can_start_with_the_backdrops_colour_as_background(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`fg_seed_near` starts inside pixels of the band's colour as probable background (the
    rest as probable garment, the band as background) and still finds the garment; 0, what
    checkpoints without the setting get, starts everything inside as probable garment."""
    import cv2

    starts = []
    grab_cut = cv2.grabCut
    monkeypatch.setattr(cv2, "grabCut", lambda *a: starts.append(a[1].copy()) or grab_cut(*a))
    photo, mask = _room_photo()
    cut = preprocess(photo, PreprocessConfig(fg_seed_near=20)).image
    plain = preprocess(photo, PreprocessConfig()).image
    near, everything = starts
    labels = {int(v) for v in np.unique(near)}
    assert labels == {cv2.GC_BGD, cv2.GC_PR_BGD, cv2.GC_PR_FGD}
    assert {int(v) for v in np.unique(everything)} == {cv2.GC_BGD, cv2.GC_PR_FGD}
    # a start nearer the answer: the floor like the band's starts as background, so the
    # probable garment holds a larger share of garment than the whole inside does
    garment = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(
        near.shape[::-1], Image.Resampling.BOX)) > 127
    inside = near != cv2.GC_BGD
    assert garment[near == cv2.GC_PR_FGD].mean() > 1.5 * garment[inside].mean()
    assert garment[near == cv2.GC_PR_BGD].mean() < 0.05
    assert _silhouette_iou(cut, mask) > 0.75 and _silhouette_iou(plain, mask) > 0.75
    assert PreprocessConfig.from_dict({"fg_size": 96}).fg_seed_near == 0
    assert PreprocessConfig.problems({"fg_seed_near": -1})


def _edge_photo() -> tuple[Image.Image, np.ndarray]:
    """`_room_photo`'s garment reaching down to the picture's bottom edge, with a white print
    on it: its colour fills part of the border band that the cut-out takes as background."""
    photo, _ = _room_photo()
    rgb = np.asarray(photo).copy()
    mask = np.zeros(rgb.shape[:2], bool)
    mask[110:, 95:205] = True  # the body, down to the edge
    mask[110:170, 50:250] = True  # sleeves
    mask[110:130, 130:170] = False  # neckline
    rgb[mask] = (40, 60, 150)
    rgb[200:260, 120:180] = 240  # the print
    return Image.fromarray(rgb), mask


def test_a_garment_reaching_the_edge_gets_a_second_cut_out() -> None:
    """The first cut-out keeps what stands out from the garment (its print); the second leaves
    the border segments of the garment's colour to GrabCut and finds the whole garment."""
    photo, mask = _edge_photo()
    cut = preprocess(photo)
    assert _silhouette_iou(cut.image, mask) < 0.6
    assert _silhouette_iou(cut.edge_image, mask) > 0.9
    assert preprocess(photo, PreprocessConfig(fg_edge=0)).edge_image is None
    room, _ = _room_photo()
    assert preprocess(room).edge_image is None  # its border is one floor: nothing to leave
    assert preprocess(_article()).edge_image is None  # product photos: the authors' steps


def test_the_second_cut_out_made_beside_the_first_is_the_one_made_alone(monkeypatch) -> None:
    """`convert` makes the second cut-out on a side thread while the first is made: the same
    pixels as made alone, afterwards (GrabCut's random start is seeded per thread), and alone
    on a one-core machine and with the flag off."""
    photo, _ = _room_photo()
    alone = edge_cut_out(_edge_photo()[0], PreprocessConfig())
    assert alone is not None
    for cores, side_thread in ((2, True), (1, True), (2, False)):
        monkeypatch.setattr("fashion_cnn.preprocess.cores", lambda cores=cores: cores)
        monkeypatch.setattr("fashion_cnn.preprocess.SIDE_THREAD", side_thread)
        for _ in range(3):  # with the room photo's cut-outs in between
            assert np.array_equal(preprocess(_edge_photo()[0]).edge_image, alone)
            assert preprocess(photo).edge_image is None


def test_started_runs_beside_the_caller_and_passes_its_error_on(monkeypatch) -> None:
    assert started(threading.current_thread)().name.startswith("fashion-cnn-cut-out")
    with pytest.raises(ZeroDivisionError):
        started(divmod, 1, 0)()
    monkeypatch.setattr("fashion_cnn.preprocess.SIDE_THREAD", False)
    assert started(threading.current_thread)() is threading.current_thread()
    monkeypatch.setattr("fashion_cnn.preprocess.SIDE_THREAD", True)
    monkeypatch.setattr("fashion_cnn.preprocess.cores", lambda: 1)
    assert started(threading.current_thread)() is threading.current_thread()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_started_works_in_a_forked_child() -> None:
    """A forked child inherits the side thread's executor but not the thread: it makes its
    own rather than waiting forever."""
    assert started(int, "7")() == 7  # the parent's side thread exists
    pid = os.fork()
    if pid == 0:  # the child: exit 0 if the side thread answers within 10 s, else killed
        signal.alarm(10)
        os._exit(0 if started(int, "7")() == 7 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_cut_out_is_deterministic_and_product_photos_keep_the_authors_steps() -> None:
    photo, _ = _room_photo(1)
    assert np.array_equal(preprocess(photo).image, preprocess(photo).image)
    studio = preprocess(_article()).image
    assert np.array_equal(studio, preprocess(_article(), PreprocessConfig(foreground="trim")).image)


def test_an_unevenly_lit_backdrop_is_no_studio_photo() -> None:
    """The same article on a backdrop with light falling off by 10% across it: the authors'
    trim would keep the brighter half of the backdrop; `plain_spread` sends it to the cut-out."""
    even = _article()
    rgb = np.asarray(even, np.float32)
    fall_off = 1 - 0.10 * np.linspace(0, 1, rgb.shape[1])[None, :, None]
    lit = Image.fromarray((rgb * fall_off).round().astype(np.uint8))
    layout = analyse(lit)
    assert layout.border_spread > PreprocessConfig().plain_spread >= analyse(even).border_spread
    auto, trim = preprocess(lit).image, preprocess(lit, PreprocessConfig(foreground="trim")).image
    assert np.array_equal(auto, preprocess(lit, PreprocessConfig(foreground="cutout")).image)
    assert _same_article(auto) > _same_article(trim)
    assert np.array_equal(preprocess(lit, PreprocessConfig(plain_spread=1e9)).image, trim)


@pytest.mark.parametrize("size", [(1, 1), (500, 3), (120, 90)])
def test_one_colour_pictures_give_an_empty_input(size: tuple[int, int]) -> None:
    out = preprocess(Image.new("RGB", size, (200, 170, 120))).image
    assert out.shape == (28, 28) and out.max() == 0


def test_config_round_trip() -> None:
    config = PreprocessConfig(resample="area", sharpen=False)
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    assert PreprocessConfig.from_dict(None) == PreprocessConfig()
    assert PreprocessConfig.from_dict({"unknown": 1}) == PreprocessConfig()


def test_pale_article_is_stretched_to_full_brightness() -> None:
    pale = to_dataset_form(_article(colour=(250, 225, 90)))  # yellow on white: luma ~215
    assert pale.max() == 255  # as every training image (their peaks are 240-255)
    assert _same_article(pale) > 0.9
    faint = to_dataset_form(_article(colour=(250, 225, 90)), PreprocessConfig(stretch=False))
    assert faint.max() < 100


def test_blank_picture_is_not_stretched_into_noise() -> None:
    rng = np.random.default_rng(0)
    flat = np.full((120, 120, 3), 240.0) + rng.normal(0, 1.5, (120, 120, 3))
    out = to_dataset_form(Image.fromarray(flat.clip(0, 255).astype(np.uint8)))
    assert out.max() < 40


def _worn(shirt_colour: tuple[int, int, int], skin_colour: tuple[int, int, int]
          ) -> tuple[Image.Image, Image.Image]:
    """A T-shirt worn by a person (hair, face, neck, arms, legs) on a white studio background,
    and the same T-shirt alone."""
    from PIL import ImageDraw

    alone = Image.new("RGB", (400, 600), (250, 250, 250))
    d = ImageDraw.Draw(alone)
    d.polygon([(140, 170), (260, 170), (260, 380), (140, 380)], fill=shirt_colour)
    d.polygon([(140, 170), (90, 240), (115, 255), (140, 215)], fill=shirt_colour)
    d.polygon([(260, 170), (310, 240), (285, 255), (260, 215)], fill=shirt_colour)
    worn = alone.copy()
    p = ImageDraw.Draw(worn)
    p.ellipse([165, 50, 235, 140], fill=skin_colour)  # face
    p.ellipse([165, 40, 235, 85], fill=(40, 30, 25))  # hair
    p.rectangle([188, 135, 212, 172], fill=skin_colour)  # neck
    p.polygon([(92, 243), (113, 254), (100, 380), (82, 378)], fill=skin_colour)  # arms
    p.polygon([(308, 243), (287, 254), (300, 380), (318, 378)], fill=skin_colour)
    p.rectangle([150, 380, 195, 590], fill=skin_colour)  # legs
    p.rectangle([205, 380, 250, 590], fill=skin_colour)
    return worn, alone


@pytest.mark.parametrize("skin_colour", [(224, 172, 140), (141, 85, 60), (240, 200, 170)])
def test_the_person_wearing_a_product_is_painted_out(skin_colour) -> None:
    worn, alone = _worn((40, 60, 160), skin_colour)
    garment = preprocess(alone).image > 60
    got = preprocess(worn).image > 60
    assert (got & garment).sum() / (got | garment).sum() > 0.85
    kept = preprocess(worn, PreprocessConfig(skin=False)).image > 60  # without: a stick figure
    assert (kept & garment).sum() / (kept | garment).sum() < 0.6


def test_a_skin_coloured_garment_is_not_painted_out() -> None:
    alone = _worn((225, 175, 140), (224, 172, 140))[1]  # a beige shirt, no person
    assert np.array_equal(preprocess(alone).image,
                          preprocess(alone, PreprocessConfig(skin=False)).image)


@pytest.mark.parametrize("colour", [(200, 40, 40), (230, 120, 90), (235, 190, 180)])
def test_a_red_pink_or_pale_article_is_no_person(colour) -> None:
    """Its pale parts and its edges blended into a white backdrop are skin-coloured, but lie
    within the article: nothing may be painted out."""
    from PIL import ImageDraw, ImageFilter

    alone = _worn(colour, (224, 172, 140))[1].filter(ImageFilter.GaussianBlur(8))
    ImageDraw.Draw(alone).line([(140, 170), (140, 380), (260, 380), (260, 170)],
                               fill=(90, 30, 30), width=6)  # darker seams
    assert np.array_equal(preprocess(alone).image,
                          preprocess(alone, PreprocessConfig(skin=False)).image)


def test_fine_stripes_checks_and_photos_are_not_noise() -> None:
    """Stripes and checks one pixel wide (opposite neighbours, alike two pixels on, whatever
    the shrink to the measuring copy leaves of them) and the sample photos are far above the
    bar; noise is far below it."""
    stripes = np.tile(np.array([[0], [255]], np.uint8), (100, 300))
    checks = (np.indices((200, 200)).sum(0) % 2 * 255).astype(np.uint8)
    for pattern in (stripes, checks, stripes[:64, :64], checks[:64, :64]):
        assert likeness(Image.fromarray(pattern)) > 2 * NOISE_LIKENESS, pattern.shape
    for path in sorted(SAMPLES.glob("*.jpg")):
        assert likeness(Image.open(path)) > 2 * NOISE_LIKENESS, path
    noise = np.random.default_rng(3).integers(0, 256, (300, 300), dtype=np.uint8)
    assert likeness(Image.fromarray(noise)) < NOISE_LIKENESS / 2


def test_nothing_to_find_in_blank_noisy_and_thin_pictures() -> None:
    """`nothing_to_find` of a photo, noise, one colour, a strip and a dataset-form image (which
    is never taken for noise), as `preprocess` decodes them."""
    rng = np.random.default_rng(4)
    pictures = [Image.open(sorted(SAMPLES.glob("*.jpg"))[0]),
                Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)),
                Image.new("RGB", (50, 40), (200, 10, 10)),
                Image.fromarray(rng.integers(0, 256, (3, 200, 3), dtype=np.uint8)),
                Image.fromarray(synthetic_article(3))]
    decoded = [preprocess(im) for im in pictures]
    assert [nothing_to_find(p.original, p.dataset_form) for p in decoded] == \
        [False, True, True, True, False]


def test_one_colour_reads_every_pixel_when_the_probes_agree() -> None:
    """A picture whose probed pixels (corners, edge midpoints, centre) all agree is one colour
    only if every other pixel agrees too: one pixel off the probes is enough to say no."""
    blank = Image.new("RGB", (41, 30), (200, 10, 10))
    speck = blank.copy()
    speck.putpixel((7, 11), (200, 10, 11))
    grey = Image.new("L", (9, 9), 128)
    assert one_colour(blank) and one_colour(grey)
    assert not one_colour(speck)
    assert not one_colour(Image.open(sorted(SAMPLES.glob("*.jpg"))[0]))


def test_colour_spread_is_low_on_one_surface_and_high_on_a_garment_over_it() -> None:
    """An even beige picture varies by about nothing, a floor's grain and light a little, a
    dark garment over half of it a lot; a picture with nothing to find in it has 0."""
    ys, xs = np.mgrid[:300, :400].astype(np.float64)
    level = 190 + 6 * np.sin(xs / 7) - 15 * ys / 300
    floor = np.stack([level, level * 0.92, level * 0.78], -1)
    covered = floor.copy()
    covered[:, :200] = (30, 40, 110)
    spreads = [colour_spread(Image.fromarray(x.clip(0, 255).astype(np.uint8)))
               for x in (floor, covered)]
    assert colour_spread(Image.new("RGB", (400, 300), (200, 180, 150))) == 0.0
    assert 0 < spreads[0] < 8 < 20 < spreads[1], spreads
