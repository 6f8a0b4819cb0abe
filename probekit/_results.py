"""Tidy results shared by every suite.

Each row is one measured number with its context: ``model, variant, task,
layer, site, head, probe, seed, split, metric, value, ci_low, ci_high``.
Columns a suite does not use are left empty (NaN/None), so results of
different suites concatenate, filter and plot the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

__all__ = ["Results", "RESULT_COLUMNS"]

RESULT_COLUMNS: tuple[str, ...] = ("model", "variant", "task", "layer", "site", "head", "probe", "seed", "split",
                                   "metric", "value", "ci_low", "ci_high")


class Results:
    """A list of tidy result rows with :meth:`to_frame`.

    Examples
    --------
    >>> r = Results([{"model": "m", "layer": 1, "metric": "accuracy", "value": 0.9}])
    >>> r.to_frame()[["model", "layer", "metric", "value"]].values.tolist()
    [['m', 1, 'accuracy', 0.9]]
    >>> len(r + r)
    2
    """

    def __init__(self, rows: Iterable[Mapping] | pd.DataFrame = ()):
        if isinstance(rows, pd.DataFrame):
            rows = rows.to_dict("records")
        self._rows: list[dict] = []
        for i, row in enumerate(rows):
            unknown = set(row) - set(RESULT_COLUMNS) - {"extra"}
            if unknown:
                raise ValueError(f"result row {i} has unknown columns {sorted(unknown)}; "
                                 f"allowed: {', '.join(RESULT_COLUMNS)}")
            if "metric" not in row or "value" not in row:
                raise ValueError(f"result row {i} needs 'metric' and 'value'")
            self._rows.append(dict(row))

    def __len__(self) -> int:
        return len(self._rows)

    def __add__(self, other: Results) -> Results:
        return Results(self._rows + other._rows)

    def __repr__(self) -> str:
        metrics = sorted({r["metric"] for r in self._rows})
        return f"Results({len(self)} rows; metrics: {', '.join(metrics)})"

    def to_frame(self) -> pd.DataFrame:
        """All rows with the standard columns, in the standard order."""
        df = pd.DataFrame(self._rows, columns=list(RESULT_COLUMNS))
        return df

    def to_csv(self, path: str | Path) -> Path:
        """Write the rows as CSV (atomically) and return the path."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        self.to_frame().to_csv(tmp, index=False)
        tmp.replace(path)
        return path
