"""LEACE: least-squares concept erasure in closed form (Belrose et al. 2023), fitted streaming.

For features ``X`` (mean ``mu``, covariance ``S``) and one-hot concept labels
``Z`` with cross-covariance ``S_xz``, the least-squares eraser that leaves no
linear correlation with ``Z`` is

    r(x) = x - W^+ P W (x - mu),

with ``W = (S^{1/2})^+`` the whitening matrix and ``P`` the orthogonal
projection onto the column space of ``W S_xz`` (Belrose et al. 2023,
Theorem 4.3). After it, every class has the same mean as the whole data, so no
linear classifier beats the best constant predictor (for any convex loss) on the
data it was fitted on. The rank is at most ``classes - 1``.

The statistics are accumulated in float64 over row chunks
(:class:`LeaceStatistics`, merged with the pairwise update of Chan, Golub and
LeVeque), so a store's site is fitted in memory bounded by ``d x d`` plus one
chunk. A rank-deficient covariance is handled as a pseudo-inverse does:
eigenvalues at or below ``max eigenvalue * d * eps`` are treated as zero in
both ``S^{1/2}`` and its pseudo-inverse.

The ``concept-erasure`` package also falls back towards an orthogonal
projection when erasure would raise the trace of the covariance; with the
covariance the eraser is built from that cannot happen (the erased covariance
is ``S^{1/2} (I - U U^T) S^{1/2}``, ``U`` the kept directions, whose trace is
``tr S - tr(U^T S U)``), so probekit has no such step.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from probekit.interventions._eraser import Eraser
from probekit.interventions._rows import resolve_rows
from probekit.validation import keep_params

__all__ = ["LeaceEraser", "LeaceStatistics", "linear_shrinkage"]

logger = logging.getLogger(__name__)


class LeaceStatistics:
    """Running float64 mean, covariance and cross-covariance of features and one-hot labels.

    Parameters
    ----------
    d : int
        Feature width.
    n_classes : int
        Number of classes (labels are codes ``0 .. n_classes - 1``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(100, 3)); z = rng.integers(0, 2, 100)
    >>> stats = LeaceStatistics(3, 2).update(x[:60], z[:60]).update(x[60:], z[60:])
    >>> bool(np.allclose(stats.covariance().numpy(), np.cov(x.T)))
    True
    """

    def __init__(self, d: int, n_classes: int):
        if d < 1 or n_classes < 1:
            raise ValueError(f"d and n_classes must be >= 1, got {d} and {n_classes}")
        self.d, self.k = int(d), int(n_classes)
        self.n = 0
        self.mean_x = torch.zeros(self.d, dtype=torch.float64)
        self.mean_z = torch.zeros(self.k, dtype=torch.float64)
        self.scatter_xx = torch.zeros(self.d, self.d, dtype=torch.float64)
        self.scatter_xz = torch.zeros(self.d, self.k, dtype=torch.float64)
        self.counts = np.zeros(self.k, dtype=np.int64)

    def update(self, x, codes) -> LeaceStatistics:
        """Add rows ``x`` (``[m, d]``, any float dtype) with class codes ``codes`` (``[m]``)."""
        given = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        x = given.to(torch.float64)
        owned = x.data_ptr() != given.data_ptr()  # a converted copy may be centred in place
        codes = np.asarray(codes, dtype=np.int64)
        if x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError(f"expected rows of width {self.d}, got shape {tuple(x.shape)}")
        m = x.shape[0]
        if len(codes) != m:
            raise ValueError(f"{len(codes)} labels for {m} rows")
        if m == 0:
            return self
        if codes.min() < 0 or codes.max() >= self.k:
            raise ValueError(f"class codes must be in [0, {self.k}), got {codes.min()}..{codes.max()}")
        mx = x.mean(0)
        if not bool(torch.isfinite(mx).all()):  # a NaN or infinity in a column makes its mean non-finite
            bad = (~torch.isfinite(x)).any(dim=1).nonzero()
            where = f" (row {self.n + int(bad[0])} of the rows read)" if len(bad) else ""
            raise ValueError(f"features contain NaN or infinite values{where}")
        cnt = np.bincount(codes, minlength=self.k)
        z = torch.zeros(m, self.k, dtype=torch.float64)
        z[torch.arange(m), torch.from_numpy(codes)] = 1.0
        mz = torch.from_numpy(cnt / m)
        xc = x.sub_(mx) if owned else x - mx
        sxx = xc.T @ xc
        sxz = xc.T @ (z - mz)
        n0, n1 = self.n, self.n + m
        dx, dz = mx - self.mean_x, mz - self.mean_z
        w = n0 * m / n1
        self.scatter_xx += sxx + w * torch.outer(dx, dx)
        self.scatter_xz += sxz + w * torch.outer(dx, dz)
        self.mean_x += dx * (m / n1)
        self.mean_z += dz * (m / n1)
        self.n = n1
        self.counts += cnt
        return self

    def covariance(self) -> torch.Tensor:
        """Sample covariance of the features (``n - 1`` in the denominator, symmetrised)."""
        self._need(2)
        s = (self.scatter_xx + self.scatter_xx.T) / 2
        return s / (self.n - 1)

    def cross_covariance(self) -> torch.Tensor:
        """Sample cross-covariance of features and one-hot labels, ``[d, n_classes]``."""
        self._need(2)
        return self.scatter_xz / (self.n - 1)

    def _need(self, n: int) -> None:
        if self.n < n:
            raise ValueError(f"{self.n} rows seen; at least {n} are needed")


def linear_shrinkage(s_biased: torch.Tensor, n: int) -> torch.Tensor:
    """Linear shrinkage of a covariance towards a multiple of the identity.

    Returns ``a S + (1 - a) tr(S)/p I`` with ``a = 1 - (tr(S)^2 / n) /
    (||S||_F^2 - tr(S)^2 / p)``, clipped to ``[0, 1]``: the distribution-free
    estimator that is asymptotically optimal in Frobenius norm as ``p`` and
    ``n`` grow together (Bai, Li and Yao, "On the strong convergence of the
    optimal linear shrinkage estimator for large dimensional covariance
    matrix", 2013). ``s_biased`` is the covariance with ``n`` in the
    denominator.

    Examples
    --------
    >>> s = torch.eye(3, dtype=torch.float64) * 2
    >>> bool(torch.allclose(linear_shrinkage(s, 10), s))
    True
    """
    p = s_biased.shape[-1]
    tr = torch.trace(s_biased)
    denom = (s_biased * s_biased).sum() - tr * tr / p
    if float(denom) <= 0.0:  # already a multiple of the identity
        return s_biased.clone()
    a = float(torch.clamp(1 - (tr * tr / n) / denom, 0.0, 1.0))
    return a * s_biased + (1 - a) * (tr / p) * torch.eye(p, dtype=s_biased.dtype)


def leace_factors(stats: LeaceStatistics, *, shrinkage: bool = False, svd_rtol: float = 1e-8,
                  svd_atol: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """``L`` ``[d, r]`` and ``R`` ``[r, d]`` of the LEACE eraser from accumulated statistics, and diagnostics."""
    sigma = stats.covariance()
    if shrinkage:
        sigma = linear_shrinkage(sigma * ((stats.n - 1) / stats.n), stats.n)
    evals, evecs = torch.linalg.eigh(sigma)
    top = float(evals[-1])
    keep = evals > top * sigma.shape[-1] * torch.finfo(torch.float64).eps
    ev = evals.clamp_min(0.0)
    root = torch.where(keep, ev.sqrt(), torch.zeros_like(ev))
    inv_root = torch.where(keep, ev.clamp_min(torch.finfo(torch.float64).tiny).rsqrt(), torch.zeros_like(ev))
    whiten = (evecs * inv_root) @ evecs.T
    unwhiten = (evecs * root) @ evecs.T
    u, s, _ = torch.linalg.svd(whiten @ stats.cross_covariance(), full_matrices=False)
    smax = float(s[0]) if len(s) else 0.0
    kept = s > max(svd_atol, svd_rtol * smax)
    if smax == 0.0:
        kept[:] = False
    u = u[:, kept]
    info = {"covariance_rank": int(keep.sum()), "singular_values": s.tolist(), "shrinkage": bool(shrinkage)}
    return unwhiten @ u, u.T @ whiten, info


class LeaceEraser(Eraser):
    """LEACE concept eraser (closed form), fitted from a store site streaming or from arrays.

    Parameters
    ----------
    site : Site or str, optional
        The site to read when fitting from an :class:`~probekit.store.ActivationStore`
        (recorded for in-memory features).
    shrinkage : bool, default=False
        Estimate the covariance with linear shrinkage towards a multiple of the
        identity (helps when rows are few compared with ``d``); the plain
        sample covariance otherwise. The erasure guarantee holds either way.
    svd_rtol, svd_atol : float, default=1e-8 and 0.0
        Singular values of the whitened cross-covariance at or below
        ``max(svd_atol, svd_rtol * largest)`` are dropped (``svd_atol=0.01``
        with ``shrinkage=True`` is the ``concept-erasure`` package's default).
        Dropped directions keep a trace of linear correlation.
    chunk_rows : int, default=32768
        Rows read and converted to float64 at a time.

    Attributes
    ----------
    n_rows_ : int
        Rows fitted on.
    class_counts_ : ndarray
        Rows per class (order of ``classes_``).
    fit_seconds_ : float
    (and those of :class:`Eraser`)

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.interventions import LeaceEraser
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 500)
    >>> X = rng.normal(size=(500, 8)) + np.eye(3, 8)[y] * 2
    >>> eraser = LeaceEraser().fit(X, y)
    >>> eraser.rank_
    2
    >>> Xe = eraser(X)
    >>> means = np.stack([Xe[y == c].mean(0) for c in range(3)])
    >>> bool(np.abs(means - Xe.mean(0)).max() < 1e-9)
    True

    From a store (word rows of a task's train split, streamed from disk):

    >>> import probekit, tempfile, transformers
    >>> from probekit.data import build_task
    >>> from probekit.probes import extract_task
    >>> m = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> upos = build_task("upos", "rt", limit=20)
    >>> store = extract_task(m, upos, tempfile.mkdtemp() + "/upos", progress=False)
    >>> eraser = LeaceEraser("L1.resid").fit(store, upos)
    >>> eraser.rank_ == len(upos.label_names) - 1
    True
    """

    method = "leace"
    _json_params = ("shrinkage", "svd_rtol", "svd_atol", "chunk_rows")

    def __init__(self, site=None, *, shrinkage: bool = False, svd_rtol: float = 1e-8, svd_atol: float = 0.0,
                 chunk_rows: int = 32768, allow_other_model: bool = False):
        keep_params(self, locals())

    def fit(self, X, y=None, *, level: str | None = None, pooling: str | None = None, rows=None,
            split: str | None = None) -> LeaceEraser:
        """Fit on features and class labels.

        Parameters
        ----------
        X : array-like [n, d], torch.Tensor, ActivationStore or SiteView
            In-memory features, or a store read at ``site`` chunk by chunk.
        y : array-like [n] or Task
            One class label per row (store rows in store order), or a word- or
            sentence-level probing task whose examples the store holds (its
            ``split`` rows are used, by default ``"train"``).
        level : {"token", "word", "sentence"}, optional
            Store rows (default: the task's level, else ``"word"``).
        pooling : str, optional
            Stored pooling of word/sentence rows (default ``"mean"``).
        rows : bool mask or indices, optional
            Only these rows (combined with the task's split).
        split : str, optional
            The task split to fit on.

        Returns
        -------
        self
        """
        if self.svd_rtol < 0 or self.svd_atol < 0:
            raise ValueError("svd_rtol and svd_atol must be >= 0")
        t0 = time.perf_counter()
        src = resolve_rows(X, y, site=self.site, level=level, pooling=pooling, rows=rows, split=split)
        stats = LeaceStatistics(src.d, len(src.classes))
        for x, codes in src.chunks(self.chunk_rows):
            stats.update(x, codes)
        left, right, info = leace_factors(stats, shrinkage=self.shrinkage, svd_rtol=self.svd_rtol,
                                          svd_atol=self.svd_atol)
        self.n_rows_ = stats.n
        self.class_counts_ = stats.counts.copy()
        self.fit_seconds_ = time.perf_counter() - t0
        if left.shape[1] == 0:
            logger.warning("LEACE found no linear correlation with the labels: the eraser is the identity")
        fit_info = {**src.describe, "class_counts": stats.counts.tolist(), **info}
        self._set_fitted(left, right, stats.mean_x.clone(), src.classes, fit_info, src.site)
        logger.info("fitted %r on %d rows in %.2f s", self, stats.n, self.fit_seconds_)
        return self
