"""Layer x layer similarity heatmaps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

__all__ = ["similarity_heatmap"]


def similarity_heatmap(frame: pd.DataFrame, *, title: str | None = None, vmin: float = 0.0, vmax: float = 1.0):
    """Heatmap of a square-or-rectangular similarity DataFrame (rows: layers of A, columns: layers of B)."""
    fig, ax = plt.subplots(figsize=(0.6 * frame.shape[1] + 2.5, 0.5 * frame.shape[0] + 1.8))
    sns.heatmap(frame, ax=ax, annot=frame.size <= 400, fmt=".2f", vmin=vmin, vmax=vmax, cmap="magma",
                annot_kws={"fontsize": 7}, square=frame.shape[0] == frame.shape[1])
    ax.invert_yaxis()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
