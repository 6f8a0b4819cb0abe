"""Tidy results shared by every suite.

Each row is one measured number with its context. Columns a suite does not
use are left empty (NaN/None), so results of different suites concatenate,
filter, plot and join the same way: any two suites' tables join on
``(site, layer)`` (see the layer axis in :mod:`probekit.model._sites`).

Schema
------
=========  ==========  =====================================================  ==========================
column     type        meaning                                                filled by
=========  ==========  =====================================================  ==========================
model      str         the model's name (a store's manifest name, or given)   every suite
variant    str         the variant's label; empty for the model itself        probes (random-init,
                       (comparisons: B's name, while ``model`` is A's)         keyed stores), compare,
                                                                              probe deltas, attribution
task       str         probing task, ``<task>.control``, ``dep:<rel>:<dir>``  probes, attention
                       (heads as parsers), attribution task name              (dependency heads),
                                                                              attribution, probe deltas
layer      Int64       the layer axis: ``emb`` 0, block ``i`` ``i + 1``,      every row tied to a site
                       ``final`` ``n_blocks + 1`` (:func:`site_layer`)
block      Int64       block index of rows about a block's internals          attention, attention
                       (heads, sublayers; :func:`site_block`)                 deltas, probes and
                                                                              attribution on such sites
site       str         canonical site text (comparisons: A's site)            every row tied to a site
site_b     str         the site of B paired with ``site`` (with ``.h<k>``     compare, probe deltas,
                       for a head)                                            attention deltas
head       Int64       attention head (comparisons: A's head)                 attention, attention deltas
probe      str         probe name (``linear``, ``mlp``, ``majority``, ...)    probes, probe deltas
seed       Int64       seed of the probe (or of a bootstrap)                  probes, probe deltas,
                                                                              agreement
split      str         the evaluated split                                    probes, attribution
example    Int64       example number                                         attribution
position   Int64       token position within the example                      attribution (token rows)
token      str         the token at ``position``                              attribution (token rows)
metric     str         what ``value`` is (required)                           every suite
value      float       the number (required)                                  every suite
ci_low     float       lower end of its interval                              where an interval exists
ci_high    float       upper end of its interval                              where an interval exists
extra      dict        any other JSON-able detail of the row (CSV: JSON       callers that need it
                       text)
=========  ==========  =====================================================  ==========================
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from probekit.model import Site, site_block, site_layer

__all__ = ["Results", "RESULT_COLUMNS", "site_columns", "store_blocks"]

RESULT_COLUMNS: tuple[str, ...] = ("model", "variant", "task", "layer", "block", "site", "site_b", "head", "probe",
                                   "seed", "split", "example", "position", "token", "metric", "value", "ci_low",
                                   "ci_high", "extra")
#: Columns held as nullable integers (``Int64``).
INT_COLUMNS: tuple[str, ...] = ("layer", "block", "head", "seed", "example", "position")
#: Columns held as floats.
FLOAT_COLUMNS: tuple[str, ...] = ("value", "ci_low", "ci_high")
#: Columns held as text (``object``: strings, None where empty).
TEXT_COLUMNS: tuple[str, ...] = ("model", "variant", "task", "site", "site_b", "probe", "split", "token", "metric")


def site_columns(site: Site | str, n_blocks: int | None = None) -> dict:
    """``site``, ``layer``, ``block`` and ``head`` of a row about ``site`` (the one layer axis).

    Parameters
    ----------
    site : Site or str
    n_blocks : int, optional
        The model's number of blocks (needed for ``final``).

    Examples
    --------
    >>> site_columns("L3.attn.pattern.h2")
    {'site': 'L3.attn.pattern', 'layer': 4, 'block': 3, 'head': 2}
    >>> site_columns("final", n_blocks=2)
    {'site': 'final', 'layer': 3, 'block': None, 'head': None}
    """
    s = Site.parse(site)
    return {"site": str(s.without_head()), "layer": site_layer(s, n_blocks), "block": site_block(s), "head": s.head}


def store_blocks(store) -> int | None:
    """The number of blocks of the model a store was extracted from (None when its manifest lacks it)."""
    n = (store.manifest.get("model") or {}).get("n_layers")
    return None if n is None else int(n)


def _is_missing(v) -> bool:
    """None, NaN or pandas' NA (a mapping or sequence never is)."""
    if v is None:
        return True
    if isinstance(v, (Mapping, list, tuple)):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


