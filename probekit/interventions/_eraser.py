"""The fitted eraser: an affine map that removes a concept subspace from one site's features.

Every eraser in probekit has the same fitted form,

    r(x) = x - L R (x - b),

with ``L`` ``[d, r]``, ``R`` ``[r, d]`` and ``b`` ``[d]`` (stored in float64):
LEACE's oblique projection (``L = W^+ U``, ``R = U^T W``, ``b`` the feature
mean), INLP's and the random control's orthogonal projections (``L = U``,
``R = U^T``). ``rank_`` is ``r``, the number of directions removed. The map
applies itself to any ``[..., d]`` tensor or array of the site it was fitted
on, and describes itself as canonical JSON (:meth:`Eraser.to_dict`,
:meth:`Eraser.fingerprint`) so that whatever it produces can be
fingerprinted.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from probekit.fingerprint import hash_arrays, hash_json, jsonable
from probekit.interventions._io import ERASER_FORMAT, load_eraser, save_eraser
from probekit.model import Site

__all__ = ["Eraser", "ERASER_FORMAT"]

logger = logging.getLogger(__name__)


class Eraser(TransformerMixin, BaseEstimator):
    """Base of the concept erasers: ``x -> x - L R (x - b)`` at one site.

    Subclasses (:class:`LeaceEraser`, :class:`InlpEraser`,
    :class:`RandomEraser`) fit ``L``, ``R`` and ``b``; this class applies,
    describes, saves and loads them. Follows the scikit-learn estimator
    contract: ``__init__`` stores parameters, ``fit`` returns ``self``, learned
    attributes end in ``_``.

    Attributes
    ----------
    site_ : Site or None
        The site the eraser was fitted on (``None`` for unnamed in-memory features).
    d_ : int
        Feature width.
    rank_ : int
        Number of directions removed.
    classes_ : tuple of str
        The concept's classes (empty for the random control).
    left_, right_, bias_ : torch.Tensor (float64)
        ``L`` ``[d, rank]``, ``R`` ``[rank, d]`` and ``b`` ``[d]``.
    fit_info_ : dict
        How it was fitted (source rows, store fingerprint, diagnostics); JSON values only. Fitted on a
        store, ``fit_info_["model"]`` names the model it was extracted from (weights hash, name, width):
        the only model the eraser applies to, unless ``allow_other_model=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.interventions import LeaceEraser
    >>> X = np.random.default_rng(0).normal(size=(100, 4)); y = (X[:, 0] > 0).astype(int)
    >>> eraser = LeaceEraser("L0.resid").fit(X, y)
    >>> eraser(X[None]).shape                      # any leading shape, last dimension d
    (1, 100, 4)
    >>> eraser.to_dict()["method"], eraser.to_dict()["site"], eraser.rank_
    ('leace', 'L0.resid', 1)
    """

    method: ClassVar[str] = ""
    #: parameters written to the description (JSON values)
    _json_params: ClassVar[tuple[str, ...]] = ()
    _registry: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.method:
            Eraser._registry[cls.method] = cls

    # ---------------------------------------------------------------- state
    def _set_fitted(self, left: torch.Tensor, right: torch.Tensor, bias: torch.Tensor, classes, fit_info: dict,
                    site: Site | str | None) -> None:
        left = torch.as_tensor(left, dtype=torch.float64).contiguous()
        right = torch.as_tensor(right, dtype=torch.float64).contiguous()
        bias = torch.as_tensor(bias, dtype=torch.float64).contiguous()
        d = bias.shape[0]
        if left.ndim != 2 or right.ndim != 2 or left.shape[0] != d or right.shape[1] != d \
                or left.shape[1] != right.shape[0]:
            raise ValueError(f"inconsistent eraser tensors: left {tuple(left.shape)}, right {tuple(right.shape)}, "
                             f"bias {tuple(bias.shape)}")
        self.left_, self.right_, self.bias_ = left, right, bias
        self.d_ = int(d)
        self.rank_ = int(left.shape[1])
        self.classes_ = tuple(str(c) for c in classes)
        self.fit_info_ = jsonable(fit_info)
        self.site_ = Site.parse(site) if site is not None else None
        self._cache: dict = {}

    def _check_fitted(self) -> None:
        if not hasattr(self, "left_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(...) or Eraser.load(path)")

    def _tensors(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (str(device), dtype)
        if key not in self._cache:
            self._cache[key] = tuple(t.to(device=device, dtype=dtype) for t in (self.left_, self.right_, self.bias_))
        return self._cache[key]

    # ---------------------------------------------------------------- apply
    def __call__(self, x):
        """Erase from ``x`` (``[..., d]`` tensor or array); returns the same type, dtype and device.

        Float64 input is computed in float64, any other float in float32 (then
        cast back).
        """
        self._check_fitted()
        is_np = isinstance(x, np.ndarray)
        if not is_np and not isinstance(x, torch.Tensor):
            x = np.asarray(x)
            is_np = True
        if is_np:
            with warnings.catch_warnings():  # a read-only memory map is only read here
                warnings.simplefilter("ignore", UserWarning)
                t = torch.from_numpy(x)
        else:
            t = x
        if not t.dtype.is_floating_point:
            raise TypeError(f"features must be floating point, got {t.dtype}")
        if t.ndim == 0 or t.shape[-1] != self.d_:
            where = f" at {self.site_}" if self.site_ is not None else ""
            raise ValueError(f"this eraser was fitted on {self.d_}-dimensional features{where}; got features of shape "
                             f"{tuple(t.shape)} (last dimension must be {self.d_})")
        cdtype = torch.float64 if t.dtype == torch.float64 else torch.float32
        left, right, bias = self._tensors(t.device, cdtype)
        xt = t.to(cdtype)
        out = xt - ((xt - bias) @ right.T) @ left.T if self.rank_ else xt.clone()
        out = out.to(t.dtype)
        return out.numpy() if is_np else out

    # ---------------------------------------------------------------- as an intervention
    @property
    def fitted_on(self) -> dict | None:
        """The model the eraser was fitted on (``name``, ``weights`` hash, ``d_model``); ``None`` for features
        given as arrays, whose model is unknown."""
        self._check_fitted()
        model = self.fit_info_.get("model")
        return dict(model) if isinstance(model, dict) and model.get("weights") else None

    def check_model(self, model) -> None:
        """Refuse to act on a model other than the one the eraser was fitted on (unless ``allow_other_model``).

        A LEACE or INLP eraser removes a concept's subspace from one model's
        activations; in another model's activations of the same width that
        subspace is an arbitrary one. Called by the model whenever the eraser
        enters it as an intervention.
        """
        on = self.fitted_on
        if on is None or getattr(self, "allow_other_model", False):
            return
        weights = model.weights_hash()
        if weights == on["weights"]:
            return
        raise ValueError(
            f"this {self.method} eraser at {self.site_} was fitted on {on.get('name')!r} (weights "
            f"{str(on['weights'])[:12]}..., d_model {on.get('d_model')}), not on {model.name!r} (weights "
            f"{weights[:12]}..., d_model {model.d_model}): in another model's activations it would remove an "
            f"arbitrary subspace. Fit an eraser on {model.name!r}, or opt in with allow_other_model=True "
            f"(Eraser.load(path, allow_other_model=True); 'erase-other-model:DIR' on the command line), which "
            f"is recorded in the eraser's description and so in any store's fingerprint")

    def target(self) -> tuple[Site, None]:
        """Where the eraser acts as an intervention: the site it was fitted on.

        A fitted eraser is an intervention: pass it in ``interventions=[...]``
        of ``run_with_cache``, ``extract``, ``evaluate`` or ``Attributor`` and
        it erases its concept from the site's activations at every token
        during the forward pass. Its :meth:`to_dict` enters the fingerprint.
        """
        self._check_fitted()
        if self.site_ is None:
            raise ValueError(f"this {type(self).__name__} was fitted on unnamed features; fit it with site=... (or "
                             "on a store) to use it as an intervention")
        return self.site_, None

    def apply(self, x: torch.Tensor, examples=None) -> torch.Tensor:
        """Erase from one forward batch's activations (autograd-safe: no tensors are cached)."""
        self._check_fitted()
        if x.shape[-1] != self.d_:
            raise ValueError(f"this eraser was fitted on {self.d_}-dimensional features at {self.site_}; the site "
                             f"has {x.shape[-1]} dimensions")
        cdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        left, right, bias = (t.to(device=x.device, dtype=cdtype) for t in (self.left_, self.right_, self.bias_))
        xt = x.to(cdtype)
        return (xt - ((xt - bias) @ right.T) @ left.T).to(x.dtype) if self.rank_ else x

    def as_intervention(self) -> Eraser:
        """The eraser itself (every fitted eraser is an intervention); checks it names its site."""
        self.target()
        return self

    def transform(self, X):
        """Erase from ``X`` (scikit-learn transformer form of ``eraser(X)``)."""
        return self(X)

    @property
    def projection(self) -> torch.Tensor:
        """The linear part ``I - L R`` (``[d, d]``, float64): ``r(x) = P x + L R b``."""
        self._check_fitted()
        return torch.eye(self.d_, dtype=torch.float64) - self.left_ @ self.right_

    # ---------------------------------------------------------------- describe
    def tensors_sha256(self) -> str:
        """SHA-256 of ``L``, ``R`` and ``b`` (shapes and float64 bytes)."""
        self._check_fitted()
        return hash_arrays((name, t.to(torch.float64)) for name, t in
                           (("left", self.left_), ("right", self.right_), ("bias", self.bias_)))

    def to_dict(self) -> dict:
        """Canonical description: method, site, width, rank, parameters, classes, fit provenance, tensor hash.

        Two erasers with the same description act identically (the tensors are
        covered by their hash); :meth:`fingerprint` hashes it.
        """
        self._check_fitted()
        params = {k: jsonable(getattr(self, k)) for k in self._json_params}
        if getattr(self, "allow_other_model", False):  # absent otherwise, so plain erasers keep their description
            params["allow_other_model"] = True
        return {"kind": "eraser", "format": ERASER_FORMAT, "method": self.method,
                "site": None if self.site_ is None else str(self.site_), "d": self.d_, "rank": self.rank_,
                "params": params, "classes": list(self.classes_), "fit": self.fit_info_,
                "tensors": {"dtype": "float64", "sha256": self.tensors_sha256()}}

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict`."""
        return hash_json(self.to_dict())

    def __repr__(self) -> str:
        if not hasattr(self, "left_"):
            return super().__repr__()
        where = str(self.site_) if self.site_ is not None else "unnamed site"
        return f"{type(self).__name__}({where}, d={self.d_}, rank={self.rank_}, classes={len(self.classes_)})"

    # ---------------------------------------------------------------- save / load
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the eraser to directory ``path``: ``eraser.safetensors`` (tensors) and ``eraser.json``.

        Refuses a path that holds anything but a probekit eraser; an existing
        eraser is replaced only with ``overwrite=True``.
        """
        save_eraser(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, allow_other_model: bool = False) -> Eraser:
        """Read an eraser written by :meth:`save`; returns its own class.

        ``eraser.json`` is checked against its own checksum (a hand-edited
        description, e.g. another site, is refused) and the tensors against
        theirs. ``allow_other_model=True`` lets it act on a model other than
        the one it was fitted on (see :meth:`check_model`); the choice enters
        its description.
        """
        eraser = load_eraser(path, Eraser._registry)
        if not isinstance(eraser, cls):
            raise TypeError(f"{path} holds a {type(eraser).__name__}, not a {cls.__name__}")
        if allow_other_model:
            eraser.allow_other_model = True
        return eraser
