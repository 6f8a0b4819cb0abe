"""Amnesic probing plot: probe accuracy before/after erasure and the behaviour change against random erasure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

__all__ = ["amnesic_plot"]


def _behaviour_metric(table: pd.DataFrame) -> str:
    for m in ("lm_accuracy", "accuracy", "lm_loss"):
        if f"{m}_change" in table.columns and table[f"{m}_change"].notna().any():
            return m
    found = [c[: -len("_change")] for c in table.columns if c.endswith("_change") and not c.endswith("random_change")]
    if not found:
        raise ValueError("the table has no behaviour change column (M_change); pass amnesic_table(results)")
    return found[0]


def amnesic_plot(table: pd.DataFrame, *, metric: str | None = None):
    """One row of panels per task: probe accuracy by layer (before, after, random), and the behaviour change.

    Parameters
    ----------
    table : DataFrame
        :func:`probekit.interventions.amnesic_table` of an amnesic probing run.
    metric : str, optional
        The behaviour metric to plot (default ``lm_accuracy`` or ``accuracy``).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"task": ["upos"] * 2, "site": ["L0.resid", "L1.resid"], "layer": [1, 2],
    ...                   "majority": [.2, .2], "probe_accuracy_before": [.9, .9], "probe_accuracy_after": [.2, .2],
    ...                   "probe_accuracy_random": [.9, .9], "accuracy_change": [-.1, -.2],
    ...                   "accuracy_change_low": [-.15, -.25], "accuracy_change_high": [-.05, -.15],
    ...                   "accuracy_random_change": [0., -.01], "accuracy_random_change_low": [-.01, -.02],
    ...                   "accuracy_random_change_high": [.01, 0.]})
    >>> len(amnesic_plot(t).axes)
    2
    """
    metric = metric or _behaviour_metric(table)
    tasks = list(dict.fromkeys(table["task"]))
    fig, axes = plt.subplots(len(tasks), 2, figsize=(9, 3.0 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks):
        t = table[table["task"] == task].sort_values("layer")
        ax = row[0]
        for col, style, label in (("probe_accuracy_before", "-o", "before"), ("probe_accuracy_after", "-s", "erased"),
                                  ("probe_accuracy_random", "--^", "random same rank")):
            if col in t:
                ax.plot(t["layer"], 100 * t[col], style, ms=3, label=label)
        if "majority" in t:
            ax.axhline(100 * t["majority"].iloc[0], color="grey", ls=":", lw=1, label="majority")
        ax.set(xlabel="layer", ylabel="probe accuracy (%)", title=f"{task}: linear probe")
        ax.legend(fontsize=7)
        ax = row[1]
        for key, style, label in ((f"{metric}_change", "-o", "property erased"),
                                  (f"{metric}_random_change", "--^", "random same rank")):
            if key not in t:
                continue
            ax.plot(t["layer"], t[key], style, ms=3, label=label)
            if f"{key}_low" in t:
                ax.fill_between(t["layer"].astype(float), t[f"{key}_low"].astype(float),
                                t[f"{key}_high"].astype(float), alpha=0.2, lw=0)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="layer", ylabel=f"change in {metric}", title=f"{task}: behaviour after erasure")
        ax.legend(fontsize=7)
        for a in row:
            a.title.set_fontsize(9)
    fig.tight_layout()
    return fig
