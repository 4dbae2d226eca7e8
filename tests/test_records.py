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
