"""INLP: iterative nullspace projection (Ravfogel et al. 2020).

Repeat ``n_iter`` times: fit a linear classifier of the concept on the
features projected so far, then project out its row space. The eraser removes
the span of all classifiers' (projected) weight rows with one orthogonal
projection about the training mean, ``r(x) = x - U U^T (x - mu)``, ``U`` an
orthonormal basis of that span. The accuracy of a fresh classifier on held-out
rows is recorded before the first and after every iteration.

Memory: the classifier is fitted full-batch, so the training (and evaluation)
rows are held in RAM as float32 (``n x d x 4`` bytes each); a store is read
into memory chunk by chunk (no float64 copy of the whole site). Cap the
training rows with ``max_rows`` (a seeded random sample) to bound it.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from sklearn.base import clone

from probekit.fingerprint import jsonable
from probekit.interventions._eraser import Eraser
from probekit.interventions._rows import Rows, as_tensor, encode_labels, resolve_rows
from probekit.probes import LinearProbe
from probekit.validation import keep_params

__all__ = ["InlpEraser"]

logger = logging.getLogger(__name__)


def _default_classifier(seed: int):
    return LinearProbe(solver="lbfgs", random_state=seed)


def _describe_classifier(clf) -> dict:
    params = {}
    for k, v in clf.get_params(deep=False).items():
        v = jsonable(v)
        params[k] = v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
    return {"name": type(clf).__name__, "params": params}


def _row_basis(coef: np.ndarray, basis: torch.Tensor, rtol: float) -> torch.Tensor:
    """Orthonormal directions of ``coef``'s rows outside ``basis`` (``[d, r_new]``, float64).

    A direction counts when its singular value exceeds ``rtol`` times the
    largest singular value of ``coef`` itself (so rounding left after
    projecting out ``basis`` never does).
    """
    w = torch.as_tensor(np.atleast_2d(np.asarray(coef, dtype=np.float64)))
    d, r = w.shape[1], basis.shape[1]
    scale = float(torch.linalg.matrix_norm(w, ord=2)) if w.numel() else 0.0
    if r:
        w = w - (w @ basis) @ basis.T
    _, s, vt = torch.linalg.svd(w, full_matrices=False)
    if scale == 0.0 or r >= d:
        return torch.zeros(d, 0, dtype=torch.float64)
    new = vt[s > rtol * scale].T[:, : d - r]
    if basis.shape[1]:  # re-orthogonalise against the basis (rounding)
        new = new - basis @ (basis.T @ new)
        new, _ = torch.linalg.qr(new)
    return new


class InlpEraser(Eraser):
    """INLP concept eraser: ``n_iter`` rounds of "fit a linear classifier, project out its row space".

    Parameters
    ----------
    site : Site or str, optional
        The site to read when fitting from a store (recorded otherwise).
    n_iter : int, default=10
        Classifiers fitted (each removes up to ``n_classes`` directions, or 1
        for two classes with a one-row classifier).
    classifier : estimator, optional
        A scikit-learn classifier exposing ``coef_`` after ``fit``; cloned for
        every iteration (its ``random_state`` set from ``random_state``).
        Default :class:`probekit.probes.LinearProbe` with ``solver="lbfgs"``.
    eval_fraction : float, default=0.1
        Held-out share of the rows for the recorded accuracies when there is no
        evaluation split (a task's ``dev`` split is used when fitting on its
        ``train`` split).
    max_rows : int, optional
        Fit on at most this many training rows (seeded random sample).
    svd_rtol : float, default=1e-6
        Directions of a classifier's rows with singular value at or below this
        share of the largest are not removed.
    random_state : int, default=0
        Seeds the held-out split, the row sample and the classifiers.

    Attributes
    ----------
    history_ : list of dict
        ``{"iteration", "rank", "accuracy"}``: held-out accuracy of a classifier
        fitted after ``iteration`` projections removing ``rank`` directions
        (``n_iter + 1`` entries, the first before any erasure).
    majority_accuracy_ : float
        Held-out accuracy of always predicting the most frequent training class.
    (and those of :class:`Eraser`)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from probekit.interventions import InlpEraser
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 600)
    >>> X = rng.normal(size=(600, 6)) + 3 * y[:, None] * np.eye(6)[0]
    >>> eraser = InlpEraser(n_iter=3, classifier=LogisticRegression()).fit(X, y)
    >>> eraser.history_[0]["accuracy"] > 0.9, eraser.history_[-1]["accuracy"] < 0.65
    (True, True)
    >>> eraser.rank_
    3
    """

    method = "inlp"
    _json_params = ("n_iter", "eval_fraction", "max_rows", "svd_rtol", "random_state")

    def __init__(self, site=None, *, n_iter: int = 10, classifier=None, eval_fraction: float = 0.1,
                 max_rows: int | None = None, svd_rtol: float = 1e-6, random_state: int = 0,
                 allow_other_model: bool = False):
        keep_params(self, locals())

    def fit(self, X, y=None, *, level: str | None = None, pooling: str | None = None, rows=None,
            split: str | None = None, eval_set=None) -> InlpEraser:
        """Fit on features and class labels.

        Parameters
        ----------
        X, y, level, pooling, rows, split
            As in :meth:`LeaceEraser.fit`.
        eval_set : (X_eval, y_eval), optional
            Held-out rows for the recorded accuracies (features in memory).
            Default: a task's ``dev`` split when fitting on its ``train``
            split from a store, else ``eval_fraction`` of the rows.

        Returns
        -------
        self
        """
        if self.n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {self.n_iter}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        t0 = time.perf_counter()
        rng = np.random.default_rng(self.random_state)
        src = resolve_rows(X, y, site=self.site, level=level, pooling=pooling, rows=rows, split=split)
        Xtr, ytr, Xev, yev, how_eval = self._split(src, X, y, level, pooling, split, eval_set, rng)
        if self.max_rows is not None and len(ytr) > self.max_rows:
            keep = np.sort(rng.choice(len(ytr), self.max_rows, replace=False))
            Xtr, ytr = Xtr[torch.from_numpy(keep)], ytr[keep]
        if len(np.unique(ytr)) < 2:
            raise ValueError("the training rows of INLP hold one class only")
        mean = Xtr.to(torch.float64).mean(0)
        Xtr = Xtr - mean.to(Xtr.dtype)
        Xev = Xev - mean.to(Xev.dtype)
        base = self.classifier if self.classifier is not None else _default_classifier(self.random_state)
        values, counts = np.unique(ytr, return_counts=True)
        self.majority_accuracy_ = float(np.mean(yev == values[np.argmax(counts)]))
        basis = torch.zeros(src.d, 0, dtype=torch.float64)
        history = []
        for it in range(self.n_iter + 1):
            clf = clone(base)
            if "random_state" in clf.get_params(deep=False):
                clf.set_params(random_state=self.random_state + it)
            clf.fit(Xtr.numpy(), ytr)
            acc = float(clf.score(Xev.numpy(), yev))
            history.append({"iteration": it, "rank": int(basis.shape[1]), "accuracy": acc})
            logger.info("INLP iteration %d: %d directions removed, held-out accuracy %.4f", it, basis.shape[1], acc)
            if it == self.n_iter:
                break
            new = _row_basis(clf.coef_, basis, self.svd_rtol)
            if new.shape[1] == 0:
                logger.warning("INLP iteration %d: the classifier has no weights left to remove; stopping", it)
                break
            basis = torch.cat([basis, new], dim=1)
            nf = new.to(Xtr.dtype)
            Xtr -= (Xtr @ nf) @ nf.T
            Xev -= (Xev @ nf) @ nf.T
            if basis.shape[1] >= src.d:
                logger.warning("INLP removed all %d directions after %d iterations: the features are now constant",
                               src.d, it + 1)
        self.history_ = history
        self.n_rows_ = int(len(ytr))
        self.fit_seconds_ = time.perf_counter() - t0
        fit_info = {**src.describe, "train_rows": int(len(ytr)), "eval": how_eval, "eval_rows": int(len(yev)),
                    "classifier": _describe_classifier(base), "history": history,
                    "majority_accuracy": self.majority_accuracy_}
        self._set_fitted(basis, basis.T.clone(), mean, src.classes, fit_info, src.site)
        return self

    def _split(self, src: Rows, X, y, level, pooling, split, eval_set, rng):
        """Training rows (float32 tensor, labels) and held-out rows, and how the held-out rows were chosen."""
        Xtr = src.materialise(torch.float32)
        ytr = src.classes[src.codes]
        if eval_set is not None:
            Xe, ye = eval_set
            Xe = as_tensor(Xe).to(torch.float32)
            if Xe.ndim != 2 or Xe.shape[1] != src.d:
                raise ValueError(f"eval_set features must be [rows, {src.d}], got {tuple(Xe.shape)}")
            classes, codes = encode_labels(ye, Xe.shape[0])
            return Xtr, ytr, Xe, classes[codes], "eval_set"
        task_split = src.describe.get("split")
        if task_split == "train" and "dev" in set(y.splits):
            dev = resolve_rows(X, y, site=src.site, level=level, pooling=pooling, split="dev")
            return Xtr, ytr, dev.materialise(torch.float32), dev.classes[dev.codes], "task dev split"
        perm = rng.permutation(src.n)
        n_eval = max(1, int(round(self.eval_fraction * src.n)))
        ev, tr = np.sort(perm[:n_eval]), np.sort(perm[n_eval:])
        return (Xtr[torch.from_numpy(tr)], ytr[tr], Xtr[torch.from_numpy(ev)], ytr[ev],
                f"random {self.eval_fraction:g} of the rows")
