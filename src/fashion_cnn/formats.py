"""Phone-camera picture formats: HEIC/HEIF (iPhones) and AVIF, read through Pillow.

Pillow reads AVIF itself since 11.3 (its wheels bundle libavif); HEIC/HEIF needs the
`pillow-heif` plugin. Both are dependencies of fashion-cnn, but a hand-made environment may
lack them: then `register_phone_formats()` registers what it can and `missing_note()` tells the
user what to install, instead of a bare "not an image this tool can read".
"""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import Image, features

PHONE_SUFFIXES = {".heic": "HEIF", ".heif": "HEIF", ".avif": "AVIF"}
# every picture file `predict` picks from a folder and the app takes as an upload
PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff",
                    *PHONE_SUFFIXES)
# Pillow's names of the formats decoded (its JPEG opener also reads a phone's MPO). Any other
# format Pillow knows (EPS through Ghostscript, ICO, PPM, ...) is "not an image this tool can
# read", as its suffix already is when a folder is listed.
PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")
INSTALL_HINTS = {
    "HEIF": "HEIC/HEIF pictures need the pillow-heif package: pip install pillow-heif.",
    "AVIF": "AVIF pictures need Pillow 11.3 or newer (pip install -U pillow) or "
            "pip install pillow-avif-plugin.",
}


@functools.cache  # idempotent and cheap to call before every decode
def register_phone_formats() -> frozenset[str]:
    """Teach Pillow to open HEIC/HEIF and AVIF; returns the formats it can now read.

    A missing plugin is not an error: those pictures then fail to decode like any unknown
    file, and `missing_note` explains why.
    """
    readable = set()
    if _register_heif():
        readable.add("HEIF")
    if _register_avif():
        readable.add("AVIF")
    return frozenset(readable)


@functools.cache
def pillow_formats() -> tuple[str, ...]:
    """PILLOW_FORMATS that this environment's Pillow can open (HEIF and AVIF need plugins):
    what `Image.open(..., formats=...)` is given."""
    register_phone_formats()
    Image.init()  # every plugin Pillow has, so OPEN lists them all
    return tuple(f for f in PILLOW_FORMATS if f in Image.OPEN)


def _register_heif() -> bool:
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def _register_avif() -> bool:
    if _pillow_reads_avif():
        return True
    try:
        import pillow_avif  # noqa: F401 - importing it registers the plugin
    except ImportError:
        return False
    return True


def _pillow_reads_avif() -> bool:
    try:
        return bool(features.check_module("avif"))
    except ValueError:  # Pillow before 11.2 does not know the module at all
        return False


SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF8", "GIF"),
              (b"BM", "BMP"), (b"II*\0", "TIFF"), (b"MM\0*", "TIFF"))
HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC",
               b"hevc": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF",
               b"avis": "AVIF"}


def signature(data: bytes) -> str | None:
    """The picture format a file's first bytes announce ("JPEG", "HEIC", ...), or None: a file
    Pillow cannot open that starts like a picture is a damaged one, not another kind of file."""
    for magic, name in SIGNATURES:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:8] == b"ftyp":
        return HEIF_BRANDS.get(data[8:12])
    return None


def readable_names() -> str:
    """The picture formats this environment reads, for messages: "JPEG, ..., HEIC or AVIF"."""
    readable = register_phone_formats()
    names = ["JPEG", "PNG", "WebP", "GIF", "BMP", "TIFF"]
    names += [name for fmt, name in (("HEIF", "HEIC"), ("AVIF", "AVIF")) if fmt in readable]
    return ", ".join(names[:-1]) + " or " + names[-1]


def missing_note(name: str) -> str:
    """What to install when `name` is a phone picture whose format cannot be read; else ''."""
    fmt = PHONE_SUFFIXES.get(Path(name).suffix.lower())
    if fmt is None or fmt in register_phone_formats():
        return ""
    return INSTALL_HINTS[fmt]
