"""Layer x layer similarity matrices that stream over rows (stores larger than RAM).

Linear CKA and the orthogonal Procrustes distance depend on the data only
through ``X'X``, ``Y'Y``, ``Y'X`` and the column sums, so they are exact when
accumulated chunk by chunk in float64: memory is ``O(features^2)`` per layer
pair, whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

__all__ = ["CrossMoments", "cka_matrix"]


class CrossMoments:
    """Running float64 moments of several layers of two representations.

    Rows are shifted by the first chunk's mean before accumulating (the shifted
    algorithm), which keeps the centring numerically exact enough for 1e-6
    agreement with a two-pass computation.
    """

    def __init__(self, n_a: int, n_b: int):
        self.n = 0
        self._shift_a: list[np.ndarray] | None = None
        self._shift_b: list[np.ndarray] | None = None
        self.sum_a: list[np.ndarray] = []
        self.sum_b: list[np.ndarray] = []
        self.aa: list[np.ndarray] = []
        self.bb: list[np.ndarray] = []
        self.ba: dict[tuple[int, int], np.ndarray] = {}
        self.n_a, self.n_b = n_a, n_b

    def update(self, chunk_a: Sequence[np.ndarray], chunk_b: Sequence[np.ndarray]) -> None:
        """Add the same rows of every layer of A and of B."""
        a = [np.asarray(x, dtype=np.float64) for x in chunk_a]
        b = [np.asarray(y, dtype=np.float64) for y in chunk_b]
        rows = {x.shape[0] for x in a} | {y.shape[0] for y in b}
        if len(rows) != 1:
            raise ValueError(f"every layer's chunk must have the same rows, got row counts {sorted(rows)}")
        if self._shift_a is None:
            self._shift_a = [x.mean(0) for x in a]
            self._shift_b = [y.mean(0) for y in b]
            self.sum_a = [np.zeros(x.shape[1]) for x in a]
            self.sum_b = [np.zeros(y.shape[1]) for y in b]
            self.aa = [np.zeros((x.shape[1], x.shape[1])) for x in a]
            self.bb = [np.zeros((y.shape[1], y.shape[1])) for y in b]
        a = [x - s for x, s in zip(a, self._shift_a)]
        b = [y - s for y, s in zip(b, self._shift_b)]
        for i, x in enumerate(a):
            self.sum_a[i] += x.sum(0)
            self.aa[i] += x.T @ x
        for j, y in enumerate(b):
            self.sum_b[j] += y.sum(0)
            self.bb[j] += y.T @ y
            for i, x in enumerate(a):
                key = (i, j)
                prod = y.T @ x
                self.ba[key] = self.ba[key] + prod if key in self.ba else prod
        self.n += next(iter(rows))

    def _centred(self, m: np.ndarray, s_left: np.ndarray, s_right: np.ndarray) -> np.ndarray:
        return m - np.outer(s_left, s_right) / self.n

    def linear_cka(self) -> np.ndarray:
        """``[layers_a, layers_b]`` linear CKA."""
        if self.n < 2:
            raise ValueError("need at least 2 rows")
        aa = [self._centred(m, s, s) for m, s in zip(self.aa, self.sum_a)]
        bb = [self._centred(m, s, s) for m, s in zip(self.bb, self.sum_b)]
        norm_a = [np.linalg.norm(m) for m in aa]
        norm_b = [np.linalg.norm(m) for m in bb]
        out = np.empty((len(aa), len(bb)))
        for (i, j), m in self.ba.items():
            c = self._centred(m, self.sum_b[j], self.sum_a[i])
            out[i, j] = np.sum(c * c) / (norm_a[i] * norm_b[j])
        return out

    def procrustes(self) -> np.ndarray:
        """``[layers_a, layers_b]`` orthogonal Procrustes distance."""
        tr_a = [np.trace(self._centred(m, s, s)) for m, s in zip(self.aa, self.sum_a)]
        tr_b = [np.trace(self._centred(m, s, s)) for m, s in zip(self.bb, self.sum_b)]
        out = np.empty((len(tr_a), len(tr_b)))
        for (i, j), m in self.ba.items():
            c = self._centred(m, self.sum_b[j], self.sum_a[i])
            nuc = np.linalg.svd(c, compute_uv=False).sum() / np.sqrt(tr_a[i] * tr_b[j])
            out[i, j] = max(2 - 2 * nuc, 0.0)
        return out


def cka_matrix(
    layers_a: Sequence,
    layers_b: Sequence,
    *,
    chunk_rows: int = 8192,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Linear CKA and Procrustes distance between every layer of A and every layer of B.

    Parameters
    ----------
    layers_a, layers_b : sequences of 2-D array-likes
        One ``[n, features]`` array per layer (NumPy memory maps are read
        ``chunk_rows`` rows at a time, so they may exceed RAM). All layers of
        both sides describe the same ``n`` rows in the same order.
    chunk_rows : int
        Rows read per step.

    Returns
    -------
    dict
        ``{"linear_cka": [La, Lb], "procrustes": [La, Lb]}``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 6))
    >>> m = cka_matrix([X, 2 * X], [X, rng.normal(size=(500, 6))], chunk_rows=128)
    >>> np.round(m["linear_cka"][:, 0], 6).tolist()
    [1.0, 1.0]
    """
    if not layers_a or not layers_b:
        raise ValueError("each side needs at least one layer")
    n = {len(x) for x in layers_a} | {len(y) for y in layers_b}
    if len(n) != 1:
        raise ValueError(f"every layer must have the same number of rows; got {sorted(n)}")
    total = next(iter(n))
    acc = CrossMoments(len(layers_a), len(layers_b))
    steps = range(0, total, chunk_rows)
    for start in tqdm(steps, desc="similarity", unit="chunk", disable=not progress):
        stop = min(start + chunk_rows, total)
        acc.update([x[start:stop] for x in layers_a], [y[start:stop] for y in layers_b])
    return {"linear_cka": acc.linear_cka(), "procrustes": acc.procrustes()}
