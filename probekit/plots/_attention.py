"""Attention heatmaps and layer x head grids."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

__all__ = ["pattern_frame", "attention_heatmap", "layer_head_grid"]


def pattern_frame(pattern: torch.Tensor, tokens: Sequence[str], head: int | str = "mean") -> pd.DataFrame:
    """One attention pattern as a square DataFrame (rows: queries, columns: keys).

    Parameters
    ----------
    pattern : Tensor
        ``[heads, T, T]`` or ``[T, T]`` of one example.
    tokens : sequence of str
        The ``T`` token strings. Repeated tokens are numbered so labels stay unique.
    head : int or "mean"
        Which head, or the mean over heads.
    """
    p = pattern.detach().float()
    if p.dim() == 3:
        p = p.mean(0) if head == "mean" else p[int(head)]
    if p.shape != (len(tokens), len(tokens)):
        raise ValueError(f"pattern is {tuple(p.shape)} but {len(tokens)} tokens were given")
    labels = _unique(tokens)
    return pd.DataFrame(p.numpy(), index=pd.Index(labels, name="query"), columns=pd.Index(labels, name="key"))


def _unique(tokens: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for t in tokens:
        k = seen.get(t, 0)
        seen[t] = k + 1
        out.append(t if k == 0 else f"{t}\u200b{k}")  # zero-width marker keeps the label readable
    return out


def attention_heatmap(frame: pd.DataFrame, *, title: str | None = None, cmap: str = "viridis"):
    """Heatmap of a :func:`pattern_frame`, with every token on both axes.

    The figure grows with the number of tokens (about 0.16 inch per token,
    font shrinking to 6 pt), so 60-token inputs stay readable.
    """
    n = len(frame)
    size = float(np.clip(0.16 * n + 2.0, 4.0, 14.0))
    font = float(np.clip(11 - n / 10, 6, 10))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    sns.heatmap(frame, ax=ax, cmap=cmap, square=True, vmin=0, xticklabels=True, yticklabels=True,
                cbar_kws={"shrink": 0.6, "label": "attention"})
    ax.tick_params(labelsize=font)
    ax.set_xlabel("attended token (key)")
    ax.set_ylabel("attending token (query)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def layer_head_grid(df: pd.DataFrame, *, value: str = "value", title: str | None = None, cmap: str = "rocket_r",
                    fmt: str = ".2f", center: float | None = None):
    """A layer x head heatmap of one statistic from a tidy frame with ``layer, head`` columns.

    ``layer`` is the layer axis of results tables (the pattern of block ``i`` is layer ``i + 1``).
    """
    missing = {"layer", "head", value} - set(df.columns)
    if missing:
        raise ValueError(f"layer_head_grid needs columns layer, head, {value}; missing {sorted(missing)}")
    grid = df.pivot_table(index="layer", columns="head", values=value, aggfunc="mean")
    fig, ax = plt.subplots(figsize=(0.55 * grid.shape[1] + 2, 0.45 * grid.shape[0] + 1.5))
    sns.heatmap(grid, ax=ax, annot=grid.size <= 400, fmt=fmt, cmap=cmap, center=center,
                annot_kws={"fontsize": 7}, cbar_kws={"label": value})
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
