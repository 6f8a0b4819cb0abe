"""Fit the probes of all layers (and seeds) of one task as one batched computation."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.base import clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from probekit.probes._base import BaseProbe, seed_from

__all__ = ["fit_batched"]

logger = logging.getLogger(__name__)


def fit_batched(estimator: BaseProbe, Xs, y, *, seeds: Sequence[int] | None = None) -> list[list[BaseProbe]]:
    """Fit one clone of ``estimator`` per (layer, seed), all in one batched torch computation.

    Every minibatch step is one ``bmm`` per probe layer over a leading probe
    dimension; the summed loss gives each probe exactly its own gradient, and
    early stopping is decided per probe (see :mod:`probekit.probes._engine`).
    A probe ``(l, s)`` therefore matches ``clone(estimator).set_params(random_state=seeds[s]).fit(Xs[l], y)``
    up to float round-off when ``seeds[s] == estimator.random_state`` (the
    validation split and minibatch order come from ``estimator.random_state``;
    the seeds vary the initialisation and dropout only). With ``solver="lbfgs"``
    the probes share one line search, so they agree at convergence only.

    Parameters
    ----------
    estimator : LinearProbe, RankProbe or MLPProbe
        Unfitted template; its parameters apply to every probe.
    Xs : array ``[n_layers, n, d]`` or list of ``[n, d]`` arrays sharing ``y``
        NumPy arrays, memory maps (any float dtype; converted to float32 in
        chunks) or tensors.
    y : array-like of shape (n,)
    seeds : sequence of int, optional
        Initialisation seeds; default ``[estimator.random_state]``.

    Returns
    -------
    list of lists
        ``probes[layer][i]`` is the fitted probe of that layer for ``seeds[i]``.

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.probes import LinearProbe, fit_batched
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 600)
    >>> Xs = [rng.normal(size=(600, 8)) + s * np.eye(8)[y] for s in (0.0, 1.0, 3.0)]
    >>> probes = fit_batched(LinearProbe(random_state=0), Xs, y)
    >>> [bool(p[0].score(X, y) > 0.9) for p, X in zip(probes, Xs)]
    [False, False, True]
    """
    if not isinstance(estimator, BaseProbe):
        raise TypeError(f"fit_batched needs a probekit probe, got {type(estimator).__name__}")
    estimator._check_params()
    if isinstance(Xs, np.ndarray) and Xs.ndim == 2:
        Xs = [Xs]
    if len(Xs) == 0:
        raise ValueError("Xs holds no layers")
    y = column_or_1d(y, warn=True)
    check_classification_targets(y)
    n = Xs[0].shape[0]
    for li, X in enumerate(Xs):
        if X.ndim != 2 or X.shape[0] != n or X.shape[0] != y.shape[0]:
            raise ValueError(f"layer {li} has shape {tuple(X.shape)}; every layer must be [n={y.shape[0]}, d]")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("a probe needs samples of at least 2 classes in the data")
    seeds = [seed_from(estimator.random_state)] if seeds is None else [int(s) for s in seeds]
    template = clone(estimator)
    params, n_iter = template._fit_many(Xs, codes, len(classes), seeds)
    d = Xs[0].shape[1]
    out: list[list[BaseProbe]] = []
    for li in range(len(Xs)):
        row = []
        for si, seed in enumerate(seeds):
            p = li * len(seeds) + si
            probe = clone(estimator).set_params(random_state=seed)
            probe._set_fitted(classes, d, [np.ascontiguousarray(a[p]) for a in params], n_iter[p])
            row.append(probe)
        out.append(row)
    logger.info("fitted %d probes (%d layers x %d seeds) in one batch", len(Xs) * len(seeds), len(Xs), len(seeds))
    return out
