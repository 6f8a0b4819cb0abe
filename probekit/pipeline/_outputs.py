"""The analysis outputs that ``probekit run`` stages and the ``probekit probe`` / ``attention`` commands share.

Both write the same run-folder layout through :class:`Outputs`
(``tables/<name>.csv``, ``figures/<section>__<name>.png``), and both derive
their tables with the same functions: :func:`probe_outputs` (tidy probe rows,
the per-layer summary, expected layers, best layers, curves) and
:func:`attention_outputs` (head statistics, the special-token mass by layer,
grids). So one analysis gives one answer, whichever door it came in by, and
``probekit report`` reads either folder.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from probekit.attention import AttentionSuite, special_mass
from probekit.plots import layer_head_grid, probe_curves, probe_heatmap, selectivity_curves
from probekit.profiling import phase
from probekit.report import expected_layers, probe_summary
from probekit.results import Results

__all__ = ["Outputs", "probe_outputs", "best_layers", "attention_outputs", "markdown_table"]

logger = logging.getLogger(__name__)


class Outputs:
    """Writes tables and figures under ``root`` in the run-folder layout, recording what it wrote.

    Parameters
    ----------
    root : path
        The run (or output) folder; ``tables/`` and ``figures/`` are made in it.
    figures : bool
        Draw figures (``False``: tables only).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> out = Outputs(tempfile.mkdtemp(), figures=False)
    >>> out.table(pd.DataFrame({"layer": [1, 2], "value": [0.5, 0.7]}), "demo")
    >>> out.written
    ['tables/demo.csv']
    """

    def __init__(self, root: str | os.PathLike, *, figures: bool = True):
        self.root = Path(root)
        self.figures = figures
        self.written: list[str] = []

    def path(self, rel: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def table(self, df: pd.DataFrame, name: str) -> None:
        """Write ``tables/<name>.csv`` (a results frame's ``extra`` mappings as JSON text)."""
        rel = f"tables/{name}.csv"
        with phase("tables"):
            if "extra" in df.columns:
                df = df.assign(extra=[v if v is None or isinstance(v, str) or v != v
                                      else json.dumps(v, sort_keys=True, default=str) for v in df["extra"]])
            df.to_csv(self.path(rel), index=False)
        self.written.append(rel)

    def figure(self, make: Callable, section: str, name: str) -> None:
        """Draw ``make()`` into ``figures/<section>__<name>.png``; a plot with nothing to draw is skipped."""
        if not self.figures:
            return
        with phase("figures"):
            import matplotlib.pyplot as plt

            try:
                fig = make()
            except ValueError as exc:
                logger.info("skipping figure %s__%s: %s", section, name, exc)
                return
            rel = f"figures/{section}__{name}.png"
            fig.savefig(self.path(rel), dpi=110)
            plt.close(fig)
        self.written.append(rel)


def best_layers(summary: pd.DataFrame) -> pd.DataFrame:
    """The best layer of each (model, variant,) task and probe in a :func:`probekit.report.probe_summary` table.

    Examples
    --------
    >>> s = pd.DataFrame({"task": ["t", "t"], "probe": ["linear"] * 2, "layer": [1, 2], "accuracy": [0.6, 0.8]})
    >>> best_layers(s).values.tolist()
    [['t', 'linear', 2, 0.8]]
    """
    if summary.empty:
        return summary
    keys = [c for c in ("model", "variant", "task", "probe") if c in summary.columns]
    best = summary.loc[summary.groupby(keys, sort=False)["accuracy"].idxmax()]
    return best.reset_index(drop=True)


def probe_outputs(results: Results, out: Outputs, *, controls: bool = True) -> pd.DataFrame:
    """Tables ``probes`` (tidy rows), ``probe_summary``, ``expected_layer``, ``probe_best``, and the probe figures.

    Returns the ``probe_summary`` table (one row per task, probe and layer).
    """
    df = results.to_frame()
    out.table(df, "probes")
    summary = probe_summary(df)
    out.table(summary, "probe_summary")
    out.table(expected_layers(df), "expected_layer")
    out.table(best_layers(summary), "probe_best")
    real = df[df["variant"].isna()]
    out.figure(lambda: probe_curves(df), "probes", "curves")
    out.figure(lambda: probe_heatmap(real), "probes", "heatmap")
    if controls:
        out.figure(lambda: selectivity_curves(real), "probes", "selectivity")
    return summary


def _mass_plot(mass: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for col in ("cls", "sep", "punct", "self"):
        if col in mass.columns:
            ax.plot(mass["layer"], mass[col], marker="o", label=f"[{col.upper()}]" if col in ("cls", "sep") else col)
    ax.set_xlabel("layer (block i's attention is layer i + 1)")
    ax.set_ylabel("mean attention mass")
    ax.set_xticks(mass["layer"])
    ax.legend(frameon=False)
    ax.set_title("attention mass by layer")
    fig.tight_layout()
    return fig


def attention_outputs(suite: AttentionSuite, out: Outputs, *, progress: bool = False) -> tuple[pd.DataFrame,
                                                                                                  pd.DataFrame]:
    """Tables ``attention_heads`` (every head statistic) and ``special_mass``, the mass plot and the grids.

    Returns ``(head statistics frame, special mass table)``.
    """
    sdf = suite.head_statistics(progress=progress).to_frame()
    out.table(sdf, "attention_heads")
    mass = special_mass(sdf)
    out.table(mass, "special_mass")
    out.figure(lambda: _mass_plot(mass), "attention", "special_mass")
    for metric in ("sep", "cls", "entropy"):
        grid = sdf[sdf["metric"] == metric]
        out.figure(lambda g=grid, m=metric: layer_head_grid(g, title=f"{m} by layer and head"), "attention",
                   f"grid_{metric}")
    return sdf, mass


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a Markdown table (missing values left empty).

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"a": [1], "b": [None]})), end="")
    | a | b |
    |---|---|
    | 1 |  |
    """
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in r.values) + " |")
    return "\n".join(lines) + "\n"
