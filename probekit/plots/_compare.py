"""Model-variant comparison plots: aligned-layer similarity curves and a task x layer probe-delta heatmap.

Both take tidy frames: ``Comparison.to_frame()`` (several concatenated, one
``variant`` each) and ``probe_deltas(...).to_frame()``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["diagonal_curves", "probe_delta_heatmap"]


def _who(df: pd.DataFrame) -> pd.Series:
    variant = df["variant"].fillna("").astype(str)
    model = df["model"].fillna("").astype(str)
    return np.where(model != "", model + " vs ", "") + variant


def diagonal_curves(frame: pd.DataFrame, *, measure: str = "linear_cka", ax=None, title: str | None = None):
    """Similarity of aligned layers (the layer map's diagonal) by layer, one line per compared pair.

    Parameters
    ----------
    frame : DataFrame
        Rows of ``Comparison.to_frame()`` (metric ``"<measure>:<level>"``,
        ``site``/``layer`` of A, ``site_b`` of B); concatenate several
        comparisons to draw several variants on one axis. Pairs are told
        apart by ``model``/``variant`` (and the level, when several).
    measure : str
        E.g. ``linear_cka``, ``svcca``, ``pwcca``, ``procrustes`` (a distance).
    ax : matplotlib Axes, optional
        Draw into this axis (default: a new figure).

    Returns
    -------
    Figure
    """
    df = frame[frame["metric"].astype(str).str.match(rf"^{measure}:[a-z]+$")].copy()
    if df.empty:
        found = sorted({m.split(":")[0] for m in frame["metric"].astype(str) if ":" in m})
        raise ValueError(f"no aligned-layer rows for measure {measure!r}; the frame has {found}")
    df["level"] = df["metric"].str.split(":").str[1]
    df["who"] = _who(df)
    if df["level"].nunique() > 1:
        df["who"] = df["who"] + " (" + df["level"] + ")"
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 3.6))
    else:
        fig = ax.figure
    palette = sns.color_palette("colorblind", n_colors=max(df["who"].nunique(), 1))
    for color, (who, g) in zip(palette, df.groupby("who", sort=False)):
        g = g.sort_values("layer")
        ax.plot(g["layer"], g["value"], marker="o", color=color, label=who)
    ticks = df.drop_duplicates("layer").sort_values("layer")
    ax.set_xticks(ticks["layer"])
    ax.set_xlabel("layer of A (0 = embeddings), paired with B's site through the layer map")
    ax.set_ylabel(measure.replace("_", " "))
    if measure != "procrustes":
        ax.set_ylim(min(0.0, float(df["value"].min()) - 0.02), 1.02)
    ax.legend(fontsize=7)
    ax.set_title(title or f"{measure.replace('_', ' ')} of aligned layers", fontsize=9)
    fig.tight_layout()
    return fig


def probe_delta_heatmap(frame: pd.DataFrame, *, metric: str | None = None, probe: str | None = None,
                        title: str | None = None):
    """Task x layer heatmap of probe deltas (B - A), one panel per compared pair.

    Cells whose interval excludes 0 are marked with ``*``.

    Parameters
    ----------
    frame : DataFrame
        ``probe_deltas(...).to_frame()``.
    metric : str, optional
        Default ``delta_accuracy_mean`` (paired, from suites) or
        ``delta_accuracy_mean_mover`` (from result tables), whichever is there.
    probe : str, optional
        Default: the first probe in the frame.

    Returns
    -------
    Figure
    """
    if metric is None:
        have = set(frame["metric"].astype(str))
        metric = next((m for m in ("delta_accuracy_mean", "delta_accuracy_mean_mover", "delta_macro_f1_mean",
                                   "delta_macro_f1_mean_mover") if m in have), None)
        if metric is None:
            raise ValueError("no seed-mean delta rows in the frame (expected probe_deltas output)")
    df = frame[frame["metric"] == metric].copy()
    if df.empty:
        raise ValueError(f"no {metric!r} rows to plot")
    probe = probe or str(df["probe"].iloc[0])
    df = df[df["probe"] == probe]
    if df.empty:
        raise ValueError(f"no {metric!r} rows for probe {probe!r}")
    df["who"] = _who(df)
    pairs = list(dict.fromkeys(df["who"]))
    site_b = df["site_b"].fillna(df["site"]).astype(str) if "site_b" in df.columns else df["site"].astype(str)
    df["pair"] = df["site"].astype(str) + np.where(site_b != df["site"].astype(str), "\n~" + site_b, "")
    n_sites = df["pair"].nunique()
    n_tasks = df["task"].nunique()
    fig, axes = plt.subplots(1, len(pairs), figsize=(len(pairs) * (0.9 * n_sites + 2.8), 0.45 * n_tasks + 1.9),
                             squeeze=False)
    lim = float(np.nanmax(np.abs(df["value"]))) or 1.0
    for ax, who in zip(axes[0], pairs):
        g = df[df["who"] == who]
        order = g.drop_duplicates("pair").sort_values("layer")["pair"].tolist()
        val = g.pivot_table(index="task", columns="pair", values="value", aggfunc="mean")[order]
        sig = g.assign(s=(g["ci_low"] > 0) | (g["ci_high"] < 0)).pivot_table(
            index="task", columns="pair", values="s", aggfunc="max")[order]
        annot = val.map(lambda v: f"{v:+.3f}") + sig.map(lambda s: "*" if s else "")
        sns.heatmap(val, ax=ax, annot=annot.values, fmt="", cmap="RdBu", vmin=-lim, vmax=lim, center=0,
                    annot_kws={"fontsize": 7}, cbar_kws={"label": metric})
        ax.set_xticklabels([t.get_text() for t in ax.get_xticklabels()], fontsize=7, rotation=0)
        ax.set_xlabel("site of A (~ site of B where they differ), by layer of A")
        ax.set_title(f"{who} ({probe}); * interval excludes 0", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
