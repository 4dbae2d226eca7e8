"""Any picture -> the 28x28 image the model was trained on.

Two stages, both used by `fashion-cnn predict`, the app and any export:

1. `decode_image`: bytes or a file -> an RGB Pillow image. Every mode (RGBA and LA composited on
   white, palette, 16-bit, CMYK, 1-bit), EXIF orientation applied, the first frame of an
   animation, and a pixel cap checked from the header before anything is decoded.
2. `to_dataset_form`: make the picture look like the training data. An image already in dataset
   form (28x28, dark background) is left untouched. A product photo on a plain background gets
   the Fashion-MNIST authors' own conversion (trim the background-coloured edges, fit the
   longest side to 28, [sharpen,] centre, negate, grayscale). Any other photo (a garment on a
   floor, a bed, a hanger against a wall: the trim cannot find its edges there) gets the
   garment cut out by GrabCut, seeded with the picture's border as background (`foreground`),
   put on black as a bright silhouette and area-averaged down to 28 px. Where part of the
   border is unlike the rest (a garment reaching the picture's edge) a second cut-out leaves
   that part to GrabCut (`edge_cut_out`); `predict` answers from it when the model is surer.

The settings are a `PreprocessConfig`, saved in every checkpoint and read back by the
`predict.Classifier` that loads it.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from .data import IMAGE_SIZE
from .errors import FashionCNNError
from .formats import pillow_formats, readable_names, register_phone_formats, signature

MAX_PIXELS = 40_000_000  # 40 megapixels as decoded (a JPEG at up to 1/8 scale): larger
# pictures are refused before decoding
FIRST_FRAME = "An animation or a file of several pages: only the first frame was classified."
ANIMATED = ("GIF", "PNG", "WEBP", "TIFF")  # formats whose frames are pictures in a sequence
MAX_FILE_BYTES = 256 * 2**20  # no picture file is bigger (40 MP as uncompressed 16-bit TIFF:
# 240 MB); a bigger one (a video, /dev/zero) is refused before it fills the memory


class ImageError(FashionCNNError):
    """A picture that cannot be classified (empty, not an image, truncated, too large)."""


@dataclass(frozen=True)
class PreprocessConfig:
    """How a picture becomes a 28x28 model input. Saved with the model."""

    size: int = IMAGE_SIZE
    trim_fuzz: float = 0.05  # authors: trim edges within 5% of max RGB distance of the corners
    resample: str = "subsample"  # authors' "subsample" (nearest pixel) or "area" (box average)
    sharpen: bool = False  # authors: Gaussian sharpen, radius and sigma 1.0. Off: on photo-style
    # validation images it measured worse (docs/design.md)
    black_background: bool = True  # after negation, map the background level to 0 (as in data)
    max_pixels: int = MAX_PIXELS
    work_size: int = 256  # pictures are reduced to about this many pixels across before the
    # conversion (JPEGs decode at 1/2..1/8 scale directly): 9x the output is plenty, and it
    # makes a 1-megapixel photo several times faster. 0 keeps full size.
    denoise: bool = True  # find the article's edges on a block-averaged copy (noise, JPEG)
    stretch: bool = True  # scale so the brightest pixel is 255: every training image has its
    # maximum at 240-255, so a pale (yellow, pastel, grey) article would otherwise look faint
    # "auto": photos on a plain background get the authors' conversion, others have the
    # garment cut out (GrabCut); "cutout": every photo is cut out; "trim": the authors'
    # conversion for every photo (as before the real-photo work).
    foreground: str = "auto"
    fg_size: int = 96  # GrabCut runs on a copy about this many pixels on its long side
    fg_iterations: int = 4  # GrabCut's rounds; the first costs about twice each later one.
    # The default model's checkpoint holds 2, as good and faster (docs/design.md)
    fg_border: float = 0.04  # the band along the border taken as background, share of the side
    fg_seed_near: float = 0.0  # GrabCut starts the pixels inside the band whose colour is
    # closer than this to the band's median (OpenCV's 8-bit Lab) as probable background, the
    # rest as probable garment; 0: all as probable garment (docs/design.md)
    fg_low: int = 90  # the garment's darkest level in the silhouette (0..255; background is 0)
    skin: bool = True  # product photos: paint out the person wearing the article (skin, hair)
    plain_spread: float = 4.0  # "auto": a border whose grey levels vary more than this (std,
    # 0..255) is no studio backdrop and gets the cut-out: the sample product photos have 0, the
    # hard synthetic set's backdrops (5-20% uneven light, paper, fabric, wood) 5 or more
    fg_edge: float = 40.0  # cut-outs: a second one (`edge_cut_out`) in which the border's
    # segments further than this from its median colour (OpenCV's 8-bit Lab) are not taken as
    # background, for a garment that reaches the picture's edge; 0: none
    fg_edge_margin: float = 0.1  # `predict` answers from the second cut-out when its top
    # probability beats the first's by more than this

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PreprocessConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})

    @classmethod
    def problems(cls, d: dict[str, Any], prefix: str = "") -> list[str]:
        """What is wrong with saved settings `d` (`setting_problem`), each named `prefix` +
        its name. Names this version does not know are a newer one's: `from_dict` skips them."""
        found = (setting_problem(prefix + f.name, d[f.name], f.default,
                                 *SETTING_RANGES.get(f.name, (None, None)),
                                 choices=SETTING_CHOICES.get(f.name, ()))
                 for f in fields(cls) if f.name in d)
        return [problem for problem in found if problem]


