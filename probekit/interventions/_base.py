"""Interventions at sites: change an activation during the forward pass.

Each intervention names where it acts (``target()``: a site, and heads for
head interventions) and what it does (``apply(x, examples)``), and describes
itself as canonical JSON (``to_dict``; arrays enter by their SHA-256), so that
whatever it produces -- a cache, a store, an evaluation -- can be fingerprinted.
They enter a model through the same hooks as caching
(:meth:`probekit.model.HookedModel.intervening`) and compose as a list applied
in order.

========================================  ======================================================
object                                    effect on the site's activations ``x`` ``[batch, tokens, d]``
========================================  ======================================================
``Ablate(site, "zero")``                  ``0``
``Ablate(site, "mean", store=...)``       the site's mean over a store's tokens (or ``mean=``)
``Steer(site, vector, scale)``            ``x + scale * vector``
``ProjectOut(site, directions)``          ``x`` minus its projection on the span of ``directions``
``AblateHeads(layer, heads)``             zero those heads' inputs to the attention output projection
``Patch(site, values)``                   activations from another input or from a store
fitted ``Eraser`` (LEACE, INLP, random)   ``x - L R (x - b)``
========================================  ======================================================

``positions`` (where offered) restricts the change to those token positions of
every row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

from probekit.fingerprint import hash_arrays, hash_json, jsonable
from probekit.model import Site

__all__ = ["Intervention", "Ablate", "Steer", "ProjectOut", "AblateHeads", "INTERVENTION_FORMAT", "site_mean"]

logger = logging.getLogger(__name__)

#: Version of an intervention's description.
INTERVENTION_FORMAT = 1


def _vector(value, name: str) -> torch.Tensor:
    t = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if not t.dtype.is_floating_point:
        t = t.to(torch.float64)
    t = t.to("cpu", torch.float64).contiguous()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _positions(positions) -> tuple[int, ...] | None:
    if positions is None:
        return None
    if isinstance(positions, (int, np.integer)):
        positions = [positions]
    out = tuple(int(p) for p in positions)
    if not out:
        raise ValueError("positions is empty; pass None for every position")
    return out


class Intervention:
    """Base of the site interventions (see the module docstring for the list).

    Subclasses set :attr:`kind`, implement :meth:`_apply`, and report their
    parameters (:meth:`_params`) and arrays (:meth:`_arrays`) for
    :meth:`to_dict`.
    """

    kind: ClassVar[str] = ""

    def __init__(self, site: Site | str, positions=None):
        self.site = Site.parse(site)
        self.positions = _positions(positions)

    # ------------------------------------------------------------ protocol
    def target(self) -> tuple[Site, tuple[int, ...] | None]:
        """The site acted on, and the heads for a head intervention (else ``None``)."""
        return self.site, None

    def apply(self, x: torch.Tensor, examples: Sequence[int] | None = None) -> torch.Tensor:
        """The replacement of ``x`` (the site's activations of one forward batch)."""
        if self.positions is None:
            return self._apply(x, examples)
        n = x.shape[-2]
        bad = [p for p in self.positions if not -n <= p < n]
        if bad:
            raise ValueError(f"{self.kind} at {self.site}: positions {bad} are outside the {n} tokens of this batch")
        idx = torch.tensor(self.positions, device=x.device)
        out = x.clone()
        out[..., idx, :] = self._apply(x[..., idx, :], examples)
        return out

    def _apply(self, x: torch.Tensor, examples) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_width(self, x: torch.Tensor, d: int, what: str) -> None:
        if x.shape[-1] != d:
            raise ValueError(f"{self.kind} at {self.site}: {what} has {d} dimensions but the site has "
                             f"{x.shape[-1]}")

    # ------------------------------------------------------------ describe
    def _params(self) -> dict:
        return {}

    def _arrays(self) -> dict[str, torch.Tensor]:
        return {}

    def to_dict(self) -> dict:
        """Canonical description: kind, site, positions, parameters and the SHA-256 of its arrays."""
        arrays = self._arrays()
        out = {"kind": "intervention", "format": INTERVENTION_FORMAT, "type": self.kind, "site": str(self.site),
               "positions": None if self.positions is None else list(self.positions),
               "params": jsonable(self._params())}
        if arrays:
            out["arrays"] = {"shapes": {k: list(v.shape) for k, v in arrays.items()},
                             "sha256": hash_arrays(sorted((k, v.to(torch.float64)) for k, v in arrays.items()))}
        return out

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict`."""
        return hash_json(self.to_dict())

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self._params().items())
        pos = "" if self.positions is None else f", positions={list(self.positions)}"
        return f"{type(self).__name__}({str(self.site)!r}{extra}{pos})"


def site_mean(store, site: Site | str, *, level: str = "token", pooling: str | None = None,
              chunk_rows: int = 32768) -> torch.Tensor:
    """Mean activation of ``site`` over a store's rows, streamed in float64 (bounded memory).

    Parameters
    ----------
    store : ActivationStore
    site : Site or str
    level : {"token", "word", "sentence"}
        Which rows to average (the store must hold them).
    pooling : str, optional
        The pooling of word or sentence rows (default: the store's first).

    Returns
    -------
    torch.Tensor
        ``[d]`` float64.
    """
    from probekit.interventions._rows import resolve_rows

    rows = resolve_rows(store, None, site=site, level=level, pooling=pooling, need_labels=False)
    total = torch.zeros(rows.d, dtype=torch.float64)
    for x, _ in rows.chunks(chunk_rows, torch.float64):
        total += x.sum(0)
    return total / max(rows.n, 1)


class Ablate(Intervention):
    """Zero or mean ablation of a site.

    Parameters
    ----------
    site : Site or str
    how : {"zero", "mean"}
    mean : array-like [d], optional
        The value of a mean ablation; or read it from ``store``.
    store : ActivationStore, optional
        Mean ablation: average the site's token rows of this store (its
        fingerprint is recorded).
    positions : int or sequence of int, optional
        Only these token positions (default: every position).

    Examples
    --------
    >>> import torch
    >>> Ablate("L1.resid", "zero").apply(torch.ones(1, 3, 4)).abs().sum().item()
    0.0
    >>> Ablate("L1.resid", "mean", mean=[1.0, 2.0]).apply(torch.zeros(1, 2, 2)).tolist()
    [[[1.0, 2.0], [1.0, 2.0]]]
    """

    kind = "ablate"

    def __init__(self, site: Site | str, how: str = "zero", *, mean=None, store=None, positions=None):
        super().__init__(site, positions)
        if how not in ("zero", "mean"):
            raise ValueError(f"how must be 'zero' or 'mean', not {how!r}")
        if self.site.is_attention:
            raise ValueError(f"{self.site}: attention patterns are read, not replaced; use AblateHeads to remove heads")
        self.how = how
        self.source: str | None = None
        if how == "zero":
            if mean is not None or store is not None:
                raise ValueError("a zero ablation takes no mean and no store")
            self.mean = None
        else:
            if (mean is None) == (store is None):
                raise ValueError("a mean ablation needs exactly one of mean= (a [d] vector) or store= (an "
                                 "ActivationStore holding the site's token rows)")
            if store is not None:
                self.mean = site_mean(store, self.site)
                self.source = store.fingerprint
            else:
                self.mean = _vector(mean, "mean")
            if self.mean.ndim != 1:
                raise ValueError(f"mean must be a [d] vector, got shape {tuple(self.mean.shape)}")

    def _apply(self, x, examples):
        if self.how == "zero":
            return torch.zeros_like(x)
        self._check_width(x, self.mean.shape[0], "the mean")
        return self.mean.to(device=x.device, dtype=x.dtype).expand_as(x).clone()

    def _params(self) -> dict:
        out: dict = {"how": self.how}
        if self.source is not None:
            out["store"] = self.source
        return out

    def _arrays(self) -> dict:
        return {} if self.mean is None else {"mean": self.mean}


class Steer(Intervention):
    """Add a vector (a steering direction) to a site: ``x + scale * vector``.

    Examples
    --------
    >>> import torch
    >>> Steer("L0.resid", [1.0, 0.0], scale=2.0).apply(torch.zeros(1, 1, 2)).tolist()
    [[[2.0, 0.0]]]
    """

    kind = "steer"

    def __init__(self, site: Site | str, vector, scale: float = 1.0, *, positions=None):
        super().__init__(site, positions)
        self.vector = _vector(vector, "vector")
        if self.vector.ndim != 1:
            raise ValueError(f"vector must be [d], got shape {tuple(self.vector.shape)}")
        self.scale = float(scale)
        if not np.isfinite(self.scale):
            raise ValueError(f"scale must be finite, got {scale!r}")

    def _apply(self, x, examples):
        self._check_width(x, self.vector.shape[0], "the vector")
        return x + (self.scale * self.vector).to(device=x.device, dtype=x.dtype)

    def _params(self) -> dict:
        return {"scale": self.scale}

    def _arrays(self) -> dict:
        return {"vector": self.vector}


class ProjectOut(Intervention):
    """Remove the span of ``directions`` (``[r, d]`` rows, orthonormalised here) from a site.

    ``x - (x - c) Q Q^T`` with ``Q`` an orthonormal basis of the span and
    ``c`` an optional centre (default the origin).

    Examples
    --------
    >>> import torch
    >>> ProjectOut("L0.resid", [[2.0, 0.0]]).apply(torch.tensor([[[3.0, 4.0]]])).tolist()
    [[[0.0, 4.0]]]
    """

    kind = "project_out"

    def __init__(self, site: Site | str, directions, *, center=None, positions=None):
        super().__init__(site, positions)
        dirs = _vector(directions, "directions")
        if dirs.ndim == 1:
            dirs = dirs[None]
        if dirs.ndim != 2 or dirs.shape[0] == 0:
            raise ValueError(f"directions must be [r, d] with r >= 1, got shape {tuple(dirs.shape)}")
        q, r = torch.linalg.qr(dirs.T)
        keep = r.diagonal().abs() > 1e-10 * max(float(r.diagonal().abs().max()), 1e-300)
        if not bool(keep.any()):
            raise ValueError("directions are all zero")
        self.basis = q[:, keep].contiguous()  # [d, rank]
        self.center = None if center is None else _vector(center, "center")

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])

    def _apply(self, x, examples):
        self._check_width(x, self.basis.shape[0], "the directions")
        q = self.basis.to(device=x.device, dtype=x.dtype)
        xc = x if self.center is None else x - self.center.to(device=x.device, dtype=x.dtype)
        return x - (xc @ q) @ q.T

    def _params(self) -> dict:
        return {"rank": self.rank}

    def _arrays(self) -> dict:
        out = {"basis": self.basis}
        if self.center is not None:
            out["center"] = self.center
        return out


class AblateHeads(Intervention):
    """Zero attention heads: their slices of the input to the block's attention output projection.

    A head's contribution to the attention sublayer output is its context
    vector times its columns of the output projection, so zeroing the slice
    removes exactly that head (the projection's bias stays).

    Parameters
    ----------
    layer : int or str
        Block index, or a site of the block (``"L2"``, ``"L2.attn.out"``).
    heads : int or sequence of int

    Examples
    --------
    >>> import torch
    >>> iv = AblateHeads(1, [0])
    >>> iv.target()
    (Site('L1.attn.out'), (0,))
    >>> iv.apply(torch.ones(1, 2, 3, 4))[0, 0].sum(-1).tolist()     # [batch, tokens, heads, head_dim]
    [0.0, 4.0, 4.0]
    """

    kind = "ablate_heads"

    def __init__(self, layer: int | str, heads):
        if isinstance(layer, str):
            text = layer if "." in layer else f"{layer}.attn.out"
            layer = Site.parse(text).layer
            if layer is None:
                raise ValueError(f"heads belong to a block, not to {text!r}")
        super().__init__(Site(int(layer), "attn.out"))
        heads = [heads] if isinstance(heads, (int, np.integer)) else list(heads)
        if not heads or any(int(h) < 0 for h in heads):
            raise ValueError(f"heads must be a non-empty list of indices >= 0, got {heads!r}")
        self.heads = tuple(sorted({int(h) for h in heads}))

    def target(self):
        return self.site, self.heads

    def _apply(self, x, examples):
        if max(self.heads) >= x.shape[-2]:
            raise ValueError(f"heads {list(self.heads)} out of range for {x.shape[-2]} heads at {self.site}")
        out = x.clone()
        out[..., list(self.heads), :] = 0
        return out

    def _params(self) -> dict:
        return {"heads": list(self.heads)}

    def __repr__(self) -> str:
        return f"AblateHeads({self.site.layer}, {list(self.heads)})"
