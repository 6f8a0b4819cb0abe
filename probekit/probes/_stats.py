"""Statistics for probe results: bootstrap CIs, McNemar, paired bootstrap, expected layer.

The bootstraps are exact and vectorised: resampling ``n`` test examples with
replacement draws the cells of their confusion table (true label x
prediction[s]) from a multinomial, so a bootstrap replicate costs
``O(cells)``, not ``O(n)``. Accuracy depends only on which predictions are
right, so its cells are the patterns of hits (two for one prediction, four for
a pair): the same bootstrap distribution from far fewer draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

__all__ = [
    "BootstrapCI",
    "McNemarResult",
    "PairedBootstrap",
    "bootstrap_ci",
    "mcnemar",
    "mcnemar_from_counts",
    "paired_bootstrap",
    "paired_bootstrap_seeds",
    "expected_layer",
    "center_of_gravity",
]

_METRICS = ("accuracy", "macro_f1")
_CHUNK = 256


@dataclass(frozen=True)
class BootstrapCI:
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n_boot: int
    seed: int


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test: ``b`` = only A correct, ``c`` = only B correct."""

    statistic: float
    pvalue: float
    b: int
    c: int
    exact: bool


@dataclass(frozen=True)
class PairedBootstrap:
    """Difference ``metric(A) - metric(B)`` with its bootstrap interval and a two-sided p-value."""

    difference: float
    low: float
    high: float
    pvalue: float
    n_boot: int
    seed: int


def _cells(y_true, *preds, metric: str = "macro_f1"):
    """Unique joint cells of (true, pred...) as label codes (rows in lexicographic order), and their counts.

    For ``metric="accuracy"`` the codes are hits: the true column is 0 and a
    prediction's column is 0 where it is right, 1 where it is wrong.
    """
    y_true = np.asarray(y_true)
    if any(np.shape(p) != y_true.shape for p in preds):
        raise ValueError("y_true and the predictions must have the same length")
    if metric == "accuracy":
        labels = np.arange(2)
        cols = [np.zeros(y_true.shape, np.int64)] + [(np.asarray(p) != y_true).astype(np.int64) for p in preds]
    else:
        labels = np.unique(np.concatenate([y_true.ravel(), *[np.asarray(p).ravel() for p in preds]]))
        cols = [np.searchsorted(labels, y_true)] + [np.searchsorted(labels, np.asarray(p)) for p in preds]
    k = max(len(labels), 1)
    if k ** len(cols) < 2**62:  # one mixed-radix code per example, first column most significant: the same order
        code = np.zeros(cols[0].shape, np.int64)
        for c in cols:
            code = code * k + c
        uniq, counts = np.unique(code, return_counts=True)
        cells = np.empty((len(uniq), len(cols)), np.int64)
        for j in range(len(cols) - 1, -1, -1):
            uniq, cells[:, j] = np.divmod(uniq, k)
        return cells, counts, len(labels)
    cells, counts = np.unique(np.stack(cols, axis=1), axis=0, return_counts=True)
    return cells, counts, len(labels)


def _metric_from_weights(weights: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int, metric: str) -> np.ndarray:
    """``metric`` for each row of cell weights ``[B, m]`` (cells with labels ``true``, ``pred``)."""
    hit = (true == pred).astype(np.float64)
    total = weights.sum(1)
    if metric == "accuracy":
        return weights @ hit / total
    m = len(true)
    ones = np.ones(m)
    ind_true = sparse.csr_matrix((ones, (np.arange(m), true)), shape=(m, k))
    ind_pred = sparse.csr_matrix((ones, (np.arange(m), pred)), shape=(m, k))
    ind_tp = sparse.csr_matrix((hit, (np.arange(m), true)), shape=(m, k))
    tp = np.asarray(ind_tp.T.dot(weights.T).T)
    support = np.asarray(ind_true.T.dot(weights.T).T)
    predicted = np.asarray(ind_pred.T.dot(weights.T).T)
    den = support + predicted
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), np.nan)  # absent labels drop out, as in sklearn
    return np.nanmean(f1, axis=1)


def _check_metric(metric):
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")


def _resample(counts: np.ndarray, n_boot: int, rng: np.random.Generator):
    n = int(counts.sum())
    p = counts / n
    for start in range(0, n_boot, _CHUNK):
        yield rng.multinomial(n, p, size=min(_CHUNK, n_boot - start)).astype(np.float64)