# What a saved PreprocessConfig setting may hold beyond its type (checkpoints are checked when
# loaded, so a damaged one fails in one message rather than deep inside a picture's conversion)
SETTING_RANGES: dict[str, tuple[float | None, float | None]] = {  # (lowest, highest); None: any
    "size": (IMAGE_SIZE, IMAGE_SIZE),  # the model's input: no other size fits it
    "trim_fuzz": (0, 1), "max_pixels": (1, None), "work_size": (0, None), "fg_size": (1, None),
    "fg_iterations": (1, None), "fg_border": (0, 0.5), "fg_seed_near": (0, None),
    "fg_low": (0, 255), "plain_spread": (0, None), "fg_edge": (0, None), "fg_edge_margin": (0, 1)}
SETTING_CHOICES = {"resample": ("subsample", "area"), "foreground": ("auto", "cutout", "trim")}
MISSING = object()  # `setting_problem`'s value for a setting the file does not hold


def setting_problem(name: str, value: Any, default: Any, low: float | None = None,
                    high: float | None = None, choices: tuple[str, ...] = ()) -> str | None:
    """Why a saved setting cannot be used ("its setting size holds 'abc' where it should be
    28"), or None when it can: a value of its default's type (a float setting takes an int too;
    bool only bool, so 1 is no True), finite, within low..high, one of `choices` if any."""
    wanted = setting_wanted(default, low, high, choices)
    if value is MISSING:
        return f"its setting {name} is missing (it should be {wanted})"
    if isinstance(default, bool) or isinstance(value, bool):
        fits = isinstance(value, bool) and isinstance(default, bool)
    elif isinstance(default, float):
        fits = isinstance(value, (int, float)) and math.isfinite(value)
    else:
        fits = isinstance(value, type(default))
    if fits and isinstance(value, (int, float)):
        fits = (low is None or value >= low) and (high is None or value <= high)
    if fits and choices:
        fits = value in choices
    if fits:
        return None
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"its setting {name} holds {shown} where it should be {wanted}"


def setting_wanted(default: Any, low: float | None, high: float | None,
                   choices: tuple[str, ...]) -> str:
    """In words, what `setting_problem` accepts: "a number from 0 to 1", "true or false"."""
    if choices:
        return "one of " + ", ".join(repr(c) for c in choices)
    if low is not None and low == high:
        return str(low)
    kind = {bool: "true or false", int: "a whole number", float: "a number"}.get(
        type(default), "text")
    if low is not None and high is not None:
        return f"{kind} from {low} to {high}"
    if low is not None:
        return f"{kind}, {low} or more"
    return kind


