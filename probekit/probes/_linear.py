"""Linear and rank-limited probes: multinomial logistic regression in torch."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from probekit.probes._base import SHARED_CONSTRAINTS, BaseProbe
from probekit.probes._engine import Arch
from probekit.validation import Interval, Options, keep_params

__all__ = ["LinearProbe", "RankProbe"]

# The parameters every probe shares, documented once and put into each probe's docstring at import (the
# API reference renders the imported docstrings).
_SHARED_PLACEHOLDER = (
    "    solver, lr, batch_size, max_iter, tol, early_stopping, validation_fraction, n_iter_no_change, device, "
    "random_state\n        Training settings every probe shares; ``help()`` on the class describes each one.\n")
_SHARED_DOC = """
    solver : {"adam", "lbfgs"}, default="adam"
        ``"adam"``: minibatch Adam with per-probe early stopping.
        ``"lbfgs"``: full-batch L-BFGS. For an L2 (or unpenalised)
        :class:`LinearProbe` each probe runs its own L-BFGS in whitened
        coordinates (same objective, see ``probekit/probes/_lbfgs.py``) and
        ``max_iter`` counts rounds of 5 iterations; otherwise it is torch's
        L-BFGS (strong Wolfe line search) and ``max_iter`` counts rounds of 20.
    lr : float, default=1e-2
        Adam learning rate (the MLP probe's default is 1e-3).
    batch_size : int, default=1024
        Minibatch size (Adam); capped at the number of training rows.
    max_iter : int, default=100
        Maximum number of iterations: Adam epochs (on data smaller than ten
        minibatches, an iteration groups enough epochs for ten optimiser steps)
        or rounds of L-BFGS. Early stopping is checked once per iteration.
    tol : float, default=1e-3
        Minimum decrease of the monitored loss (nats per example) that counts
        as an improvement (the MLP probe's default is 1e-4).
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the training rows (stratified) and
        monitor the validation cross-entropy once per iteration. After
        ``n_iter_no_change`` iterations without an improvement of ``tol`` a
        probe restarts from its best parameters at a tenth of its learning
        rate (twice at most, Adam only), then stops; it ends at its best
        parameters. When False, or when the data is too small to split, the
        training loss is monitored instead.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=2
    device : str, default="cpu"
        Torch device for training (``"cuda"``, ``"cpu"`` or ``"auto"``);
        inference runs in NumPy float64.
    random_state : int, RandomState or None, default=None
        Seeds the initialisation, the validation split and the shuffling.
"""



class LinearProbe(BaseProbe):
    """Multinomial logistic-regression probe with an L2 or L1 penalty.

    Minimises ``mean cross-entropy + penalty / (C * n_train)``, i.e. the
    objective of :class:`sklearn.linear_model.LogisticRegression` with the same
    ``C`` divided by ``C * n_train`` (L2: ``||W||^2 / 2``; L1: ``||W||_1``,
    optimised by subgradient). The intercept is not penalised.

    Parameters
    ----------
    penalty : {"l2", "l1"}, default="l2"
    C : float, default=1.0
        Inverse regularisation strength (``np.inf``: none).
    solver, lr, batch_size, max_iter, tol, early_stopping, validation_fraction, n_iter_no_change, device, random_state
        Training settings every probe shares; ``help()`` on the class describes each one.
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (n_classes, n_features)
    intercept_ : ndarray of shape (n_classes,)
    coefs_, intercepts_ : lists of one array each (the layer form shared by all probes)
    n_features_in_ : int
    n_iter_ : int
        Epoch (or L-BFGS round) at which training stopped.

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.probes import LinearProbe
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 5)); y = (X[:, 0] > 0).astype(int)
    >>> probe = LinearProbe(random_state=0).fit(X, y)
    >>> probe.score(X, y) > 0.95
    True
    >>> probe.coef_.shape
    (2, 5)
    """

    _parameter_constraints = {**SHARED_CONSTRAINTS, "penalty": [Options({"l1", "l2"})],
                              "C": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, penalty="l2", C=1.0, *, solver="adam", lr=1e-2, batch_size=1024, max_iter=100, tol=1e-3,
                 early_stopping=True, validation_fraction=0.1, n_iter_no_change=2, device="cpu", random_state=None):
        keep_params(self, locals())

    def _arch(self) -> Arch:
        return Arch("linear")

    def _penalty_kind(self) -> str:
        return self.penalty

    def _reg(self, n_train: int) -> float:
        return 0.0 if np.isinf(self.C) else 1.0 / (float(self.C) * n_train)

    def _set_fitted(self, classes, n_features, params, n_iter) -> None:
        super()._set_fitted(classes, n_features, params, n_iter)
        self.coef_ = self.coefs_[0].T.copy()
        self.intercept_ = self.intercepts_[0].copy()


class RankProbe(BaseProbe):
    """Rank-limited linear probe: logits ``= X U V + b`` with ``U`` ``[d, rank]``.

    The rank-constrained probe of Hewitt & Liang (2019), "Designing and
    Interpreting Probes with Control Tasks": a linear classifier whose weight
    matrix is factorised through ``rank`` dimensions, so ``rank`` bounds the
    probe's capacity. Penalty ``(||U||^2 + ||V||^2) / (2 C n_train)``.

    Parameters
    ----------
    rank : int, default=8
    C : float, default=1.0
    solver, lr, batch_size, max_iter, tol, early_stopping, validation_fraction, n_iter_no_change, device, random_state
        Training settings every probe shares; ``help()`` on the class describes each one.
    Attributes
    ----------
    classes_, n_features_in_, n_iter_
    coefs_ : list ``[U, V]``; intercepts_ : list ``[zeros(rank), b]``

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.probes import RankProbe
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 6)); y = np.argmax(X[:, :3], axis=1)
    >>> probe = RankProbe(rank=2, random_state=0).fit(X, y)
    >>> probe.score(X, y) > 0.9
    True
    >>> [w.shape for w in probe.coefs_]
    [(6, 2), (2, 3)]
    """

    _parameter_constraints = {**SHARED_CONSTRAINTS, "rank": [Interval(Integral, 1, None, closed="left")],
                              "C": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, rank=8, C=1.0, *, solver="adam", lr=1e-2, batch_size=1024, max_iter=100, tol=1e-3,
                 early_stopping=True, validation_fraction=0.1, n_iter_no_change=2, device="cpu", random_state=None):
        keep_params(self, locals())

    def _arch(self) -> Arch:
        return Arch("rank", rank=int(self.rank))

    def _reg(self, n_train: int) -> float:
        return 0.0 if np.isinf(self.C) else 1.0 / (float(self.C) * n_train)


LinearProbe.__doc__ = LinearProbe.__doc__.replace(_SHARED_PLACEHOLDER.lstrip(), _SHARED_DOC.strip("\n").lstrip())
RankProbe.__doc__ = RankProbe.__doc__.replace(_SHARED_PLACEHOLDER.lstrip(), _SHARED_DOC.strip("\n").lstrip())