def bootstrap_ci(
    y_true, y_pred, metric: str = "accuracy", *, n_boot: int = 1000, alpha: float = 0.05, random_state: int = 0
) -> BootstrapCI:
    """Percentile bootstrap CI over test examples for accuracy or macro-F1.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 1] * 50); pred = y.copy(); pred[:20] = 1 - pred[:20]
    >>> ci = bootstrap_ci(y, pred, random_state=0)
    >>> ci.estimate, ci.low < 0.8 < ci.high
    (0.8, True)
    """
    _check_metric(metric)
    cells, counts, k = _cells(y_true, y_pred, metric=metric)
    rng = np.random.default_rng(random_state)
    point = float(_metric_from_weights(counts[None].astype(np.float64), cells[:, 0], cells[:, 1], k, metric)[0])
    reps = np.concatenate(
        [_metric_from_weights(w, cells[:, 0], cells[:, 1], k, metric) for w in _resample(counts, n_boot, rng)]
    )
    low, high = np.nanquantile(reps, [alpha / 2, 1 - alpha / 2])
    return BootstrapCI(point, float(low), float(high), int(n_boot), int(random_state))


def paired_bootstrap(
    y_true, pred_a, pred_b, metric: str = "accuracy", *, n_boot: int = 1000, alpha: float = 0.05, random_state: int = 0
) -> PairedBootstrap:
    """Paired bootstrap of ``metric(A) - metric(B)`` on the same test examples.

    The p-value is two-sided: twice the smaller fraction of replicates on either side of zero
    (capped at 1).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.zeros(200, int); a = y.copy(); b = y.copy(); b[:40] = 1
    >>> res = paired_bootstrap(y, a, b, random_state=0)
    >>> round(res.difference, 2), res.pvalue < 0.01
    (0.2, True)
    """
    _check_metric(metric)
    cells, counts, k = _cells(y_true, pred_a, pred_b, metric=metric)
    rng = np.random.default_rng(random_state)
    t, a, b = cells[:, 0], cells[:, 1], cells[:, 2]
    w0 = counts[None].astype(np.float64)
    point = float(_metric_from_weights(w0, t, a, k, metric)[0] - _metric_from_weights(w0, t, b, k, metric)[0])
    diffs = np.concatenate(
        [
            _metric_from_weights(w, t, a, k, metric) - _metric_from_weights(w, t, b, k, metric)
            for w in _resample(counts, n_boot, rng)
        ]
    )
    low, high = np.nanquantile(diffs, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0)))
    return PairedBootstrap(point, float(low), float(high), float(p), int(n_boot), int(random_state))