@dataclass
class Preprocessed:
    """A decoded picture and the model input made from it."""

    original: Image.Image  # RGB, EXIF-rotated, alpha composited on white
    image: np.ndarray  # uint8 [28, 28], white article on black
    dataset_form: bool  # True when the picture already was a Fashion-MNIST-style image
    warnings: list[str]
    edge_image: np.ndarray | None = None  # uint8 [28, 28]: the second cut-out (`fg_edge`), if
    # any; `predict` makes it `image` when the model is surer of it


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_image(source: bytes | str | Path | BinaryIO, max_pixels: int = MAX_PIXELS,
                 work_size: int = 0) -> Image.Image:
    """Read a picture into an RGB image; raises ImageError with a message fit for the user
    (what is wrong and what to do; the caller adds which picture it was)."""
    register_phone_formats()  # HEIC/HEIF and AVIF from phones, when installed
    if isinstance(source, (str, Path)):
        try:
            with open(source, "rb") as file:
                source = file.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise ImageError(f"cannot read the file ({err.strerror}).") from None
    data = read_source(source)
    if not data:
        raise ImageError("the file is empty (0 bytes).")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"the file is over {MAX_FILE_BYTES >> 20} MB, more than any picture "
                         "this tool reads; is it a picture? Downscale it first if so.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's about this file (bomb size, corrupt
            # EXIF): the picture is refused or read, and either way said so in one message
            img = Image.open(io.BytesIO(data), formats=pillow_formats())  # the header only
            width, height = img.size
            # animations and multi-page files; a phone JPEG's extra pictures (MPO: depth, gain
            # maps) and HEIC's are not frames of what was photographed
            frames = getattr(img, "n_frames", 1) if img.format in ANIMATED else 1
            if work_size and img.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale, so a
                img.draft(None, (work_size, work_size))  # 48-MP phone photo decodes as 0.75
            if img.size[0] * img.size[1] > max_pixels:
                raise ImageError(
                    f"the picture is {width}x{height} ({width * height / 1e6:.0f} "
                    f"megapixels), over the {max_pixels / 1e6:.0f}-megapixel limit. "
                    "Downscale it first; the model only needs a few hundred pixels across.")
            img.seek(0)  # animations: the first frame
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # (in place: a 12-MP picture is not
            # copied; one that needs no turning is left as it is)
    except ImageError:
        raise
    except UnidentifiedImageError:
        fmt = signature(data)  # a damaged picture, or one whose plugin is missing?
        plugin = {"HEIC": "HEIF", "HEIF": "HEIF", "AVIF": "AVIF"}.get(fmt or "")
        if fmt is not None and (plugin is None or plugin in register_phone_formats()):
            raise ImageError(f"the {fmt} file is truncated or corrupt; re-save or re-download "
                             "it.") from None
        raise ImageError(f"not an image this tool can read; use a {readable_names()} file."
                         ) from None
    except Image.DecompressionBombError as err:  # Pillow's own cap fired while opening
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(pixels[1]) / 1e6:.0f} megapixels" if pixels else "far too many pixels"
        raise ImageError(f"the picture has {size}, over the {max_pixels / 1e6:.0f}-"
                         "megapixel limit (a decompression bomb?). Downscale it first."
                         ) from None
    except MemoryError:
        raise ImageError("not enough memory to decode the picture; downscale it first."
                         ) from None
    except Exception as err:  # Pillow's decoders fail on corrupt data in many ways (OSError,
        # SyntaxError, ValueError, EOFError; a damaged TIFF page: TypeError)
        detail = str(err)[:80] or type(err).__name__
        raise ImageError(f"the image is truncated or corrupt ({detail}); "
                         "re-save or re-download it.") from None
    img = reduce_to(to_rgb(img), work_size)
    img.info["frames"] = frames  # an animation or a multi-page TIFF: only the first is used
    return img


def read_source(source: bytes | bytearray | memoryview | BinaryIO) -> bytes:
    """The bytes of a picture given as bytes or a file opened in binary mode (at most one byte
    over MAX_FILE_BYTES); a TypeError for anything else, which is a programming mistake."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    text = isinstance(source, io.TextIOBase)
    data = source.read(MAX_FILE_BYTES + 1) if hasattr(source, "read") and not text else None
    if not isinstance(data, bytes):
        hint = (" (Image.fromarray(array) makes one of a numpy array)"
                if isinstance(source, np.ndarray) else "")
        what = ("a file opened in text mode; open it with 'rb'" if text
                else type(source).__name__)
        raise TypeError(f"A picture is bytes, a path, a file opened in binary mode or a Pillow "
                        f"image{hint}, not {what}.")
    return data


def reduce_to(img: Image.Image, work_size: int) -> Image.Image:
    """Shrink by an integer factor (box average) while the result stays >= work_size across."""
    factor = min(img.size) // work_size if work_size else 0
    return img.reduce(factor) if factor >= 2 else img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited on white, 16/32-bit scaled to 8-bit.
    An RGB picture is returned as it is (Pillow's convert would copy it)."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" or img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":  # 16-bit PNG/TIFF, 32-bit int or float
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        if img.mode == "F" and a.max() <= 1.0:
            top = 1.0
        img = Image.fromarray(np.clip(a * (255.0 / top), 0, 255).round().astype(np.uint8))
    return img.convert("RGB")


# ---------------------------------------------------------------------------------------------
# The dataset authors' conversion


def is_dataset_form(img: Image.Image) -> bool:
    """A 28x28 grayscale picture with a dark border: already a Fashion-MNIST-style image."""
    if img.size != (IMAGE_SIZE, IMAGE_SIZE):
        return False
    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    if np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max() > 8:  # has colour
        return False
    gray = rgb[..., 0]
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(np.median(border)) < 32


def background_colour(rgb: np.ndarray) -> np.ndarray:
    """Median of the four corner pixels, float [3]: the colour the authors' trim removes."""
    corners = rgb[[0, 0, -1, -1], [0, -1, 0, -1]]
    return np.median(corners.astype(np.float32), axis=0)


@dataclass
class Layout:
    """Where the article is in a picture, and what surrounds it."""

    background: np.ndarray  # float [3], RGB
    box: tuple[int, int, int, int] | None  # (left, top, right, bottom); None: nothing found
    busy_border: bool  # much of the border differs from the background colour
    border_spread: float = 0.0  # std of the border's grey levels (0..255): a studio backdrop
    # is even (a few levels of noise), a room, a sheet or unevenly lit paper is not


MIN_STRETCH_PEAK = 24  # below this the picture is blank: stretching would only amplify noise
ANALYSIS_SIZE = 96  # the trim is measured on a copy about this many pixels across