class Results:
    """A list of tidy result rows with :meth:`to_frame` (the columns are described in the module docstring).

    Rows are mappings with at least ``metric`` and ``value``; any other key
    must be one of :data:`RESULT_COLUMNS`. ``extra`` holds a JSON-able
    mapping of details the standard columns do not cover.

    Examples
    --------
    >>> r = Results([{"model": "m", "layer": 1, "metric": "accuracy", "value": 0.9}])
    >>> r.to_frame()[["model", "layer", "metric", "value"]].values.tolist()
    [['m', 1, 'accuracy', 0.9]]
    >>> len(r + r)
    2
    >>> Results([{"metric": "m", "value": 1.0, "extra": {"n": 3}}]).to_frame()["extra"].tolist()
    [{'n': 3}]
    """

    def __init__(self, rows: Iterable[Mapping] | pd.DataFrame = ()):
        if isinstance(rows, pd.DataFrame):
            rows = rows.to_dict("records")
        self._rows: list[dict] = []
        for i, row in enumerate(rows):
            unknown = set(row) - set(RESULT_COLUMNS)
            if unknown:
                raise ValueError(f"result row {i} has unknown columns {sorted(unknown)}; "
                                 f"allowed: {', '.join(RESULT_COLUMNS)}")
            if "metric" not in row or "value" not in row:
                raise ValueError(f"result row {i} needs 'metric' and 'value'")
            extra = row.get("extra")
            if not _is_missing(extra) and not isinstance(extra, Mapping):
                raise TypeError(f"result row {i}: extra must be a mapping (or None), not {type(extra).__name__}")
            self._rows.append(dict(row))

    def __len__(self) -> int:
        return len(self._rows)

    def __add__(self, other: Results) -> Results:
        return Results(self._rows + other._rows)

    def __repr__(self) -> str:
        metrics = sorted({r["metric"] for r in self._rows})
        return f"Results({len(self)} rows; metrics: {', '.join(metrics)})"

    def to_frame(self) -> pd.DataFrame:
        """Every row with the standard columns, in the standard order (nothing dropped).

        Integer columns (``layer, block, head, seed, example, position``) are
        nullable ``Int64``, ``value, ci_low, ci_high`` floats, the text
        columns ``object`` (None where empty); ``extra`` holds each row's
        mapping or None.
        """
        df = pd.DataFrame(self._rows, columns=list(RESULT_COLUMNS))
        for c in TEXT_COLUMNS:
            df[c] = pd.Series([None if _is_missing(v) else v for v in df[c]], index=df.index, dtype=object)
        for c in INT_COLUMNS:
            df[c] = _as_int(df[c], c)
        for c in FLOAT_COLUMNS:
            df[c] = pd.to_numeric(df[c], errors="raise").astype("float64")
        df["extra"] = [None if _is_missing(v) else dict(v) for v in df["extra"]]
        return df

    def to_csv(self, path: str | Path) -> Path:
        """Write the rows as CSV (atomically; ``extra`` as JSON text) and return the path."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        df = self.to_frame()
        df["extra"] = [None if v is None else json.dumps(v, sort_keys=True, default=str) for v in df["extra"]]
        df.to_csv(tmp, index=False)
        tmp.replace(path)
        return path

    @classmethod
    def read_csv(cls, path: str | Path) -> Results:
        """Read a table written by :meth:`to_csv` back (``extra`` parsed from JSON).

        Only empty cells are missing values: tokens such as ``"NA"`` or
        ``"nan"`` stay text (an empty token reads back as missing).

        Raises
        ------
        ValueError
            When the file has columns that are not result columns.
        """
        df = pd.read_csv(path, dtype={"site": "object", "site_b": "object", "token": "object",
                                      "extra": "object"}, keep_default_na=False,
                         na_values={c: [""] for c in RESULT_COLUMNS})
        if "extra" in df.columns:
            df["extra"] = [None if _is_missing(v) else json.loads(v) for v in df["extra"]]
        records = [{k: (None if _is_missing(v) else v) for k, v in r.items()} for r in df.to_dict("records")]
        return cls(records)


def _as_int(col: pd.Series, name: str) -> pd.Series:
    """A column of ints and missing values as ``Int64`` (refusing non-integral numbers)."""
    num = pd.to_numeric(col, errors="raise")
    bad = num.notna() & (num != num.round())
    if bad.any():
        raise ValueError(f"column {name!r} must hold integers; got {num[bad].iloc[0]!r}")
    return num.astype("Int64")
