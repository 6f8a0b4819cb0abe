"""Representational similarity measures (all accumulate in float64).

Every function takes two representations of the same ``n`` inputs, ``X``
``[n, p]`` and ``Y`` ``[n, q]`` (NumPy arrays, memory maps or torch tensors;
rows are examples or tokens), and returns a float.

References
----------
Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited" (linear and RBF CKA).
Nguyen, Raghu & Kornblith 2021, "Do Wide and Deep Networks Learn the Same Things?" (minibatch CKA).
Raghu et al. 2017, "SVCCA". Morcos, Raghu & Bengio 2018, "Insights on representational similarity
in neural networks with canonical correlation" (PWCCA). Ding, Denain & Steinhardt 2021, "Grounding
Representation Similarity with Statistical Testing" (orthogonal Procrustes distance).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "as_float64",
    "linear_cka",
    "rbf_cka",
    "minibatch_cka",
    "unbiased_hsic",
    "cca_correlations",
    "svcca",
    "pwcca",
    "procrustes_distance",
    "mean_cosine",
]


def as_float64(x) -> np.ndarray:
    """A 2-D float64 NumPy copy of ``x`` (array, memmap or tensor)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"a representation is 2-D [n, features], got shape {a.shape}")
    return a


def _pair(X, Y) -> tuple[np.ndarray, np.ndarray]:
    X, Y = as_float64(X), as_float64(Y)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must describe the same inputs: {X.shape[0]} rows vs {Y.shape[0]}")
    if X.shape[0] < 2:
        raise ValueError("need at least 2 rows to compare representations")
    return X - X.mean(0), Y - Y.mean(0)


def linear_cka(X, Y) -> float:
    """Linear CKA, computed in feature space: ``||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F)``.

    Equal to the Gram-matrix form of Kornblith et al. (2019) but needs memory
    ``O(p q)``, not ``O(n^2)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 8))
    >>> round(linear_cka(X, X), 6)
    1.0
    >>> round(linear_cka(X, 3 * X @ np.linalg.qr(rng.normal(size=(8, 8)))[0]), 6)
    1.0
    """
    X, Y = _pair(X, Y)
    return _cka_from_products(Y.T @ X, X.T @ X, Y.T @ Y)


