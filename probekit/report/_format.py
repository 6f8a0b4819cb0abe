"""Readable tables: rounded numbers, intervals as ``0.91 [0.89, 0.93]``, long tables cut with a note.

Every helper returns a DataFrame of strings, ready for HTML or Markdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Table", "fmt_number", "format_frame", "merge_intervals", "drop_empty", "pretty_seconds"]

#: Columns whose numbers are counts (shown with thousands separators, no decimals).
_COUNT_COLUMNS = {"params", "n", "n_examples", "count", "layer", "block", "head", "seed", "layer_a", "layer_b",
                  "example", "position", "expected_layer_int", "throughput_b32"}


def fmt_number(v, *, digits: int = 3, count: bool = False) -> str:
    """Format one cell for people: NaN as an en dash, integers with separators, floats to ``digits`` significant
    figures (whole numbers from 1,000 up, scientific below ``10 ** -digits``).

    Examples
    --------
    >>> fmt_number(0.91234), fmt_number(22713216), fmt_number(float("nan")), fmt_number(1534.25)
    ('0.912', '22,713,216', '–', '1,534')
    >>> fmt_number(12.3456), fmt_number(0.0123456), fmt_number(0.000123), fmt_number(True), fmt_number("x")
    ('12.3', '0.0123', '1.23e-04', 'yes', 'x')
    >>> fmt_number(0.0000000000000001), fmt_number(0.1 + 0.2), fmt_number(-0.5)
    ('1.00e-16', '0.300', '-0.500')
    """
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        a = abs(v)
        if count or a >= 1000 or (v.is_integer() and a >= 10 ** (digits - 1)):
            return f"{v:,.0f}"
        if a == 0:
            return f"{0.0:.{digits - 1}f}"
        if a < 10 ** -digits:
            return f"{v:.{digits - 1}e}"
        decimals = max(0, digits - 1 - math.floor(math.log10(a)))
        text = f"{v:.{decimals}f}"
        if abs(float(text)) >= 10 ** (digits - decimals - 1 + 1) and decimals > 0:  # rounding carried a digit
            text = f"{v:.{decimals - 1}f}"
        return text
    if isinstance(v, str):
        return v
    try:
        if pd.isna(v):
            return "–"
    except (TypeError, ValueError):
        pass
    return str(v)


def drop_empty(df: pd.DataFrame) -> pd.DataFrame:
    """Drop columns that are empty (all NaN/None/blank) in every row."""
    keep = [c for c in df.columns
            if not (df[c].isna() | (df[c].astype(str).str.strip() == "")).all()]
    return df[keep]


def merge_intervals(df: pd.DataFrame, *, digits: int = 3) -> pd.DataFrame:
    """Replace each ``X, ci_low, ci_high`` triple by one text column ``X [low, high]``.

    ``X`` is ``value`` when present, else ``delta`` (a difference and its
    interval), else ``accuracy``; rows without an interval show the value alone.

    Examples
    --------
    >>> df = pd.DataFrame({"layer": [3], "accuracy": [0.912], "ci_low": [0.89], "ci_high": [0.934]})
    >>> merge_intervals(df)["accuracy"].iloc[0]
    '0.912 [0.890, 0.934]'
    """
    if not {"ci_low", "ci_high"} <= set(df.columns):
        return df
    target = next((c for c in ("value", "delta", "accuracy") if c in df.columns), None)
    if target is None:
        return df
    out = df.copy()

    def cell(row) -> str:
        v, lo, hi = row[target], row["ci_low"], row["ci_high"]
        text = fmt_number(v, digits=digits)
        if pd.notna(lo) and pd.notna(hi):
            text += f" [{fmt_number(lo, digits=digits)}, {fmt_number(hi, digits=digits)}]"
        return text

    out[target] = [cell(r) for _, r in df.iterrows()]
    return out.drop(columns=["ci_low", "ci_high"])


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_frame(df: pd.DataFrame, *, digits: int = 3, max_chars: int = 72) -> pd.DataFrame:
    """Every cell as text: numbers rounded, counts with separators, missing as an en dash.

    Text longer than ``max_chars`` is cut with an ellipsis (the CSV keeps it whole).
    """
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        col = df[c]
        count = str(c) in _COUNT_COLUMNS
        if count and pd.api.types.is_numeric_dtype(col):
            vals = [fmt_number(v, count=bool(pd.notna(v) and float(v).is_integer())) for v in col]
        else:
            vals = [fmt_number(v, digits=digits) for v in col]
        out[str(c)] = [_clip(v, max_chars) for v in vals]
    return out.reset_index(drop=True)


def pretty_seconds(s: float) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``1 h 02 min``.

    Examples
    --------
    >>> pretty_seconds(0.42), pretty_seconds(12.34), pretty_seconds(245), pretty_seconds(3720)
    ('0.42 s', '12.3 s', '4 min 05 s', '1 h 02 min')
    """
    s = float(s)
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(round(s % 60)):02d} s"
    return f"{int(s // 3600)} h {int(round(s % 3600 / 60)):02d} min"


@dataclass
class Table:
    """A table ready to render.

    Attributes
    ----------
    frame : DataFrame
        The cells as text (see :func:`format_frame`).
    caption : str
    source : str or None
        Path of the full table relative to the run folder (linked).
    total_rows : int
        Rows of the full table; more than ``len(frame)`` when it was cut.
    note : str
        What was summarised or cut, shown under the table.
    numeric : list of str
        Columns aligned right.
    """

    frame: pd.DataFrame
    caption: str
    source: str | None = None
    total_rows: int = 0
    note: str = ""
    numeric: list | None = None

    @classmethod
    def build(cls, df: pd.DataFrame, caption: str, *, source: str | None = None, max_rows: int = 25,
              note: str = "", digits: int = 3) -> Table:
        """Round, merge intervals, drop empty columns and keep at most ``max_rows`` rows."""
        df = drop_empty(df.reset_index(drop=True))
        numeric = [str(c) for c in df.columns if pd.api.types.is_numeric_dtype(df[c])
                   or c in ("value", "accuracy")]
        total = len(df)
        shown = merge_intervals(df, digits=digits)
        if total > max_rows:
            shown = shown.head(max_rows)
            cut = f"showing the first {max_rows} of {total:,} rows"
            note = f"{note}; {cut}" if note else cut
        return cls(format_frame(shown, digits=digits), caption, source, total, note, numeric)
