"""The published figures each paper check compares with, read from the check's ``paper_figures.csv``.

Every folder under ``papers/`` keeps the figures it quotes from its paper in
``paper_figures.csv``, one figure a row, so each is written once and its
``run.py`` reads it from there. Columns:

- ``paper``: the paper, e.g. ``Hewitt & Liang 2019``;
- ``source``: where the figure is printed and which version of the paper it
  was read from: the table, figure or section, and the proceedings (ACL
  Anthology id, PMLR volume, ...) or the arXiv id with its version;
- ``setting``: the paper's setting of that figure (model, layer, data, probe);
- ``row`` and ``metric``: the figure's key, unique within the folder;
- ``value`` and ``unit``: the figure as printed;
- ``note``: anything a reader needs to compare it (optional).

A check that quotes no figure (only a paper's claims) keeps the header alone.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FILENAME = "paper_figures.csv"
COLUMNS = ("paper", "source", "setting", "row", "metric", "value", "unit", "note")


def paper_figures(folder: Path) -> pd.DataFrame:
    """The figures ``folder``'s check quotes, one row each (columns :data:`COLUMNS`).

    Raises
    ------
    FileNotFoundError
        When the folder has no ``paper_figures.csv``.
    ValueError
        When a column is missing, a figure has no source or value, or a
        ``(row, metric)`` key repeats.
    """
    path = Path(folder) / FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: every paper check lists the figures it quotes there")
    df = pd.read_csv(path, dtype={"row": str, "metric": str, "source": str}, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}")
    unsourced = df.index[df["source"].str.strip() == ""].tolist()
    if unsourced:
        raise ValueError(f"{path}: figure row(s) {unsourced} name no source (table or figure, and version)")
    df["value"] = pd.to_numeric(df["value"], errors="raise") if len(df) else df["value"]
    dup = df[df.duplicated(["row", "metric"], keep=False)]
    if len(dup):
        raise ValueError(f"{path}: the keys {sorted(set(zip(dup['row'], dup['metric'])))} repeat")
    return df


def figure(figures: pd.DataFrame, row: str, metric: str) -> float:
    """The value of the figure keyed ``(row, metric)``."""
    hit = figures[(figures["row"] == row) & (figures["metric"] == metric)]
    if hit.empty:
        raise KeyError(f"no paper figure ({row!r}, {metric!r}); the table has {sorted(set(figures['row']))}")
    return float(hit["value"].iloc[0])


def source(figures: pd.DataFrame, row: str | None = None) -> str:
    """The source of the figures of ``row`` (default: of all of them), each distinct source once, joined by '; '."""
    rows = figures if row is None else figures[figures["row"] == row]
    return "; ".join(dict.fromkeys(rows["source"]))
