"""A one- or two-hidden-layer MLP probe with dropout."""

from __future__ import annotations

import numbers
from numbers import Integral, Real

from probekit.probes._base import SHARED_CONSTRAINTS, BaseProbe
from probekit.probes._engine import Arch
from probekit.probes._linear import _SHARED_DOC, _SHARED_PLACEHOLDER
from probekit.validation import Interval, ListOf, keep_params

__all__ = ["MLPProbe"]


class MLPProbe(BaseProbe):
    """MLP probe: ``Linear -> ReLU -> Dropout`` (once or twice) then a softmax layer.

    Parameters
    ----------
    solver, lr, batch_size, max_iter, tol, early_stopping, validation_fraction, n_iter_no_change, device, random_state
        Training settings every probe shares; ``help()`` on the class describes each one.
    hidden_layer_sizes : tuple of 1 or 2 ints, default=(256,)
    dropout : float, default=0.1
        Dropout probability after each hidden layer (training with Adam only;
        ``solver="lbfgs"`` trains without dropout).
    alpha : float, default=1e-4
        L2 penalty on the weights, ``alpha * ||W||^2 / 2`` added to the mean
        loss (as :class:`sklearn.neural_network.MLPClassifier` scales it per example).
    lr : float, default=1e-3
    n_iter_no_change : int, default=3
    Attributes
    ----------
    classes_, n_features_in_, n_iter_
    coefs_, intercepts_ : lists of the weight ``[in, out]`` and bias arrays per layer

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.probes import MLPProbe
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 2)); y = (X[:, 0] * X[:, 1] > 0).astype(int)  # XOR
    >>> probe = MLPProbe(hidden_layer_sizes=(32,), lr=1e-2, random_state=0).fit(X, y)
    >>> probe.score(X, y) > 0.9
    True
    """

    _parameter_constraints = {
        **SHARED_CONSTRAINTS,
        "hidden_layer_sizes": [Interval(Integral, 1, None, closed="left"),
                               ListOf(Interval(Integral, 1, None, closed="left"), min_len=1)],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, hidden_layer_sizes=(256,), dropout=0.1, alpha=1e-4, *, solver="adam", lr=1e-3,
                 batch_size=1024, max_iter=200, tol=1e-4, early_stopping=True, validation_fraction=0.1,
                 n_iter_no_change=3, device="cpu", random_state=None):
        keep_params(self, locals())

    def _hidden(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else tuple(sizes)
        if len(sizes) not in (1, 2) or any(int(s) < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be 1 or 2 positive ints, got {self.hidden_layer_sizes!r}")
        return tuple(int(s) for s in sizes)

    def _arch(self) -> Arch:
        return Arch("mlp", hidden=self._hidden(), dropout=float(self.dropout))

    def _check_params(self) -> None:
        super()._check_params()
        self._hidden()

    def _reg(self, n_train: int) -> float:
        return float(self.alpha)


MLPProbe.__doc__ = MLPProbe.__doc__.replace(_SHARED_PLACEHOLDER.lstrip(), _SHARED_DOC.strip("\n").lstrip())
