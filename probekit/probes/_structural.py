"""Structural probes of Hewitt & Manning (2019): distance and depth probes of rank ``r``.

The distance probe learns ``B`` ``[r, d]`` so that ``||B (h_i - h_j)||^2``
fits the tree distance between words ``i`` and ``j``; the depth probe so that
``||B h_i||^2`` fits the depth of word ``i``. The loss is the L1 error per
sentence normalised by the sentence length squared (distance) or the length
(depth), averaged over the sentences of a batch, as in the paper.

The input is ragged (one ``[n_words, d]`` matrix per sentence), so these
follow the scikit-learn parameter/attribute contract (``clone`` works) but
not the 2-D ``X`` of scikit-learn's estimator checks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch.nn.utils.rnn import pad_sequence

from probekit.probes._base import SHARED_CONSTRAINTS, seed_from
from probekit.probes._engine import resolve_device
from probekit.probes._tree_metrics import depth_spearman, distance_spearman, root_accuracy, uuas
from probekit.validation import Interval, keep_params, validate_params

__all__ = ["DistanceProbe", "DepthProbe"]

logger = logging.getLogger(__name__)


def _as_tensors(arrays) -> list[torch.Tensor]:
    return [torch.as_tensor(np.asarray(a, dtype=np.float32)) for a in arrays]


def _pad(sentences: list[torch.Tensor], targets: list[torch.Tensor] | None, idx, device):
    """Pad the sentences ``idx`` into ``H [b, L, d]``, ``mask [b, L]``, targets and lengths."""
    hs = [sentences[i] for i in idx]
    lengths = torch.tensor([h.shape[0] for h in hs], dtype=torch.float32)
    H = pad_sequence(hs, batch_first=True)
    L = H.shape[1]
    mask = torch.arange(L)[None, :] < lengths[:, None]
    T = None
    if targets is not None:
        ts = [targets[i] for i in idx]
        if ts[0].ndim == 2:
            T = torch.stack([F.pad(t, (0, L - t.shape[0], 0, L - t.shape[0])) for t in ts])
        else:
            T = pad_sequence(ts, batch_first=True)
        T = T.to(device)
    return H.to(device), mask.to(device), T, lengths.to(device)


class _StructuralProbe(BaseEstimator):
    """Shared training loop (not public)."""

    #: What each setting accepts; checked when ``fit`` starts (see :class:`~probekit.probes.LinearProbe`).
    _parameter_constraints = {
        **{k: v for k, v in SHARED_CONSTRAINTS.items() if k != "solver"},
        "rank": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, rank=64, *, lr=1e-3, batch_size=32, max_iter=40, tol=1e-4, early_stopping=True,
                 validation_fraction=0.1, n_iter_no_change=4, device="cpu", random_state=None):
        keep_params(self, locals())

    # subclasses: _predict_t(T, mask) and _loss(pred, gold, mask, lengths)
    def _batch_loss(self, proj, H, mask, gold, lengths):
        pred = self._predict_t(H @ proj)
        return self._loss(pred, gold, mask, lengths)

    def _check(self, X, y=None):
        if len(X) == 0:
            raise ValueError("no sentences")
        d = np.asarray(X[0]).shape[1]
        for i, h in enumerate(X):
            if np.asarray(h).ndim != 2 or np.asarray(h).shape[1] != d:
                raise ValueError(f"sentence {i} must be [n_words, {d}], got {np.asarray(h).shape}")
        if y is not None and len(y) != len(X):
            raise ValueError(f"{len(X)} sentences but {len(y)} targets")
        return d

    def fit(self, X: Sequence[np.ndarray], y: Sequence[np.ndarray]):
        """Fit on per-sentence word matrices ``X[i]`` ``[n_i, d]`` and gold targets ``y[i]``.

        Returns
        -------
        self
        """
        validate_params(self, self.get_params(deep=False))
        d = self._check(X, y)
        X, y = _as_tensors(X), _as_tensors(y)
        device = resolve_device(self.device)
        seed = seed_from(self.random_state)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        order = rng.permutation(len(X))
        n_val = int(len(X) * self.validation_fraction) if self.early_stopping else 0
        val, tr = (order[:n_val], order[n_val:]) if n_val >= 1 and len(X) - n_val >= 1 else ([], order)
        bound = 1.0 / math.sqrt(d)
        proj = ((torch.rand(d, int(self.rank), generator=gen) * 2 - 1) * bound).to(device).requires_grad_(True)
        opt = torch.optim.Adam([proj], lr=self.lr)
        bs = max(1, int(self.batch_size))
        val_batches = [_pad(X, y, val[i : i + 256], device) for i in range(0, len(val), 256)]
        best, best_loss, stall = proj.detach().clone(), float("inf"), 0
        self.n_iter_ = int(self.max_iter)
        for epoch in range(int(self.max_iter)):
            perm = rng.permutation(tr)
            total = 0.0
            for start in range(0, len(perm), bs):
                H, mask, gold, lengths = _pad(X, y, perm[start : start + bs], device)
                loss = self._batch_loss(proj, H, mask, gold, lengths)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(lengths)
            monitored = total / len(perm)
            if val_batches:
                with torch.no_grad():
                    monitored = sum(float(self._batch_loss(proj, *b)) * len(b[3]) for b in val_batches) / len(val)
            if monitored < best_loss - self.tol:
                best, best_loss, stall = proj.detach().clone(), monitored, 0
            else:
                stall += 1
            logger.debug("epoch %d: loss %.4f", epoch, monitored)
            if stall >= self.n_iter_no_change:
                self.n_iter_ = epoch + 1
                break
        self.proj_ = best.cpu().numpy()  # B transposed: [d, rank]
        self.n_features_in_ = d
        self.best_loss_ = best_loss
        return self

    def predict(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Predicted squared distances ``[n_i, n_i]`` (distance probe) or depths ``[n_i]`` (depth probe)."""
        check_is_fitted(self)
        d = self._check(X)
        if d != self.n_features_in_:
            raise ValueError(f"X has {d} features, but the probe was fitted with {self.n_features_in_}")
        out = []
        with torch.no_grad():
            proj = torch.as_tensor(self.proj_, dtype=torch.float64)
            for h in X:
                t = torch.as_tensor(np.asarray(h, dtype=np.float64)) @ proj
                out.append(self._predict_t(t[None])[0].numpy())
        return out

    # subclasses: _metric = (name, tree metric of (pred, gold, keep)) and _spearman(pred, gold)
    def score(self, X, y, keep=None) -> float:
        """The probe's tree metric of its predictions against the gold targets ``y``: UUAS of distances, root
        accuracy of depths."""
        return self._metric[1](self.predict(X), y, keep)

    def evaluate(self, X, y, keep=None) -> dict[str, float]:
        """``{"uuas" | "root_accuracy": ..., "spearman": ...}``: :meth:`score` and the Spearman correlation of
        predicted and gold distances or depths (over sentence lengths 5-50)."""
        pred = self.predict(X)
        name, metric = self._metric
        return {name: metric(pred, y, keep), "spearman": self._spearman(pred, y)}


