"""Agreement between attribution methods (and attention-based scores)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

__all__ = ["agreement"]


def agreement(scores: Mapping[str, Sequence[np.ndarray]], *,
              content: Sequence[np.ndarray] | None = None) -> pd.DataFrame:
    """Spearman correlation between every pair of score sources, per example.

    Parameters
    ----------
    scores : mapping name -> list of per-token score arrays
        One array per example for each source (attribution methods, raw
        attention, rollout, flow, blank-out...), all over the same tokens.
    content : list of bool arrays, optional
        Tokens to compare (e.g. excluding [CLS]/[SEP]); default all.

    Returns
    -------
    DataFrame
        Tidy rows ``example, a, b, spearman``; average with
        ``df.groupby(["a", "b"]).spearman.mean()``.
    """
    names = list(scores)
    lengths = {len(v) for v in scores.values()}
    if len(lengths) != 1:
        raise ValueError(f"every source needs one array per example; got counts {sorted(lengths)}")
    rows = []
    for i in range(next(iter(lengths))):
        keep = None if content is None else np.asarray(content[i], dtype=bool)
        for a, b in itertools.combinations(names, 2):
            x, y = np.asarray(scores[a][i], float), np.asarray(scores[b][i], float)
            if x.shape != y.shape:
                raise ValueError(f"example {i}: {a} has {x.shape[0]} tokens, {b} has {y.shape[0]}")
            if keep is not None:
                x, y = x[keep], y[keep]
            rho = spearmanr(x, y).statistic if len(x) > 2 else np.nan
            rows.append((i, a, b, float(rho)))
    return pd.DataFrame(rows, columns=["example", "a", "b", "spearman"])
