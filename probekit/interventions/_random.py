"""The random-subspace control: project out ``rank`` random directions.

Amnesic probing (Elazar et al. 2021) compares the effect of erasing a concept
with the effect of erasing a random subspace of the same dimension: if the two
change behaviour alike, the change says nothing about the concept.
:func:`random_eraser_like` makes that control for a fitted eraser.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from probekit.interventions._eraser import Eraser
from probekit.interventions._rows import resolve_rows
from probekit.validation import keep_params

__all__ = ["RandomEraser", "random_eraser_like"]

logger = logging.getLogger(__name__)


def random_basis(d: int, rank: int, seed: int) -> torch.Tensor:
    """An orthonormal basis ``[d, rank]`` of a uniformly random ``rank``-dimensional subspace.

    Examples
    --------
    >>> b = random_basis(5, 2, seed=0)
    >>> bool(torch.allclose(b.T @ b, torch.eye(2, dtype=torch.float64)))
    True
    """
    if not 0 <= rank <= d:
        raise ValueError(f"rank must be in [0, {d}], got {rank}")
    g = np.random.default_rng(seed).standard_normal((d, rank))
    q, r = np.linalg.qr(g)
    q = q * np.sign(np.diag(r))[None, :] if rank else q  # the Haar-distributed basis
    return torch.from_numpy(np.ascontiguousarray(q))


class RandomEraser(Eraser):
    """Orthogonal projection out of ``rank`` random directions about the feature mean.

    Parameters
    ----------
    site : Site or str, optional
    rank : int, default=1
        Directions removed.
    random_state : int, default=0
        Seed of the random subspace.

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.interventions import RandomEraser
    >>> X = np.random.default_rng(0).normal(size=(50, 6))
    >>> RandomEraser(rank=2, random_state=1).fit(X).rank_
    2
    """

    method = "random"
    _json_params = ("rank", "random_state")

    def __init__(self, site=None, *, rank: int = 1, random_state: int = 0, allow_other_model: bool = False):
        keep_params(self, locals())

    def fit(self, X, y=None, *, level: str | None = None, pooling: str | None = None, rows=None,
            split: str | None = None, chunk_rows: int = 32768) -> RandomEraser:
        """Fit the mean of ``X`` (streamed from a store like :meth:`LeaceEraser.fit`); labels are ignored."""
        src = resolve_rows(X, y, site=self.site, level=level, pooling=pooling, rows=rows, split=split,
                           need_labels=False)
        total = torch.zeros(src.d, dtype=torch.float64)
        for x, _ in src.chunks(chunk_rows, torch.float64):
            if not bool(torch.isfinite(x).all()):
                raise ValueError("features contain NaN or infinite values")
            total += x.sum(0)
        return self._fit_mean(total / src.n, src.d, src.describe, src.site)

    def _fit_mean(self, mean: torch.Tensor, d: int, describe: dict, site) -> RandomEraser:
        basis = random_basis(d, int(self.rank), int(self.random_state))
        self._set_fitted(basis, basis.T.clone(), mean, (), describe, site)
        return self


def random_eraser_like(eraser: Eraser, *, random_state: int = 0) -> RandomEraser:
    """The random-subspace control of ``eraser``: same site, width, rank and mean, random directions.

    Parameters
    ----------
    eraser : Eraser
        A fitted eraser (LEACE, INLP, ...).
    random_state : int
        Seed of the random subspace.

    Returns
    -------
    RandomEraser
        Removes ``eraser.rank_`` random orthonormal directions about
        ``eraser.bias_`` (the mean the eraser was fitted with).

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.interventions import LeaceEraser, random_eraser_like
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 4, 300); X = rng.normal(size=(300, 10)) + np.eye(4, 10)[y]
    >>> control = random_eraser_like(LeaceEraser().fit(X, y), random_state=3)
    >>> control.rank_, control.d_
    (3, 10)
    """
    eraser._check_fitted()
    out = RandomEraser(site=None if eraser.site_ is None else str(eraser.site_), rank=eraser.rank_,
                       random_state=random_state, allow_other_model=getattr(eraser, "allow_other_model", False))
    describe = {"source": "like", "like_method": eraser.method, "like_fingerprint": eraser.fingerprint()}
    if eraser.fitted_on is not None:  # the control acts on the same model as the eraser it imitates
        describe["model"] = eraser.fitted_on
    return out._fit_mean(eraser.bias_.clone(), eraser.d_, describe, eraser.site_)
