"""Probe-suite plots: accuracy by layer with intervals and controls, a task x layer heatmap, selectivity.

Every function takes the tidy frame of ``ProbeSuite.run(...).to_frame()``
and returns a matplotlib Figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["probe_curves", "probe_heatmap", "selectivity_curves"]


def _label(df: pd.DataFrame) -> pd.Series:
    variant = df["variant"].fillna("").astype(str)
    return df["model"].astype(str) + np.where(variant != "", " / " + variant, "")


def _filter(frame: pd.DataFrame, probe: str | None) -> pd.DataFrame:
    df = frame
    if probe is not None:
        df = df[df["probe"].isin([probe, "majority"])]
    return df


def probe_curves(frame: pd.DataFrame, *, metric: str = "accuracy", probe: str | None = None,
                 tasks: list[str] | None = None, col_wrap: int = 4):
    """Per-task ``metric`` by layer, one line per model/variant, with the control curve and majority line.

    The line is the mean over seeds of the per-seed ``metric`` rows; the band
    is the mean over seeds of their bootstrap intervals. Control tasks
    (``<task>.control``) are dashed in the same panel; the majority
    baseline is a grey horizontal line.

    Parameters
    ----------
    frame : DataFrame
        ``ProbeSuite`` results.
    metric : {"accuracy", "macro_f1"}
    probe : str, optional
        Only this probe (default: every probe, as separate lines).
    tasks : list of str, optional
        Real task names to plot (default: all).
    col_wrap : int
        Panels per row; more tasks wrap onto further rows.
    """
    df = _filter(frame, probe)
    df = df[df["metric"] == metric].copy()
    df["base_task"] = df["task"].astype(str).str.replace(r"\.control$", "", regex=True)
    df["is_control"] = df["task"].astype(str).str.endswith(".control")
    names = tasks or sorted(df.loc[~df["is_control"], "base_task"].unique())
    if not names:
        raise ValueError(f"no {metric!r} rows to plot")
    ncols = max(1, min(len(names), col_wrap))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows + 0.9), squeeze=False, sharey=True)
    flat = axes.ravel()
    for ax in flat[len(names):]:
        ax.set_visible(False)
    palette = sns.color_palette("colorblind")
    for ax, name in zip(flat, names):
        sub = df[df["base_task"] == name]
        layered = sub[sub["probe"] != "majority"].copy()
        layered["line"] = _label(layered) + np.where(layered["probe"].nunique() > 1,
                                                     " · " + layered["probe"].astype(str), "")
        lines = sorted(layered["line"].unique())
        for k, line in enumerate(lines):
            for ctrl, style in ((False, "-"), (True, "--")):
                g = layered[(layered["line"] == line) & (layered["is_control"] == ctrl)]
                if g.empty:
                    continue
                agg = g.groupby("layer")[["value", "ci_low", "ci_high"]].mean().sort_index()
                color = palette[k % len(palette)]
                ax.plot(agg.index, agg["value"], style, marker="o", ms=3, color=color,
                        label=f"{line} (control)" if ctrl else line)
                if not ctrl:
                    ax.fill_between(agg.index, agg["ci_low"], agg["ci_high"], color=color, alpha=0.2, lw=0)
        major = sub[(sub["probe"] == "majority") & ~sub["is_control"]]
        if not major.empty:
            ax.axhline(major["value"].mean(), color="grey", lw=1, ls=":", label="majority")
        ax.set_title(name)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_ylabel(metric)
    legend: dict[str, object] = {}
    for ax in flat[: len(names)]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    fig.legend(list(legend.values()), list(legend.keys()), loc="lower center", ncol=min(4, len(legend)), fontsize=8,
               frameon=False)
    rows_of_legend = -(-len(legend) // 4)
    fig.tight_layout(rect=(0, min(0.4, (0.25 * rows_of_legend + 0.1) / fig.get_figheight()), 1, 1))
    return fig


def probe_heatmap(frame: pd.DataFrame, *, metric: str = "accuracy_mean", probe: str | None = None,
                  model: str | None = None, variant: str | None = None, controls: bool = False):
    """Task x layer heatmap of ``metric`` (default the seed-mean accuracy) for one model/variant.

    Parameters
    ----------
    frame : DataFrame
    metric : str
    probe : str, optional
        Default: the first probe in the frame.
    model, variant : str, optional
        Default: the first model/variant in the frame.
    controls : bool
        Also show the control tasks' rows.
    """
    df = frame[(frame["metric"] == metric) & frame["layer"].notna()]
    if not controls:
        df = df[~df["task"].astype(str).str.endswith(".control")]
    if df.empty:
        raise ValueError(f"no per-layer {metric!r} rows to plot")
    probe = probe or df["probe"].iloc[0]
    model = model or df["model"].iloc[0]
    df = df[(df["probe"] == probe) & (df["model"] == model)]
    if variant is None:
        variant = df["variant"].iloc[0]
    df = df[df["variant"].isna()] if pd.isna(variant) else df[df["variant"] == variant]
    table = df.pivot_table(index="task", columns="layer", values="value", aggfunc="mean")
    table.columns = [int(c) for c in table.columns]
    fig, ax = plt.subplots(figsize=(0.55 * table.shape[1] + 3.0, 0.45 * table.shape[0] + 1.6))
    sns.heatmap(table, ax=ax, annot=table.size <= 300, fmt=".2f", cmap="viridis", annot_kws={"fontsize": 7})
    title = f"{model}" + ("" if pd.isna(variant) else f" / {variant}") + f" · {probe} · {metric}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("layer (0 = embeddings)")
    fig.tight_layout()
    return fig


def selectivity_curves(frame: pd.DataFrame, *, probe: str | None = None):
    """Selectivity (task minus control accuracy, seed mean) by layer: one line per task and model/variant."""
    df = _filter(frame, probe)
    df = df[df["metric"] == "selectivity_mean"].copy()
    if df.empty:
        raise ValueError("no selectivity rows to plot (run the suite with controls=True)")
    df["line"] = df["task"].astype(str) + " · " + _label(df)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    sns.lineplot(df, x="layer", y="value", hue="line", marker="o", ax=ax, errorbar=None)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("selectivity (task - control accuracy)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
