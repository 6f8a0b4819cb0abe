"""Data named on the command line (``--data``): example ids of a text file name its lines."""

from __future__ import annotations

import logging

from probekit.store import load_source


def test_txt_ids_are_line_numbers_even_with_blank_lines(tmp_path, caplog):
    """Blank lines were dropped silently and the example ids no longer matched the line numbers (issue 25)."""
    f = tmp_path / "texts.txt"
    f.write_text("\ufefffirst line\n\nthird line\n   \nfifth line\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="probekit.store"):
        data = load_source(str(f))
    assert data.texts == ("first line", "third line", "fifth line")  # the BOM is not part of the first text
    assert data.frame["id"].tolist() == [0, 2, 4]
    assert "2 blank lines skipped" in caplog.text
    lines = f.read_text(encoding="utf-8-sig").splitlines()
    assert all(lines[i] == t for i, t in zip(data.frame["id"], data.texts))
    assert load_source(str(f), limit=2).frame["id"].tolist() == [0, 2]


def test_txt_without_blank_lines_keeps_its_ids(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("a b\nc d\n", encoding="utf-8")
    assert load_source(str(f)).frame["id"].tolist() == [0, 1]
