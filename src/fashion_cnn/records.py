"""What `predict` reads and prints, and the HTTP API answers: the pictures a command line names
(files, folders, standard input) and each Prediction as a record, in a table, JSON or CSV.

The Classifier (predict.py) returns Prediction objects; this module only turns them into text,
so the CLI and the API print the same records.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .errors import FashionCNNError
from .formats import PICTURE_SUFFIXES
from .predict import Prediction, Source
from .preprocess import MAX_FILE_BYTES

RECORD_KEYS = ("path", "label", "index", "confidence", "top_k", "error", "in_class", "unsure",
               "unsure_reason", "warnings")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet may run such a cell


def collect_pictures(paths: list[str], recursive: bool = False,
                     stdin: BinaryIO | None = None) -> tuple[list[str], list[Source]]:
    """Expand files, folders (their image files, sorted) and '-' (stdin) into names+sources.

    A path that does not exist stays in the list: it gets an error record, like a bad file.
    """
    if paths.count("-") > 1:
        raise FashionCNNError("'-' (standard input) can be given only once.")
    names: list[str] = []
    sources: list[Source] = []
    for p in paths:
        path = Path(p)
        if not p.strip():  # what "$UNSET" gives in a script: Path("") would be this folder
            raise FashionCNNError("An empty path was given; name a picture or a folder ('.' "
                                  "for this one).")
        if p == "-":
            names.append("-")
            # at most one byte over the limit: decode_image then refuses it
            sources.append(stdin.read(MAX_FILE_BYTES + 1) if stdin is not None else b"")
        elif path.is_dir():
            files = sorted(f for f in (path.rglob("*") if recursive else path.iterdir())
                           if f.is_file() and f.suffix.lower() in PICTURE_SUFFIXES)
            if not files:
                hint = "" if recursive else " (add --recursive to look in subfolders)"
                raise FashionCNNError(f"No pictures in folder {p}{hint}; looked for "
                                      f"{', '.join(PICTURE_SUFFIXES)} files.")
            names += [str(f) for f in files]
            sources += files
        else:
            names.append(p)
            sources.append(path)
    return names, sources


def format_predictions(predictions: Iterable[Prediction], fmt: str, names: list[str],
                       failed: list[str]) -> Iterator[str]:
    """Lines of output as table, json or csv, streamed; appends failed paths to `failed`."""
    def tracked() -> Iterator[Prediction]:
        for p in predictions:
            if p.error:
                failed.append(p.path)
            yield p

    if fmt == "json":
        yield "["
        previous = None
        for p in tracked():
            if previous is not None:
                yield f"  {previous},"
            previous = json.dumps(output_record(p))
        if previous is not None:
            yield f"  {previous}"
        yield "]"
    elif fmt == "csv":
        yield _csv_line(RECORD_KEYS)
        for p in tracked():
            yield _csv_line(_csv_cells(output_record(p)))
    else:
        width = min(max([len(printable(n)) for n in names] + [4]), 60)
        yield f"{'path':<{width}}  {'label':<12} {'conf':>6}  top-k"
        for p in tracked():
            yield printable(_table_row(p, width))
            yield from (f"{'':<{width}}  note: {printable(note)}" for note in p.verdict()[1])


def output_record(p: Prediction) -> dict[str, Any]:
    """The record `predict --format json` prints (and the HTTP API answers), keys in order."""
    r = p.record()
    return {k: r[k] for k in RECORD_KEYS}


def _csv_cells(r: dict[str, Any]) -> list[str]:
    """One record as CSV cells, in RECORD_KEYS order; lists joined, numbers to 4 decimals."""
    def number(x: float | None) -> str:
        return "" if x is None else f"{x:.4f}"

    cells = {**r, "confidence": number(r["confidence"]), "in_class": number(r["in_class"]),
             "top_k": ";".join(f"{t['label']}:{t['confidence']:.4f}" for t in r["top_k"]),
             "unsure": "true" if r["unsure"] else "false", "warnings": " | ".join(r["warnings"])}
    return [spreadsheet_safe("" if cells[k] is None else str(cells[k])) for k in RECORD_KEYS]


def spreadsheet_safe(cell: str) -> str:
    """Quote a cell a spreadsheet would run as a formula (OWASP "CSV injection"): a file named
    `=HYPERLINK(...).png` must show as text, not become a link."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def printable(text: str) -> str:
    """`text` with the characters a terminal would act on or cannot show (newline, tab, ESC
    and other controls, bidi overrides, a file name's undecodable bytes) written as Python
    escapes: a file named `\\x1b[2J.png` must not clear the screen of whoever lists it. Other
    unicode (accents, CJK, emoji) stays as it is."""
    if text.isprintable():  # nearly every name: no copy
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _table_row(p: Prediction, width: int) -> str:
    """One picture's row of the table; the caller makes it `printable` (names and messages
    may hold control characters: the path is escaped here first, so its padding fits)."""
    path = printable(p.path)
    path = path if len(path) <= width else "..." + path[-(width - 3):]
    if p.error:
        return f"{path:<{width}}  error: {p.error}"
    if p.label is None:  # no garment found: nothing to show but the reason
        return f"{path:<{width}}  unsure: {p.unsure_reason}"
    top = ", ".join(f"{t['label']} {percent(t['confidence'])}" for t in p.top_k)
    note = f"  unsure: {p.unsure_reason}" if p.unsure else ""
    return f"{path:<{width}}  {p.label:<12} {percent(p.confidence):>6}  {top}{note}"


def percent(probability: float) -> str:
    """A probability as a percentage to one decimal; a model short of certainty never reads
    "100.0%" (">99.9%" instead)."""
    text = f"{100 * probability:.1f}%"
    return ">99.9%" if text == "100.0%" and probability < 1 else text


def _csv_line(values: Iterable[Any]) -> str:
    """One CSV row without its line end. The writer needs a real line end to quote a cell
    holding one (a file name with a newline would otherwise start a row of its own)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(values)
    return buf.getvalue().removesuffix("\r\n")
