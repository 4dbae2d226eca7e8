"""The records `predict` prints and the API answers: one per picture, in every format."""

from __future__ import annotations

from fashion_cnn.predict import LOW, Prediction
from fashion_cnn.records import format_predictions, percent, spreadsheet_safe


def test_the_table_shows_a_pictures_warnings_and_not_the_verdict_twice() -> None:
    top = [{"label": "Coat", "index": 4, "confidence": 0.5}]
    cut = Prediction("a.jpg", "Coat", 4, 0.5, top, warnings=["Could not tell a garment."])
    torn = Prediction("b.jpg", "Coat", 4, 0.5, top, warnings=["Small.", "Not sure: between."],
                      unsure=True, unsure_reason=LOW)
    lines = list(format_predictions([cut, torn], "table", ["a.jpg", "b.jpg"], []))
    assert [line.split()[0] for line in lines] == ["path", "a.jpg", "note:", "b.jpg", "note:"]
    assert lines[2].endswith("note: Could not tell a garment.") and lines[4].endswith("Small.")
    assert lines[3].endswith("unsure: low confidence")


def test_a_cell_a_spreadsheet_would_run_is_quoted() -> None:
    assert [spreadsheet_safe(c) for c in ("=1+2", "+a", "-b", "@c", "plain", "a=b")] == \
        ["'=1+2", "'+a", "'-b", "'@c", "plain", "a=b"]


def test_a_probability_short_of_one_never_reads_100_percent() -> None:
    assert [percent(p) for p in (0.5, 0.9994, 0.9996, 1.0)] == \
        ["50.0%", "99.9%", ">99.9%", "100.0%"]


def test_the_table_escapes_control_characters_in_names_and_messages() -> None:
    """A file named with a newline, a tab or an escape sequence (`\\x1b[2J` clears a terminal)
    shows escaped in the table, as CSV and JSON already quote it; other unicode stays as is."""
    top = [{"label": "Coat", "index": 4, "confidence": 0.5}]
    names = ["a\nb\tc\x1b[2J.png", "bad\udcff\u202e.png", "héllo 日本 👕.png"]
    rows = [Prediction(names[0], "Coat", 4, 0.5, top, warnings=["Small\x07."]),
            Prediction(names[1], error="cannot read\r it."),
            Prediction(names[2], "Coat", 4, 0.5, top)]
    lines = list(format_predictions(rows, "table", names, []))
    assert all(line.isprintable() for line in lines)
    assert lines[1].startswith(r"a\nb\tc\x1b[2J.png ")
    assert lines[2].endswith(r"note: Small\x07.")
    assert lines[3].startswith(r"bad\udcff\u202e.png") and lines[3].endswith(r"cannot read\r it.")
    assert lines[4].startswith("héllo 日本 👕.png ")
    assert len({line.index("Coat") for line in (lines[1], lines[4])}) == 1  # columns line up