def paired_bootstrap_seeds(y_true, preds_a, preds_b, metric: str = "accuracy", *, n_boot: int = 1000,
                           random_state: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``metric`` of several seeds' predictions of A and of B, and ``B - A`` under one joint bootstrap.

    Every seed's predictions are resampled on the same examples in each
    replicate, so seed means and per-seed deltas share their intervals' noise.

    Returns
    -------
    values_a, values_b : ndarray ``[seeds]``
        The metric of each seed's predictions on all examples.
    deltas : ndarray ``[n_boot, seeds]``
        ``metric(B) - metric(A)`` per replicate and seed.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.zeros(100, int); a = y.copy(); b = y.copy(); b[:10] = 1
    >>> va, vb, d = paired_bootstrap_seeds(y, [a], [b], n_boot=200, random_state=0)
    >>> va.tolist(), vb.tolist(), d.shape, bool(d.max() < 0)
    ([1.0], [0.9], (200, 1), True)
    """
    _check_metric(metric)
    if len(preds_a) != len(preds_b) or not len(preds_a):
        raise ValueError(f"need the same number (>= 1) of seeds for A and B, got {len(preds_a)} and {len(preds_b)}")
    cells, counts, k = _cells(y_true, *preds_a, *preds_b, metric=metric)
    t, n_s = cells[:, 0], len(preds_a)

    def values(w):  # [B, seeds] for A and for B
        va = np.stack([_metric_from_weights(w, t, cells[:, 1 + i], k, metric) for i in range(n_s)], 1)
        vb = np.stack([_metric_from_weights(w, t, cells[:, 1 + n_s + i], k, metric) for i in range(n_s)], 1)
        return va, vb

    va0, vb0 = values(counts[None].astype(np.float64))
    boots = [np.subtract(*values(w)[::-1]) for w in _resample(counts, n_boot, np.random.default_rng(random_state))]
    return va0[0], vb0[0], np.concatenate(boots)


def mcnemar_from_counts(b: int, c: int, *, exact: bool | None = None, correction: bool = True) -> McNemarResult:
    """McNemar's test from the discordant counts of a 2x2 table.

    ``exact=None`` uses the exact binomial test when ``b + c < 25``; otherwise the chi-squared
    statistic ``(|b - c| - 1)^2 / (b + c)`` (without ``-1`` when ``correction=False``), 1 d.o.f.

    Examples
    --------
    >>> res = mcnemar_from_counts(6, 16, exact=False, correction=False)  # Wikipedia's example
    >>> round(res.statistic, 3), round(res.pvalue, 3)
    (4.545, 0.033)
    """
    b, c = int(b), int(c)
    exact = (b + c) < 25 if exact is None else exact
    if b + c == 0:
        return McNemarResult(0.0, 1.0, b, c, bool(exact))
    if exact:
        p = stats.binomtest(min(b, c), b + c, 0.5).pvalue
        return McNemarResult(float(min(b, c)), float(min(1.0, p)), b, c, True)
    stat = (max(abs(b - c) - (1 if correction else 0), 0)) ** 2 / (b + c)
    return McNemarResult(float(stat), float(stats.chi2.sf(stat, 1)), b, c, False)


def mcnemar(y_true, pred_a, pred_b, *, exact: bool | None = None, correction: bool = True) -> McNemarResult:
    """McNemar's test of whether classifiers A and B have the same error rate on the same examples.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.zeros(10, int); a = y.copy(); b = np.r_[np.ones(8, int), np.zeros(2, int)]
    >>> res = mcnemar(y, a, b)
    >>> res.b, res.c, round(res.pvalue, 4)
    (8, 0, 0.0078)
    """
    y_true, pred_a, pred_b = map(np.asarray, (y_true, pred_a, pred_b))
    ok_a, ok_b = pred_a == y_true, pred_b == y_true
    return mcnemar_from_counts(int((ok_a & ~ok_b).sum()), int((~ok_a & ok_b).sum()), exact=exact, correction=correction)


def expected_layer(scores, layers=None) -> float:
    """Expected layer of Tenney, Das & Pavlick (2019), "BERT Rediscovers the Classical NLP Pipeline".

    ``E[l] = sum_{l>=1} l * Delta_l / sum_{l>=1} Delta_l`` with ``Delta_l = score(l) - score(l-1)``:
    the layer at which, on average, the score is gained. ``scores[0]`` is the baseline (e.g. the
    embeddings, layer 0). Tenney et al. compute ``score(l)`` from a probe on a scalar mix of
    layers ``0..l`` (cumulative scoring), which keeps the deltas non-negative; here ``scores`` are
    whatever per-layer scores are passed (independent per-layer probes give a similar picture but
    can have negative deltas, which are kept, as in the formula).

    Examples
    --------
    >>> round(expected_layer([0.5, 0.5, 0.5, 0.9, 0.9]), 6)  # all the gain at layer 3
    3.0
    """
    s = np.asarray(scores, dtype=np.float64)
    layer_ids = np.arange(len(s)) if layers is None else np.asarray(layers, dtype=np.float64)
    delta = np.diff(s)
    total = delta.sum()
    if len(s) < 2 or total == 0:
        return float("nan")
    return float((layer_ids[1:] * delta).sum() / total)


def center_of_gravity(weights, layers=None) -> float:
    """Centre of gravity ``sum_l l * w_l / sum_l w_l`` of per-layer weights (Tenney et al. 2019:
    the softmax-normalised scalar-mix weights ``s_l``).

    Examples
    --------
    >>> center_of_gravity([0.0, 1.0, 1.0, 0.0])
    1.5
    """
    w = np.asarray(weights, dtype=np.float64)
    layer_ids = np.arange(len(w)) if layers is None else np.asarray(layers, dtype=np.float64)
    return float((layer_ids * w).sum() / w.sum())