class DistanceProbe(_StructuralProbe):
    """Distance probe: ``||B (h_i - h_j)||^2`` fits the tree distance of words ``i`` and ``j``.

    Parameters
    ----------
    rank : int, default=64
        Rank of ``B`` (``[rank, d]``).
    lr, batch_size (sentences), max_iter (epochs), tol, early_stopping,
    validation_fraction (of sentences), n_iter_no_change, device, random_state
        As for :class:`LinearProbe`.

    Attributes
    ----------
    proj_ : ndarray ``[d, rank]``, ``B`` transposed
    n_features_in_, n_iter_, best_loss_

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.probes import DistanceProbe
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(n, 8)) for n in (5, 7, 6)]
    >>> y = [np.abs(np.subtract.outer(np.arange(len(h)), np.arange(len(h)))) for h in X]  # chains
    >>> probe = DistanceProbe(rank=4, max_iter=2, random_state=0).fit(X, y)
    >>> [p.shape for p in probe.predict(X)]
    [(5, 5), (7, 7), (6, 6)]
    """

    @staticmethod
    def _predict_t(T: torch.Tensor) -> torch.Tensor:
        sq = (T * T).sum(-1)
        return (sq[:, :, None] + sq[:, None, :] - 2 * T @ T.transpose(1, 2)).clamp_min(0)

    @staticmethod
    def _loss(pred, gold, mask, lengths):
        pair = (mask[:, :, None] & mask[:, None, :]).to(pred.dtype)
        per_sentence = ((pred - gold).abs() * pair).sum((1, 2)) / lengths**2
        return per_sentence.mean()

    _metric = ("uuas", uuas)
    _spearman = staticmethod(distance_spearman)


class DepthProbe(_StructuralProbe):
    """Depth probe: ``||B h_i||^2`` fits the tree depth of word ``i``.

    Parameters and attributes as :class:`DistanceProbe`; targets are depth vectors ``[n_i]``.

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.probes import DepthProbe
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(n, 8)) for n in (5, 7)]
    >>> y = [np.arange(len(h)) for h in X]
    >>> [p.shape for p in DepthProbe(rank=4, max_iter=2, random_state=0).fit(X, y).predict(X)]
    [(5,), (7,)]
    """

    @staticmethod
    def _predict_t(T: torch.Tensor) -> torch.Tensor:
        return (T * T).sum(-1)

    @staticmethod
    def _loss(pred, gold, mask, lengths):
        per_sentence = ((pred - gold).abs() * mask.to(pred.dtype)).sum(1) / lengths
        return per_sentence.mean()

    _metric = ("root_accuracy", root_accuracy)
    _spearman = staticmethod(depth_spearman)
