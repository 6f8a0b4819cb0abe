"""The scikit-learn classifier shared by the linear, rank-limited and MLP probes."""

from __future__ import annotations

import logging
import numbers
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from probekit.probes._engine import Arch, TrainConfig, resolve_device, to_layer_tensor, train_probes
from probekit.validation import Boolean, Device, InstanceOf, Interval, Options, validate_params

__all__ = ["BaseProbe", "seed_from", "SHARED_CONSTRAINTS"]

_POSITIVE_INT = Interval(Integral, 1, None, closed="left")

#: The training settings every torch-backed probe shares (a probe class adds its own to these).
SHARED_CONSTRAINTS: dict[str, list] = {
    "solver": [Options({"adam", "lbfgs"})],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [_POSITIVE_INT],
    "max_iter": [_POSITIVE_INT],
    "tol": [Interval(Real, 0, None, closed="left")],
    "early_stopping": [Boolean()],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [_POSITIVE_INT],
    "device": [Device(auto=True)],
    "random_state": [Interval(Integral, 0, 2**32 - 1, closed="both"),
                     InstanceOf(np.random.RandomState, name="a numpy RandomState"), None],
}

logger = logging.getLogger(__name__)


def seed_from(random_state) -> int:
    """An integer seed from ``random_state`` (int, ``None`` or ``RandomState``), as scikit-learn resolves it."""
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


def split_for_early_stopping(codes: np.ndarray, fraction: float, seed: int, enabled: bool):
    """Row indices ``(train, validation)``; validation is ``None`` when the data is too small to split.

    The split is stratified when every class has at least two rows.
    """
    n = codes.shape[0]
    n_val = int(np.floor(n * fraction)) if enabled else 0
    if n_val < 2 or n - n_val < 2:
        return np.arange(n), None
    counts = np.bincount(codes)
    counts = counts[counts > 0]
    stratify = codes if counts.min() >= 2 and n_val >= len(counts) and n - n_val >= len(counts) else None
    tr, va = train_test_split(np.arange(n), test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(tr), np.sort(va)


class BaseProbe(ClassifierMixin, BaseEstimator):
    """Common parameters, ``fit`` and inference of the torch-backed probes (not public).

    Subclasses define ``_arch()`` and ``_reg(n_train)``.
    """

    def _arch(self) -> Arch:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reg(self, n_train: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _penalty_kind(self) -> str:
        return "l2"

    #: What each setting accepts; checked when ``fit`` starts (scikit-learn estimators accept anything in
    #: ``__init__``, so that ``clone`` and ``set_params`` work), before any training.
    _parameter_constraints: dict[str, list] = SHARED_CONSTRAINTS

    def _check_params(self) -> None:
        validate_params(self, self.get_params(deep=False))

    # ------------------------------------------------------------------ fitting
    def _train_config(self, n_train: int) -> TrainConfig:
        return TrainConfig(
            solver=self.solver,
            penalty=self._penalty_kind(),
            reg=self._reg(n_train),
            lr=float(self.lr),
            batch_size=int(self.batch_size),
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            n_iter_no_change=int(self.n_iter_no_change),
            shuffle_seed=seed_from(self.random_state),
        )

    def _fit_many(self, Xs, codes: np.ndarray, n_classes: int, seeds) -> tuple[list[np.ndarray], np.ndarray]:
        """Train one probe per (layer, seed) on ``Xs`` (``[L, n, d]`` or a list); see ``train_probes``."""
        self._check_params()
        device = resolve_device(self.device)
        shuffle_seed = seed_from(self.random_state)
        tr, va = split_for_early_stopping(codes, self.validation_fraction, shuffle_seed, self.early_stopping)
        tr = np.random.default_rng(shuffle_seed).permutation(tr)  # shuffled once; minibatches are then slices
        X_tr = to_layer_tensor(Xs, device, rows=tr)
        y_tr = torch.as_tensor(codes[tr], dtype=torch.long, device=device)
        X_va = y_va = None
        if va is not None:
            X_va = to_layer_tensor(Xs, device, rows=va)
            y_va = torch.as_tensor(codes[va], dtype=torch.long, device=device)
        cfg = self._train_config(len(tr))
        return train_probes(self._arch(), cfg, X_tr, y_tr, n_classes, seeds, X_va, y_va)

    def _set_fitted(self, classes, n_features: int, params: list[np.ndarray], n_iter: int) -> None:
        arch = self._arch()
        n_lin = len(arch.widths(n_features, len(classes))) - 1
        it = iter(params)
        self.coefs_, self.intercepts_ = [], []
        for i in range(n_lin):
            self.coefs_.append(next(it))
            bias = next(it)[0] if arch.has_bias(i, n_lin) else np.zeros(self.coefs_[-1].shape[1], np.float32)
            self.intercepts_.append(bias)
        self.classes_ = classes
        self.n_features_in_ = n_features
        self.n_iter_ = int(n_iter)

    def fit(self, X, y):
        """Fit the probe.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self
        """
        self._check_params()  # every setting, before the data is read or anything trains
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64], y_numeric=False)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"a probe needs samples of at least 2 classes in the data; got 1 class: {classes[0]!r}")
        params, n_iter = self._fit_many([X], codes, len(classes), [seed_from(self.random_state)])
        self._set_fitted(classes, X.shape[1], [p[0] for p in params], n_iter[0])
        return self

    # ---------------------------------------------------------------- inference
    def _logits(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        h = np.asarray(X, dtype=np.float64)
        last = len(self.coefs_) - 1
        for i, (w, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            h = h @ w.astype(np.float64) + b.astype(np.float64)
            if self._arch().nonlinear and i < last:
                np.maximum(h, 0.0, out=h)
        return h

    def predict_log_proba(self, X) -> np.ndarray:
        """Log class probabilities, columns in the order of ``classes_``."""
        z = self._logits(X)
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``[n_samples, n_classes]``, columns in the order of ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row."""
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]