def content_mask(rgb: np.ndarray, background: np.ndarray, fuzz: float) -> np.ndarray:
    """bool [H, W]: the pixels of RGB [H, W, 3] further from the background colour than `fuzz`
    of the largest RGB distance (the authors' trim rule: 5%)."""
    limit = (fuzz * np.sqrt(3) * 255) ** 2
    d = rgb.astype(np.int32) - background.round().astype(np.int32)
    d *= d
    return d[..., 0] + d[..., 1] + d[..., 2] > limit  # not .sum(2): slow over a 3-long axis


def analyse(img: Image.Image, config: PreprocessConfig = PreprocessConfig()) -> Layout:
    """Find the background colour and the article's bounding box (the authors' trim).

    Measured on a copy shrunk by an integer factor (block averages): fast on big pictures and
    blind to lone noisy pixels and JPEG ringing; the box is mapped back to full size.
    """
    factor = max(1, min(img.size) // ANALYSIS_SIZE) if config.denoise else 1
    small = img.reduce(factor) if factor > 1 else img
    rgb = np.asarray(small.convert("RGB"), dtype=np.int32)
    bg = background_colour(rgb)
    content = content_mask(rgb, bg, config.trim_fuzz)
    border = np.concatenate([content[0], content[-1], content[:, 0], content[:, -1]])
    rows, cols = np.flatnonzero(content.any(1)), np.flatnonzero(content.any(0))
    box = None
    if len(rows):
        box = (int(cols[0]) * factor, int(rows[0]) * factor,
               min(img.width, (int(cols[-1]) + 1) * factor),
               min(img.height, (int(rows[-1]) + 1) * factor))
    grey = np.asarray(small.convert("L"), dtype=np.float32)
    edge = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return Layout(background=bg, box=box, busy_border=bool(border.mean() > 0.25),
                  border_spread=float(edge.std()))


def to_dataset_form(img: Image.Image, config: PreprocessConfig = PreprocessConfig(),
                    layout: Layout | None = None) -> np.ndarray:
    """RGB picture -> uint8 [28, 28], white article on black, as the training images are."""
    if is_dataset_form(img):
        return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    return convert(img, config, layout)[0]


def convert(img: Image.Image, config: PreprocessConfig = PreprocessConfig(),
            layout: Layout | None = None) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """A picture not in dataset form -> (uint8 [28, 28] model input, warnings about it, the
    second cut-out or None): the garment cut out, or the authors' conversion of a product photo
    (`cuts_out`)."""
    layout = layout or analyse(img, config)
    if cuts_out(img, config, layout):
        if config.skin and is_plain(img, layout, config):  # "cutout" on a shop photo: the
            img = without_person(img, config, layout) or img  # person wearing it goes first
        # The two cut-outs are independent GrabCuts: the second runs on another core meanwhile
        img.load()  # (both read the pixels; loaded once, here, not by two threads at once)
        edge = started(edge_cut_out, img, config) if config.fg_edge > 0 else lambda: None
        image, apart = cut_out(img, config)
        return image, separation_warnings(apart), edge()
    return authors_conversion(img, config, layout), photo_warnings(img, config, layout), None


T = TypeVar("T")
SIDE_THREAD = True  # speed flag: `started` runs work beside the caller (predict_speed.json's
# `flags` compares the real photos with it off); the pixels are the same either way
_SIDE_WORKERS: dict[int, ThreadPoolExecutor] = {}  # one thread per process id (a forked child
# inherits the parent's executor without its thread, so it makes its own)


def cores() -> int:
    """The CPU cores this process may run on: its affinity where the OS tells (a container's
    CPU set), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def started(fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    """Start fn(*args) on a side thread where the machine has a second core, and return what
    waits for its result (re-raising its error). GrabCut, Pillow and numpy release the GIL, so
    the side thread's work and the caller's run at once; with one core (or SIDE_THREAD off), fn
    runs here first."""
    if not SIDE_THREAD or cores() < 2:
        result = fn(*args)
        return lambda: result
    worker = _SIDE_WORKERS.get(os.getpid()) or _SIDE_WORKERS.setdefault(
        os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="fashion-cnn-cut-out"))
    return worker.submit(fn, *args).result


def cuts_out(img: Image.Image, config: PreprocessConfig, layout: Layout) -> bool:
    """Whether this photo has its garment cut out (else: the authors' conversion)."""
    return config.foreground == "cutout" or (config.foreground == "auto"
                                             and not is_plain(img, layout, config))


def is_plain(img: Image.Image, layout: Layout,
             config: PreprocessConfig = PreprocessConfig()) -> bool:
    """A product photo: an even, plain border, and the trim found an article that leaves a
    margin."""
    return (not layout.busy_border and layout.border_spread <= config.plain_spread
            and layout.box is not None and layout.box != (0, 0, img.width, img.height))


MIN_EXTENT = 0.1  # an article spanning less of the picture's width and height than this is a
# speck, not a garment: its model input stays black ("no garment found"). On every real photo
# of clothing-dataset-small and sample (3,439) the article spans at least 0.21 (cut out) and
# 0.78 (product photos); the synthetic photo sets draw it at 0.38 or more.


def authors_conversion(img: Image.Image, config: PreprocessConfig, layout: Layout) -> np.ndarray:
    """The Fashion-MNIST authors' conversion of a product photo on a plain background (a
    person wearing the article is first painted out: `without_person`); black for a speck
    (MIN_EXTENT), which enlarged to 28 px would look like any garment."""
    size = config.size
    if layout.box is not None and max((layout.box[2] - layout.box[0]) / img.width,
                                      (layout.box[3] - layout.box[1]) / img.height) < MIN_EXTENT:
        return np.zeros((size, size), np.uint8)
    if config.skin:
        worn = without_person(img, config, layout)
        if worn is not None:
            img, layout = worn, analyse(worn, config)
    bg = layout.background
    if layout.box is not None:
        img = img.crop(layout.box)
    # Fit the longest side to `size`, keeping the aspect ratio.
    scale = size / max(img.size)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    method = Image.Resampling.NEAREST if config.resample == "subsample" else Image.Resampling.BOX
    img = img.resize(new, method)
    if config.sharpen:
        img = img.filter(ImageFilter.UnsharpMask(radius=1.0, percent=100, threshold=0))
    canvas = Image.new("RGB", (size, size), tuple(int(c) for c in bg.round()))
    canvas.paste(img, ((size - new[0]) // 2, (size - new[1]) // 2))
    gray = np.asarray(canvas.convert("L"), dtype=np.float32)
    bg_level = float(0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2])
    if bg_level >= 128:  # the usual light background: negate, as the authors did
        gray, bg_level = 255.0 - gray, 255.0 - bg_level
    if config.black_background and bg_level > 0:
        gray = (gray - bg_level) * (255.0 / (255.0 - bg_level))  # background -> 0, keep 255
    gray = np.clip(gray, 0, 255)
    if config.stretch and gray.max() >= MIN_STRETCH_PEAK:
        gray = gray * (255.0 / gray.max())
    return gray.round().astype(np.uint8)


def photo_warnings(img: Image.Image, config: PreprocessConfig = PreprocessConfig(),
                   layout: Layout | None = None) -> list[str]:
    """Hints that a picture is unlike a product photo (busy background, article fills it all)."""
    if is_dataset_form(img):
        return []
    layout = layout or analyse(img, config)
    if layout.busy_border:
        return ["The background is not plain. Works best with one article on a plain, "
                "light background, like a shop's product photo."]
    if layout.box == (0, 0, img.width, img.height):
        return ["The article touches every edge of the picture. Leave some plain "
                "background around it."]
    return []


def preprocess(source: bytes | str | Path | BinaryIO | Image.Image,
               config: PreprocessConfig = PreprocessConfig()) -> Preprocessed:
    """Decode (unless already an image) and convert; raises ImageError for unusable input."""
    if isinstance(source, Image.Image):
        if 0 in source.size:  # only a Pillow image made in code can have no pixels
            raise ImageError(f"the picture has no pixels ({source.width}x{source.height}).")
        img = reduce_to(to_rgb(source), config.work_size)
    else:
        img = decode_image(source, config.max_pixels, config.work_size)
    first = [FIRST_FRAME] if img.info.get("frames", 1) > 1 else []
    if is_dataset_form(img):
        return Preprocessed(original=img, image=to_dataset_form(img, config), dataset_form=True,
                            warnings=first)
    image, warnings, edge_image = convert(img, config)
    return Preprocessed(original=img, image=image, dataset_form=False,
                        warnings=first + warnings, edge_image=edge_image)


def model_input(source: bytes | str | Path | BinaryIO | Image.Image,
                config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """uint8 [28, 28]: `preprocess(source, config).image` without the second cut-out, which
    only `predict` uses (the model chooses between the two): what the training photos and the
    benchmarks' fixed inputs are made of."""
    return preprocess(source, replace(config, fg_edge=0.0)).image


# ---------------------------------------------------------------------------------------------
# Pictures with nothing to classify (`predict` answers them "no garment found")

MIN_SIDE = 8  # a picture narrower than this (a dot, a thin strip) cannot show an article
# Noise: a picture whose neighbouring pixels are no more alike than this (`likeness`) is random
# noise. Every real photo of clothing-dataset-small (train and validation, 3,409) has 0.45 or
# more, random noise under 0.1 whatever its size or encoding.
NOISE_LIKENESS = 0.2
NOISE_SIDE = 128  # px: likeness is measured on a copy this size (noise stays noise)


def nothing_to_find(img: Image.Image, dataset_form: bool = False) -> bool:
    """True for a picture that cannot show a garment: a dot, a thin strip, one colour, or
    (unless it is a dataset-form image) random noise."""
    if min(img.size) < MIN_SIDE:
        return True
    if one_colour(img):
        return True
    return not dataset_form and likeness(img) < NOISE_LIKENESS


def one_colour(img: Image.Image) -> bool:
    """Whether every pixel has the same colour. Nine probes (corners, edge midpoints, centre)
    answer no for nearly every picture at once; only when they agree is every pixel read."""
    w, h = img.size
    probes = {img.getpixel((x, y)) for x in (0, w // 2, w - 1) for y in (0, h // 2, h - 1)}
    if len(probes) > 1:
        return False
    extrema = img.getextrema()  # (low, high) per band; one band: just (low, high)
    return all(low == high for low, high in (extrema if len(img.getbands()) > 1 else [extrema]))


def likeness(img: Image.Image) -> float:
    """How alike a picture's neighbouring pixels are: the largest |correlation| of its grey
    levels with themselves moved 1 or 2 pixels across or down, on a copy at most NOISE_SIDE
    px. A photo's neighbours are alike (the lens blurs); fine stripes and checks are alike at
    one of these moves, or opposite (-1); random noise is neither."""
    small = img.convert("L")
    small.thumbnail((NOISE_SIDE, NOISE_SIDE), Image.Resampling.BOX)
    grey = np.asarray(small, np.float32)
    best = 0.0
    for lag in (1, 2):
        for a, b in ((grey[:, :-lag], grey[:, lag:]), (grey[:-lag], grey[lag:])):
            if a.size == 0:  # a strip 1 or 2 px thin on the measuring copy: no such move
                continue
            a, b = a - a.mean(), b - b.mean()
            spread = float(np.sqrt((a * a).mean() * (b * b).mean()))
            best = max(best, 1.0 if spread == 0 else abs(float((a * b).mean())) / spread)
    return best


# ---------------------------------------------------------------------------------------------
# Photos that are not on a plain background: cut the garment out


def foreground(rgb: np.ndarray, border: float, iterations: int = 4,
               seed_near: float = 0.0) -> np.ndarray | None:
    """bool [H, W]: the garment in a small RGB picture uint8 [H, W, 3], by GrabCut seeded with
    a band along the border as background and the rest as probable foreground (or, with
    `seed_near`, as probable background where its colour is that near the band's); the largest
    region (and regions at least 15% its size, e.g. the second shoe of a pair), holes filled.
    Where the garment fills the border band too, GrabCut finds nothing: a thin band is tried;
    None if that finds nothing either."""
    import cv2  # imported here: only photos need it

    lab = to_lab(rgb) if seed_near > 0 else None
    for band in (max(1, round(border * max(rgb.shape[:2]))), 1):
        mask = np.full(rgb.shape[:2], cv2.GC_PR_FGD, np.uint8)
        mask[:band], mask[-band:], mask[:, :band], mask[:, -band:] = (cv2.GC_BGD,) * 4
        if lab is not None:  # a start nearer the answer: GrabCut's rounds settle sooner
            backdrop = np.median(lab[mask == cv2.GC_BGD], 0)
            near = np.linalg.norm(lab - backdrop, axis=2) < seed_near
            mask[near & (mask == cv2.GC_PR_FGD)] = cv2.GC_PR_BGD
        found = grab_cut(rgb, mask, iterations)
        if found is not None:
            return found
    return None


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> OpenCV's 8-bit Lab (each 0..255) as float32 [H, W, 3]: the
    colours that the cut-outs' distances and spreads are measured in."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).astype(np.float32)


def grab_cut(rgb: np.ndarray, seeds: np.ndarray, iterations: int) -> np.ndarray | None:
    """GrabCut on RGB uint8 [H, W, 3] from `seeds` (OpenCV's GC_* labels uint8 [H, W]): the
    garment bool [H, W] (`_main_regions`), or None when under 3% of the picture is found."""
    import cv2

    models = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)  # GrabCut's k-means start: the same picture gives the same mask
    cv2.grabCut(np.ascontiguousarray(rgb[..., ::-1]), seeds, None, *models, iterations,
                cv2.GC_INIT_WITH_MASK)
    found = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.uint8)
    return _main_regions(found, cv2) if found.mean() >= 0.03 else None


EDGE_SEGMENTS = 8  # each side of the border band is cut into this many segments
EDGE_ITERATIONS = 1  # GrabCut's rounds for the second cut-out: as good as 4 on the photos


def edge_foreground(rgb: np.ndarray, border: float, far: float,
                    iterations: int = EDGE_ITERATIONS) -> np.ndarray | None:
    """bool [H, W]: `foreground` for a garment that reaches the picture's edge. Its colour
    fills part of the border band, which `foreground` takes as background, so GrabCut keeps
    only what stands out from the garment (a print, a bow). Here the band is cut into
    EDGE_SEGMENTS segments a side, and those whose median colour is further than `far` (Lab)
    from the median of all segments' are left to GrabCut. None when no segment is that far,
    when over half are (no background colour to trust), or when nothing is found."""
    import cv2

    h, w = rgb.shape[:2]
    band, n = max(1, round(border * max(h, w))), EDGE_SEGMENTS
    lab = to_lab(rgb)
    segments = []
    for k in range(n):
        across, down = slice(k * w // n, (k + 1) * w // n), slice(k * h // n, (k + 1) * h // n)
        segments += [(slice(0, band), across), (slice(h - band, h), across),
                     (down, slice(0, band)), (down, slice(w - band, w))]
    colours = np.array([np.median(lab[s].reshape(-1, 3), 0) for s in segments])
    apart = np.linalg.norm(colours - np.median(colours, 0), axis=1) > far
    if not apart.any() or apart.mean() > 0.5:
        return None
    seeds = np.full((h, w), cv2.GC_PR_FGD, np.uint8)
    for segment, left_to_grab_cut in zip(segments, apart, strict=True):
        if not left_to_grab_cut:
            seeds[segment] = cv2.GC_BGD
    return grab_cut(rgb, seeds, iterations)


def _main_regions(found: np.ndarray, cv2: Any, keep_share: float = 0.15) -> np.ndarray:
    """The largest connected region of a 0/1 mask and those at least `keep_share` its size,
    holes filled (a pattern or a logo inside a garment is still the garment)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    area[0] = 0  # label 0: the background
    keep = area >= keep_share * area.max()
    mask = keep[labels].astype(np.uint8)
    outside = np.pad(1 - mask, 1, constant_values=1)  # flood the background from the edge
    cv2.floodFill(outside, None, (0, 0), 2)
    return (outside[1:-1, 1:-1] != 2)


MIN_SEPARATION = 0.4  # garment and background colours closer than this (in units of their
# spread) were not really told apart: the picture gets UNSEPARATED as a warning
UNSEPARATED = ("Could not tell a garment from the background. Works best with one garment, "
               "whole, against a floor, bed, wall or plain background.")
WHOLE_FRAME = ("Nothing stood out from the picture's edges, so the whole picture was "
               "classified. Works best with one garment, whole, against a floor, bed, wall or "
               "plain background.")  # `cut_out`'s separation 0


def separation_warnings(apart: float | None) -> list[str]:
    """The warning a cut-out's `separation` calls for, if any."""
    if apart == 0.0:  # nothing stood out from the border: the whole picture was classified
        return [WHOLE_FRAME]
    if apart is not None and apart < MIN_SEPARATION:
        return [UNSEPARATED]
    return []  # told apart, or the garment fills the picture (None)


def separation(rgb: np.ndarray, mask: np.ndarray) -> float | None:
    """How far apart the garment's and the background's mean colours are, in units of their
    pooled spread; None when the garment fills the picture."""
    inside, outside = rgb[mask].astype(np.float64), rgb[~mask].astype(np.float64)
    if len(outside) < 0.02 * mask.size or len(inside) < 2:
        return None
    spread = np.sqrt((inside.var(0).sum() + outside.var(0).sum()) / 2)
    return float(np.linalg.norm(inside.mean(0) - outside.mean(0)) / max(spread, 1.0))


def colour_spread(img: Image.Image, config: PreprocessConfig = PreprocessConfig()) -> float:
    """How much an RGB picture's colours vary: the mean standard deviation of its L, a and b
    (OpenCV's 8-bit Lab, 0..255) on the copy the cut-out works on (`small_copy`); 0 when
    there is nothing to find in it. An empty floor or wall varies little, a garment filling
    the frame (folds, seams, print, the floor at its edges) more (`predict.bare_surface`)."""
    small = small_copy(img, config)
    if small is None:
        return 0.0
    return float(to_lab(small[0]).reshape(-1, 3).std(0).mean())


def cut_out(img: Image.Image, config: PreprocessConfig) -> tuple[np.ndarray, float | None]:
    """RGB photo -> (uint8 [28, 28]: the garment (`foreground`) as a silhouette on black, and
    the garment's `separation` from its background: 0 when nothing stood out from the border,
    so the whole picture is the silhouette; None when the garment fills the picture).

    Inside the garment, the negated luminance (as the authors' conversion makes it) is
    stretched to fg_low..255, so a white shirt on a white bed and a black coat on a dark floor
    both come out as bright shapes with their inner detail, as training garments are; then
    area-averaged to fit 28 px (subsampling would turn checks and stripes into noise)."""
    found = find_garment(img, config)
    if found is None:
        return np.zeros((config.size, config.size), np.uint8), None
    lum, mask, apart = found
    return garment_image(lum, mask, config), apart


def find_garment(img: Image.Image, config: PreprocessConfig
                 ) -> tuple[np.ndarray, np.ndarray, float | None] | None:
    """On a copy of the photo fg_size px across: (its luminance float [h, w], the garment bool
    [h, w], the garment's `separation`); the whole copy with separation 0 when nothing stood
    out from the border; None when there is nothing to find (a thin strip, one colour)."""
    small = small_copy(img, config)
    if small is None:
        return None
    rgb, lum = small
    mask = foreground(rgb, config.fg_border, config.fg_iterations, config.fg_seed_near)
    if mask is None:  # nothing stood out from the border: take the whole picture, and say so
        return lum, np.ones(rgb.shape[:2], bool), 0.0
    return lum, mask, separation(rgb, mask)


def small_copy(img: Image.Image, config: PreprocessConfig
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """The photo fg_size px across, as RGB uint8 [h, w, 3] and luminance float [h, w]; None
    when there is nothing to find in it (a thin strip, one colour)."""
    small = img.copy()
    small.thumbnail((config.fg_size, config.fg_size), Image.Resampling.BOX)
    lum = np.asarray(small.convert("L"), dtype=np.float32)
    if min(small.size) < 8 or lum.std() < 2:
        return None
    return np.asarray(small), lum


def edge_cut_out(img: Image.Image, config: PreprocessConfig) -> np.ndarray | None:
    """`cut_out` with `edge_foreground`'s mask: uint8 [28, 28], or None when it finds no other
    garment."""
    small = small_copy(img, config)
    if small is None:
        return None
    rgb, lum = small
    mask = edge_foreground(rgb, config.fg_border, config.fg_edge)
    return None if mask is None else garment_image(lum, mask, config)


def garment_image(lum: np.ndarray, mask: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Luminance float [H, W] and the garment bool [H, W] (holding some) -> uint8 [size, size]:
    the garment's negated luminance stretched to fg_low..255 on black, area-averaged to fit."""
    box = bounding_box(mask)
    inside = mask[box].astype(np.float32)
    value = 255.0 - lum[box]
    low, high = np.percentile(value[mask[box]], [2, 98])
    value = config.fg_low + (255 - config.fg_low) * np.clip(
        (value - low) / max(high - low, 1.0), 0, 1)
    return fit_centred(value * inside, config.size)


def bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of a bool mask [H, W] that hold any of it (it must hold some)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def fit_centred(gray: np.ndarray, size: int) -> np.ndarray:
    """float [H, W] -> uint8 [size, size]: longest side to `size` by area averaging, centred
    on black."""
    h, w = gray.shape
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = np.asarray(Image.fromarray(gray.astype(np.float32)).resize(new, Image.Resampling.BOX))
    canvas = np.zeros((size, size), np.float32)
    top, left = (size - new[1]) // 2, (size - new[0]) // 2
    canvas[top:top + new[1], left:left + new[0]] = resized
    return np.clip(canvas, 0, 255).round().astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Shop photos of a person wearing the garment


def skin(rgb: np.ndarray) -> np.ndarray:
    """bool [H, W]: skin-coloured pixels of uint8 RGB [H, W, 3], by the YCrCb box of Chai and
    Ngan (1999): 133 <= Cr <= 173 and 77 <= Cb <= 127, not too dark."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr, cb = (r - y) * 0.713 + 128, (b - y) * 0.564 + 128
    return (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127) & (y > 50)


def without_person(img: Image.Image, config: PreprocessConfig,
                   layout: Layout) -> Image.Image | None:
    """A product photo with the person wearing the article painted in the background colour:
    the skin (face, neck, arms, legs), then whatever is left apart from the article (hair);
    None when there is no person (skin outside the article under 3% of the picture's content)
    or the article itself is skin-coloured (over three quarters of it).

    Only skin beyond the article's bounding box counts (a head above it, legs below, arms
    beside): a red, pink or orange article's pale parts, and its edges blended with a white
    backdrop, are skin-coloured too, but they lie within the box."""
    import cv2  # imported here: only photos need it

    rgb = np.asarray(img.convert("RGB"))
    bg = layout.background
    content = content_mask(rgb, bg, config.trim_fuzz)
    skinned = skin(rgb) & content
    area, skin_area = max(content.sum(), 1), skinned.sum()
    if skin_area > 0.75 * area or skin_area < 0.03 * area:  # skin-coloured article; too
        return None  # little skin for the limbs test below (most photos: no person, sooner)
    near = cv2.dilate(skinned.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    article = _main_regions((content & ~near).astype(np.uint8), cv2, keep_share=0.3)
    if article.sum() < 0.25 * area:  # the article is what the photo shows, not
        return None  # its darker seams or outline: a pale article, no person
    rows, cols = np.flatnonzero(article.any(1)), np.flatnonzero(article.any(0))
    reach = max(2, round(0.03 * max(rgb.shape[:2])))  # blended edges: a few pixels wide
    beyond = np.ones_like(article)
    beyond[max(0, rows[0] - reach):rows[-1] + reach + 1,
           max(0, cols[0] - reach):cols[-1] + reach + 1] = False
    body = max(3, round(0.04 * max(rgb.shape[:2])))  # a face, neck, arm or leg is thicker
    # than this; a bag's handle or a sandal's strap is not
    limbs = cv2.morphologyEx((skinned & beyond).astype(np.uint8), cv2.MORPH_OPEN,
                             np.ones((body, body), np.uint8))
    if limbs.sum() < 0.03 * area:
        return None
    out = rgb.copy()
    out[~article] = bg.round().astype(np.uint8)
    return Image.fromarray(out)
