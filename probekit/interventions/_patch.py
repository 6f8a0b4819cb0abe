"""Activation patching: put activations from another run (or from a store) in place of a site's own.

A :class:`Patch` holds either one source ``[n, d]`` (applied to every row:
"patch in the activations of this other input") or one ``[n_i, d]`` per
example (applied to the row of example ``i``: stored activations, or a cached
run of the same inputs). Source position ``p`` replaces target position
``p``; ``positions`` restricts the patch to some of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from probekit.interventions._base import Intervention, _vector
from probekit.model import Site

__all__ = ["Patch"]


class Patch(Intervention):
    """Replace a site's activations with given ones.

    Parameters
    ----------
    site : Site or str
    values : tensor [n, d], or sequence / mapping of tensors [n_i, d]
        One source for every row, or one per example index (for those, the
        forward pass must know each row's example: ``run_with_cache`` and
        ``extract`` pass it, unless inputs run in windows).
    positions : int or sequence of int, optional
        Patch only these positions (default: positions ``0..n-1`` of the source).
    source : dict, optional
        Provenance recorded in the description (set by the constructors).

    Examples
    --------
    >>> import torch
    >>> p = Patch("L0.resid", torch.ones(2, 3))
    >>> p.apply(torch.zeros(1, 4, 3))[0].sum(-1).tolist()
    [3.0, 3.0, 0.0, 0.0]
    """

    kind = "patch"

    def __init__(self, site: Site | str, values, *, positions=None, source: dict | None = None):
        super().__init__(site, None)
        if self.site.is_attention:
            raise ValueError(f"{self.site}: attention patterns are read, not replaced")
        from probekit.interventions._base import _positions

        self.patch_positions = _positions(positions)
        self.source = dict(source or {})
        if isinstance(values, Mapping):
            self.values = {int(k): _vector(v, f"values[{k}]") for k, v in values.items()}
            self.shared = None
        elif isinstance(values, (torch.Tensor,)) or _is_matrix(values):
            self.shared = _vector(values, "values")
            self.values = None
            if self.shared.ndim != 2:
                raise ValueError(f"values must be [n, d] (or one [n_i, d] per example); got shape "
                                 f"{tuple(self.shared.shape)}")
        else:
            self.values = {i: _vector(v, f"values[{i}]") for i, v in enumerate(values)}
            self.shared = None
        if self.values is not None:
            if not self.values:
                raise ValueError("values is empty")
            bad = [k for k, v in self.values.items() if v.ndim != 2]
            if bad:
                raise ValueError(f"values of examples {bad[:5]} are not [n, d] matrices")
            widths = {int(v.shape[1]) for v in self.values.values()}
            if len(widths) > 1:
                raise ValueError(f"values have different widths {sorted(widths)}")

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_input(cls, model, inputs, site: Site | str, *, positions=None, interventions=()) -> Patch:
        """Patch in the activations ``model`` computes at ``site`` for one other input (same for every row).

        Parameters
        ----------
        model : HookedModel
        inputs : str or list of str (words)
            The source input: a text, or its pre-split words.
        interventions : sequence, optional
            Interventions of the source run.
        """
        cache = model.run_with_cache([inputs], [site], interventions=interventions)
        text = inputs if isinstance(inputs, str) else " ".join(inputs)
        return cls(site, cache.examples(site)[0], positions=positions,
                   source={"from": "input", "input": text, "model": model.name})

    @classmethod
    def from_cache(cls, cache, site: Site | str, *, positions=None) -> Patch:
        """Patch in a cache's activations, example by example (the cache of a run on the same inputs)."""
        return cls(site, list(cache.examples(site)), positions=positions, source={"from": "cache"})

    @classmethod
    def from_store(cls, store, site: Site | str, *, examples: Sequence[int] | None = None, positions=None) -> Patch:
        """Patch in a store's token activations of ``site``, example by example (default: every example)."""
        view = store[str(Site.parse(site))]
        idx = range(len(store)) if examples is None else [int(e) for e in examples]
        values = {i: torch.from_numpy(view.example(i).astype("float64")) for i in idx}
        return cls(site, values, positions=positions, source={"from": "store", "store": store.fingerprint})

    # ------------------------------------------------------------ apply
    def _select(self, x: torch.Tensor, src: torch.Tensor, out: torch.Tensor, row, length: int | None,
                example=None) -> None:
        n = src.shape[0]
        if src.shape[1] != x.shape[-1]:
            raise ValueError(f"patch at {self.site}: values have {src.shape[1]} dimensions but the site has "
                             f"{x.shape[-1]}")
        tokens = x.shape[-2] if length is None else length  # the row's own tokens, never its padding
        pos = list(range(n)) if self.patch_positions is None else list(self.patch_positions)
        beyond_input = [p for p in pos if p >= tokens]
        if beyond_input:
            which = f"example {example}" if example is not None else f"batch row {row}"
            raise ValueError(f"patch at {self.site}: the source has {n} tokens but the input of {which} has "
                             f"{tokens}; positions {beyond_input[:5]} fall beyond it. Patch a source no longer than "
                             f"the input, or pass positions=... within both")
        beyond_source = [p for p in pos if p >= n]
        if beyond_source:
            raise ValueError(f"patch at {self.site}: positions {beyond_source[:5]} are beyond the source ({n} tokens)")
        src = src.to(device=x.device, dtype=x.dtype)
        out[row][..., pos, :] = src[pos]

    def apply(self, x: torch.Tensor, examples: Sequence[int] | None = None,
              lengths: Sequence[int] | None = None) -> torch.Tensor:
        """Patch each row; ``lengths`` (the rows' real token counts, given by the model) keeps padding out of it."""
        out = x.clone()
        if lengths is not None and len(lengths) != x.shape[0]:
            lengths = None
        if self.shared is not None:
            for r in range(x.shape[0]):
                self._select(x, self.shared, out, r, None if lengths is None else lengths[r],
                             None if examples is None else examples[r])
            return out
        if examples is None:
            raise ValueError(f"patch at {self.site} holds activations per example, but this forward pass does not "
                             "know which example each row is (inputs run in windows, or a call that passes no "
                             "example indices)")
        for r, e in enumerate(examples):
            if e not in self.values:
                raise ValueError(f"patch at {self.site} has no activations for example {e}")
            self._select(x, self.values[e], out, r, None if lengths is None else lengths[r], e)
        return out

    # ------------------------------------------------------------ describe
    def _params(self) -> dict:
        out: dict = {"positions": None if self.patch_positions is None else list(self.patch_positions),
                     "per_example": self.values is not None}
        if self.source:
            out["source"] = self.source
        return out

    def _arrays(self) -> dict:
        if self.shared is not None:
            return {"values": self.shared}
        return {f"values/{k:09d}": v for k, v in sorted(self.values.items())}

    def __repr__(self) -> str:
        what = f"[{tuple(self.shared.shape)}]" if self.shared is not None else f"{len(self.values)} examples"
        return f"Patch({str(self.site)!r}, {what})"


def _is_matrix(values) -> bool:
    try:
        import numpy as np

        a = np.asarray(values)
        return a.dtype != object and a.ndim == 2
    except (ValueError, TypeError):
        return False
