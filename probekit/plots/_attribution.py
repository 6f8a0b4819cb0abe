"""Token-coloured attribution views: self-contained HTML and PNG, methods side by side."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["attribution_html", "attribution_png"]


def _colour(v: float) -> str:
    """Green for positive, red for negative, alpha by magnitude (v in [-1, 1])."""
    a = min(abs(v), 1.0)
    return f"rgba(22,150,60,{a:.2f})" if v >= 0 else f"rgba(210,40,40,{a:.2f})"


def _scaled(scores: np.ndarray) -> np.ndarray:
    m = np.abs(scores).max()
    return scores / m if m > 0 else scores


def attribution_html(tokens: Sequence[str], scores: Mapping[str, np.ndarray], *, title: str = "") -> str:
    """One row per method, each token shaded by its score (scaled to the method's largest magnitude).

    Returns a self-contained HTML fragment (inline styles, no scripts, no network).
    """
    rows = []
    for name, s in scores.items():
        s = np.asarray(s, float)
        if len(s) != len(tokens):
            raise ValueError(f"{name}: {len(s)} scores for {len(tokens)} tokens")
        cells = "".join(
            f'<span title="{v:.4g}" style="background:{_colour(c)};padding:1px 3px;margin:1px;'
            f'border-radius:3px;display:inline-block">{html.escape(t)}</span>'
            for t, v, c in zip(tokens, s, _scaled(s)))
        rows.append(f'<tr><td style="font-weight:600;padding-right:8px">{html.escape(name)}</td><td>{cells}</td></tr>')
    head = f"<h4>{html.escape(title)}</h4>" if title else ""
    return f'<div class="attribution">{head}<table style="font-family:monospace">{"".join(rows)}</table></div>'


def attribution_png(tokens: Sequence[str], scores: Mapping[str, np.ndarray], *, title: str = ""):
    """The same view as a matplotlib figure (a heat strip per method)."""
    names = list(scores)
    mat = np.stack([_scaled(np.asarray(scores[n], float)) for n in names])
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(tokens) + 2), 0.5 * len(names) + 1.2))
    ax.imshow(mat, cmap="RdYlGn", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(tokens)), tokens, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
