"""Tree metrics of Hewitt & Manning (2019): MST, UUAS, root accuracy and Spearman correlations.

Hewitt & Manning 2019, "A Structural Probe for Finding Syntax in Word
Representations" (NAACL): UUAS is the fraction of gold undirected edges
recovered by the minimum spanning tree of the predicted distances, both trees
built over the non-punctuation words; DSpr. / NSpr. are Spearman correlations
averaged per sentence, then per sentence length, then macro-averaged over the
lengths 5-50.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.stats import rankdata

__all__ = ["mst_edges", "uuas", "distance_spearman", "depth_spearman", "root_accuracy"]


def mst_edges(distances: np.ndarray) -> set[tuple[int, int]]:
    """Undirected edges ``(i, j)``, ``i < j``, of a minimum spanning tree of a distance matrix.

    A constant is added to every off-diagonal entry first (this changes no
    spanning tree's rank) because scipy reads zero entries as missing edges.

    Examples
    --------
    >>> import numpy as np
    >>> D = np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]])  # the path 0 - 1 - 2
    >>> sorted(mst_edges(D))
    [(0, 1), (1, 2)]
    """
    D = np.asarray(distances, dtype=np.float64)
    n = D.shape[0]
    if D.shape != (n, n):
        raise ValueError(f"a distance matrix is square, got shape {D.shape}")
    if n < 2:
        return set()
    W = np.triu(D - D.min() + 1.0, k=1)
    tree = minimum_spanning_tree(W).tocoo()
    return {(int(min(i, j)), int(max(i, j))) for i, j in zip(tree.row, tree.col)}


def _kept(mask, n) -> np.ndarray:
    return np.arange(n) if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))


def uuas(
    pred_distances: Sequence[np.ndarray],
    gold_distances: Sequence[np.ndarray],
    keep: Sequence[np.ndarray] | None = None,
) -> float:
    """Undirected unlabelled attachment score over a corpus.

    Parameters
    ----------
    pred_distances, gold_distances : lists of ``[n_i, n_i]`` matrices
        Predicted (squared) distances and gold tree distances per sentence.
    keep : list of boolean ``[n_i]`` masks, optional
        Words to score (False for punctuation, as in the paper); the gold and
        predicted trees are both spanning trees of the kept words.

    Returns
    -------
    float
        Correct edges / gold edges, summed over sentences (sentences with fewer
        than two kept words contribute nothing).

    Examples
    --------
    >>> import numpy as np
    >>> D = np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]])
    >>> uuas([D], [D])
    1.0
    """
    correct = total = 0
    for s, (P, G) in enumerate(zip(pred_distances, gold_distances)):
        idx = _kept(None if keep is None else keep[s], len(G))
        if len(idx) < 2:
            continue
        sub = np.ix_(idx, idx)
        gold = mst_edges(np.asarray(G)[sub])
        pred = mst_edges(np.asarray(P)[sub])
        correct += len(gold & pred)
        total += len(gold)
    return correct / total if total else float("nan")


def _row_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``a`` with the same row of ``b`` (NaN for constant rows)."""
    ra = rankdata(a, axis=-1)
    rb = rankdata(b, axis=-1)
    ra = ra - ra.mean(-1, keepdims=True)
    rb = rb - rb.mean(-1, keepdims=True)
    den = np.sqrt((ra**2).sum(-1) * (rb**2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(-1) / np.where(den > 0, den, 1.0), np.nan)


def _macro_by_length(values: dict[int, list[float]], min_len: int, max_len: int) -> float:
    means = [np.nanmean(v) for n, v in values.items() if min_len <= n <= max_len and np.isfinite(v).any()]
    return float(np.mean(means)) if means else float("nan")


def distance_spearman(pred_distances, gold_distances, min_len: int = 5, max_len: int = 50) -> float:
    """DSpr.: per sentence, mean over words of the Spearman correlation of their rows of distances;
    averaged per sentence length, then over lengths ``min_len..max_len``.

    Examples
    --------
    >>> import numpy as np
    >>> G = np.abs(np.subtract.outer(np.arange(6), np.arange(6))).astype(float)  # a chain
    >>> distance_spearman([G ** 2], [G])
    1.0
    """
    by_len: dict[int, list[float]] = defaultdict(list)
    for P, G in zip(pred_distances, gold_distances):
        r = _row_spearman(np.asarray(P, dtype=np.float64), np.asarray(G, dtype=np.float64))
        if np.isfinite(r).any():
            by_len[len(G)].append(float(np.nanmean(r)))
    return _macro_by_length(by_len, min_len, max_len)


def depth_spearman(pred_depths, gold_depths, min_len: int = 5, max_len: int = 50) -> float:
    """NSpr.: Spearman correlation of predicted and gold depths per sentence, averaged per
    length, then over lengths ``min_len..max_len``.

    Examples
    --------
    >>> depth_spearman([[0.1, 1.2, 2.0, 2.9, 4.5]], [[0, 1, 2, 3, 4]])
    1.0
    """
    by_len: dict[int, list[float]] = defaultdict(list)
    for p, g in zip(pred_depths, gold_depths):
        r = _row_spearman(np.asarray(p, dtype=np.float64)[None], np.asarray(g, dtype=np.float64)[None])[0]
        if np.isfinite(r):
            by_len[len(g)].append(float(r))
    return _macro_by_length(by_len, min_len, max_len)


def root_accuracy(pred_depths, gold_depths, keep=None) -> float:
    """Fraction of sentences whose least-deep predicted word (among the kept words) is the gold root.

    Examples
    --------
    >>> root_accuracy([[0.9, 0.1, 2.0], [0.2, 0.3]], [[1, 0, 1], [1, 0]])
    0.5
    """
    hits = []
    for s, (p, g) in enumerate(zip(pred_depths, gold_depths)):
        idx = _kept(None if keep is None else keep[s], len(g))
        if len(idx) == 0:
            continue
        p, g = np.asarray(p)[idx], np.asarray(g)[idx]
        hits.append(int(np.argmin(p)) == int(np.argmin(g)))
    return float(np.mean(hits)) if hits else float("nan")