def _cka_from_products(yx: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> float:
    den = np.linalg.norm(xx) * np.linalg.norm(yy)
    return float(np.sum(yx * yx) / den) if den > 0 else float("nan")


def _rbf_gram(X: np.ndarray, sigma_frac: float) -> np.ndarray:
    sq = np.sum(X * X, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0)
    sigma2 = sigma_frac**2 * np.median(d2[np.triu_indices_from(d2, 1)])
    return np.exp(-d2 / (2 * sigma2)) if sigma2 > 0 else np.ones_like(d2)


def _center_gram(K: np.ndarray) -> np.ndarray:
    return K - K.mean(0) - K.mean(1)[:, None] + K.mean()


def rbf_cka(X, Y, *, sigma: float = 0.8, max_rows: int = 5000) -> float:
    """RBF-kernel CKA with bandwidth ``sigma`` times the median pairwise distance.

    Needs two ``n x n`` Gram matrices, so ``n`` is capped at ``max_rows``
    (subsample first; a larger input is an error, never silently cut).
    """
    X, Y = _pair(X, Y)
    if X.shape[0] > max_rows:
        raise ValueError(f"rbf_cka builds n x n Gram matrices; n={X.shape[0]} exceeds max_rows={max_rows}. "
                         "Subsample the rows, or raise max_rows if memory allows.")
    K, L = _center_gram(_rbf_gram(X, sigma)), _center_gram(_rbf_gram(Y, sigma))
    den = np.linalg.norm(K) * np.linalg.norm(L)
    return float(np.sum(K * L) / den) if den > 0 else float("nan")


def unbiased_hsic(K: np.ndarray, L: np.ndarray) -> float:
    """Unbiased HSIC estimator (Song et al. 2012) of two ``n x n`` Gram matrices, ``n >= 4``."""
    n = K.shape[0]
    if n < 4:
        raise ValueError("the unbiased HSIC estimator needs at least 4 rows per batch")
    K = K.copy()
    L = L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    kl = K @ L
    ones_k, ones_l = K.sum(), L.sum()
    value = np.trace(kl) + ones_k * ones_l / ((n - 1) * (n - 2)) - 2 * kl.sum() / (n - 2)
    return float(value / (n * (n - 3)))


def minibatch_cka(X, Y, *, batch_size: int = 1024, seed: int = 0, epochs: int = 1) -> float:
    """Linear CKA from unbiased HSIC averaged over minibatches (Nguyen et al. 2021).

    ``CKA = mean(HSIC1(K, L)) / sqrt(mean(HSIC1(K, K)) mean(HSIC1(L, L)))`` over
    random minibatches of rows (shuffled with ``seed``; a last batch smaller
    than 4 rows is merged into the previous one). Memory ``O(batch_size^2)``;
    see :func:`probekit.compare.cka_matrix` for streaming over stores.
    """
    X, Y = as_float64(X), as_float64(Y)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must describe the same inputs: {X.shape[0]} rows vs {Y.shape[0]}")
    rng = np.random.default_rng(seed)
    xy = xx = yy = 0.0
    for _ in range(epochs):
        order = rng.permutation(X.shape[0])
        for idx in _batches(order, batch_size):
            a, b = X[idx], Y[idx]
            K, L = a @ a.T, b @ b.T
            xy += unbiased_hsic(K, L)
            xx += unbiased_hsic(K, K)
            yy += unbiased_hsic(L, L)
    return float(xy / np.sqrt(xx * yy))


def _batches(order: np.ndarray, size: int) -> list[np.ndarray]:
    if size < 4:
        raise ValueError("batch_size must be at least 4")
    parts = [order[i: i + size] for i in range(0, len(order), size)]
    if len(parts) > 1 and len(parts[-1]) < 4:
        parts[-2] = np.concatenate([parts[-2], parts.pop()])
    return parts


def _whiten_basis(X: np.ndarray, keep: float | int | None) -> np.ndarray:
    """Orthonormal basis (n x k) of X's column space, optionally SVD-truncated."""
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    tol = s.max() * max(X.shape) * np.finfo(float).eps if s.size else 0
    k = int(np.sum(s > tol))
    if keep is not None:
        if isinstance(keep, float):
            if not 0 < keep <= 1:
                raise ValueError(f"a variance fraction must be in (0, 1], got {keep}")
            var = np.cumsum(s**2) / np.sum(s**2)
            k = min(k, int(np.searchsorted(var, keep - 1e-12) + 1))
        else:
            k = min(k, int(keep))
    return U[:, :k]


def cca_correlations(X, Y, *, keep: float | int | None = None) -> np.ndarray:
    """Canonical correlations of X and Y, largest first (optionally after SVD truncation)."""
    X, Y = _pair(X, Y)
    Qx, Qy = _whiten_basis(X, keep), _whiten_basis(Y, keep)
    return np.clip(np.linalg.svd(Qx.T @ Qy, compute_uv=False), 0, 1)


def svcca(X, Y, *, keep: float | int = 0.99) -> float:
    """SVCCA: mean canonical correlation after keeping ``keep`` of each side's variance (or ``keep`` dims)."""
    return float(np.mean(cca_correlations(X, Y, keep=keep)))


def pwcca(X, Y, *, keep: float | int | None = None, symmetric: bool = False) -> float:
    """Projection-weighted CCA (Morcos et al. 2018), weights from X's side.

    PWCCA is one-directional: it weights each canonical correlation by how much
    of ``X`` its canonical variate accounts for, so ``pwcca(X, Y)`` and
    ``pwcca(Y, X)`` differ in general. Kornblith et al. (2019) use it
    symmetrised over the two directions; ``symmetric=True`` gives that form,
    as the mean ``(pwcca(X, Y) + pwcca(Y, X)) / 2`` (half their sum, so it
    ranks layer pairs as the sum does and stays in [0, 1]).

    Parameters
    ----------
    X, Y : array-like, [n, p] and [n, q]
        Two representations of the same ``n`` inputs.
    keep : float or int, optional
        Keep this fraction of each side's variance (float) or this many
        dimensions (int) before CCA; default: the full rank.
    symmetric : bool
        Average both weighting directions (default: weights from ``X``).

    Examples
    --------
    Canonical pairs with correlations 1 and 0.5, weighted 3 : 1 from X's side
    and 1 : 3 from Y's:

    >>> import numpy as np
    >>> e1, e2 = np.array([1, -1, 0, 0]) / np.sqrt(2), np.array([0, 0, 1, -1]) / np.sqrt(2)
    >>> e3 = np.array([1, 1, -1, -1]) / 2
    >>> X = np.column_stack([3 * e1, e2])
    >>> Y = np.column_stack([e1, 3 * (e2 + np.sqrt(3) * e3) / 2])
    >>> round(pwcca(X, Y), 4), round(pwcca(Y, X), 4), round(pwcca(X, Y, symmetric=True), 4)
    (0.875, 0.625, 0.75)
    """
    if symmetric:
        return (pwcca(X, Y, keep=keep) + pwcca(Y, X, keep=keep)) / 2
    X, Y = _pair(X, Y)
    Qx, Qy = _whiten_basis(X, keep), _whiten_basis(Y, keep)
    U, rho, _ = np.linalg.svd(Qx.T @ Qy, full_matrices=False)
    H = Qx @ U  # canonical variates of X in sample space, [n, k]
    k = rho.shape[0]
    alpha = np.abs(H[:, :k].T @ X).sum(axis=1)
    return float(np.sum(alpha * np.clip(rho, 0, 1)) / np.sum(alpha))


def procrustes_distance(X, Y) -> float:
    """Orthogonal Procrustes distance of centred, unit-Frobenius-norm X and Y.

    ``2 - 2 ||X'Y||_*`` (Ding et al. 2021): 0 for identical shapes up to rotation
    and scale, at most 2. Needs only ``X'Y``, so it streams like linear CKA.
    """
    X, Y = _pair(X, Y)
    nx, ny = np.linalg.norm(X), np.linalg.norm(Y)
    nuc = np.linalg.svd(X.T @ Y, compute_uv=False).sum() / (nx * ny)
    return float(max(2 - 2 * nuc, 0.0))


def mean_cosine(X, Y) -> float:
    """Mean cosine similarity of corresponding rows (same shape required)."""
    X, Y = as_float64(X), as_float64(Y)
    if X.shape != Y.shape:
        raise ValueError(f"mean_cosine compares same-shape representations; got {X.shape} and {Y.shape}")
    num = np.sum(X * Y, axis=1)
    den = np.linalg.norm(X, axis=1) * np.linalg.norm(Y, axis=1)
    return float(np.mean(num / np.maximum(den, 1e-300)))
