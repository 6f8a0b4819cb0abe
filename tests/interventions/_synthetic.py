"""Synthetic concept data whose sample statistics are exactly known."""

from __future__ import annotations

import numpy as np


def exact_concept_data(n: int, d: int, class_means: np.ndarray, y: np.ndarray, seed: int = 0,
                       offset: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Features ``X = N B^T + class_means[y] + offset`` and the basis ``B`` of the noise.

    ``class_means`` (``[k, d]``) span the concept subspace ``V``; ``B`` (``[d, d - dim V]``) is an orthonormal
    basis of its orthogonal complement. The noise ``N`` has sample mean 0, sample covariance exactly ``I`` and
    exactly zero sample cross-covariance with every class indicator, so the sample covariance of ``X`` is
    block-diagonal in ``(V, complement)`` and the complement carries no linear information about ``y``.
    """
    rng = np.random.default_rng(seed)
    k = class_means.shape[0]
    u, s, _ = np.linalg.svd(class_means.T - class_means.mean(0)[:, None])
    dim_v = int((s > 1e-10 * s[0]).sum())
    full, _ = np.linalg.qr(np.concatenate([u[:, :dim_v], rng.normal(size=(d, d - dim_v))], axis=1))
    basis = full[:, dim_v:]
    indicators = np.eye(k)[y][:, : k - 1]  # with the constant column they span every class indicator
    g = rng.normal(size=(n, d - dim_v))
    q, _ = np.linalg.qr(np.concatenate([np.ones((n, 1)), indicators, g], axis=1))
    noise = q[:, k:] * np.sqrt(n - 1)  # orthogonal to 1 and to each indicator; Gram = (n - 1) I
    return noise @ basis.T + class_means[y] + offset, basis
