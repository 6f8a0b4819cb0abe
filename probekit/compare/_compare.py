"""``compare(store_a, store_b)``: what changed inside a model, layer by layer.

Both stores must hold the same data (the data part of their fingerprints
must match). Representational similarity streams over the stores' memory
maps; attention deltas read one example at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from probekit._results import Results
from probekit._sites import Site
from probekit.compare._streaming import CrossMoments

__all__ = ["compare", "Comparison", "attention_deltas"]

logger = logging.getLogger(__name__)


@dataclass
class Comparison:
    """The outcome of :func:`compare`.

    ``matrices[measure]`` is a layer x layer DataFrame (rows: sites of A,
    columns: sites of B); ``results`` holds the tidy rows (the aligned
    diagonal through the layer map, attention deltas per head).
    """

    matrices: dict[str, pd.DataFrame]
    results: Results
    layer_map: dict[str, str]

    def diagonal(self, measure: str = "linear_cka") -> pd.DataFrame:
        """``site_a, site_b, value`` along the layer map."""
        m = self.matrices[measure]
        return pd.DataFrame([(a, b, float(m.loc[a, b])) for a, b in self.layer_map.items()],
                            columns=["site_a", "site_b", measure])


def _data_fingerprint(store) -> object:
    comps = store.manifest.get("components", {})
    return comps.get("data", store.manifest.get("data"))


def _residual_sites(store) -> list[Site]:
    return sorted((s for s in store.sites if s.component in ("emb", "resid")), key=lambda s: s.depth)


def _rows(view, level: str, how: str | None):
    """A row-sliceable view over a site's shards without concatenating them."""
    parts = view._level_parts(level, how, mode="r")
    return _Concat(parts)


class _Concat:
    def __init__(self, parts: Sequence[np.ndarray]):
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, sl: slice) -> np.ndarray:
        a, b, _ = sl.indices(len(self))
        out = []
        for k, p in enumerate(self.parts):
            lo, hi = max(a, self.starts[k]), min(b, self.starts[k + 1])
            if lo < hi:
                out.append(np.asarray(p[lo - self.starts[k]: hi - self.starts[k]]))
        return np.concatenate(out) if len(out) > 1 else out[0]


def compare(
    store_a,
    store_b,
    *,
    sites_a: Sequence[Site | str] | None = None,
    sites_b: Sequence[Site | str] | None = None,
    layer_map: Mapping[str, str] | None = None,
    level: str = "sentence",
    how: str | None = "mean",
    chunk_rows: int = 8192,
    attention: bool = True,
    progress: bool = True,
) -> Comparison:
    """Compare two stores of the same data layer by layer.

    Parameters
    ----------
    store_a, store_b : ActivationStore
        E.g. the original model and a variant, extracted from the same data.
    sites_a, sites_b : sequences of sites, optional
        Default: each store's residual sites (``emb``, ``L{i}.resid``).
    layer_map : mapping site of A -> site of B, optional
        The aligned diagonal (e.g. a distilled student's layer ``i`` to its
        teacher's layer ``k``). Default: same-named sites present in both.
    level : {"sentence", "token", "word"}
        Rows compared: one per example (pooled with ``how``), per token, or per word.
    attention : bool
        Also compare attention patterns of layers stored in both (per head:
        Jensen-Shannon divergence and pattern correlation).

    Returns
    -------
    Comparison
    """
    if _data_fingerprint(store_a) != _data_fingerprint(store_b):
        raise ValueError("the two stores were extracted from different data; compare needs the same examples")
    sa = [Site.parse(s) for s in sites_a] if sites_a is not None else _residual_sites(store_a)
    sb = [Site.parse(s) for s in sites_b] if sites_b is not None else _residual_sites(store_b)
    if not sa or not sb:
        raise ValueError("no token-level sites to compare; extract residual sites (emb, L{i}.resid)")
    names_a, names_b = [str(s) for s in sa], [str(s) for s in sb]
    if layer_map is None:
        layer_map = {a: a for a in names_a if a in names_b}
    bad = [k for k, v in layer_map.items() if k not in names_a or v not in names_b]
    if bad:
        raise ValueError(f"layer map entries {bad} name sites not compared; A: {names_a}, B: {names_b}")
    views_a = [_rows(store_a[s], level, how if level != "token" else None) for s in sa]
    views_b = [_rows(store_b[s], level, how if level != "token" else None) for s in sb]
    n = {len(v) for v in views_a + views_b}
    if len(n) != 1:
        raise ValueError(f"the stores do not align row by row at level {level!r}: row counts {sorted(n)}")
    total = next(iter(n))
    acc = CrossMoments(len(sa), len(sb))
    for start in tqdm(range(0, total, chunk_rows), desc="similarity", unit="chunk", disable=not progress):
        stop = min(start + chunk_rows, total)
        acc.update([v[start:stop] for v in views_a], [v[start:stop] for v in views_b])
    matrices = {
        "linear_cka": pd.DataFrame(acc.linear_cka(), index=names_a, columns=names_b),
        "procrustes": pd.DataFrame(acc.procrustes(), index=names_a, columns=names_b),
    }
    model_a = store_a.manifest.get("model", {}).get("name")
    rows = []
    for a, b in layer_map.items():
        site = Site.parse(b)
        for measure, m in matrices.items():
            rows.append({"model": model_a, "variant": store_b.manifest.get("model", {}).get("name"),
                         "site": f"{a}~{b}", "layer": site.depth, "metric": f"{measure}:{level}",
                         "value": float(m.loc[a, b])})
    results = Results(rows)
    if attention:
        results = results + attention_deltas(store_a, store_b, progress=progress)
    return Comparison(matrices, results, dict(layer_map))


def attention_deltas(store_a, store_b, *, head_map: Mapping[tuple[int, int], tuple[int, int]] | None = None,
                     progress: bool = True) -> Results:
    """Per head: mean Jensen-Shannon divergence (bits) and Pearson correlation of the two patterns.

    ``head_map`` maps (layer, head) of A to (layer, head) of B (e.g. the
    surviving heads of a pruned model); default: the same head in every
    layer stored by both.
    """
    la = {s.layer for s in store_a.sites if s.is_attention}
    lb = {s.layer for s in store_b.sites if s.is_attention}
    layers = sorted(la & lb)
    if not layers and head_map is None:
        return Results()
    if head_map is None:
        head_map = {}
        for lay in layers:
            ha, hb = store_a.heads(lay), store_b.heads(lay)
            if ha != hb:
                raise ValueError(f"layer {lay} has {ha} heads in A and {hb} in B; pass head_map (a head-pruned "
                                 "variant's layer map records which original heads survive)")
            head_map.update({(lay, k): (lay, k) for k in range(ha)})
    jsd: dict = {k: 0.0 for k in head_map}
    corr: dict = {k: 0.0 for k in head_map}
    rows_seen = 0
    for i in tqdm(range(store_a.n_examples), desc="attention deltas", unit="ex", disable=not progress):
        pa = {lay: np.asarray(store_a[Site(lay, "attn.pattern")].example(i), np.float64)
              for lay in {k[0] for k in head_map}}
        pb = {lay: np.asarray(store_b[Site(lay, "attn.pattern")].example(i), np.float64)
              for lay in {v[0] for v in head_map.values()}}
        n_q = next(iter(pa.values())).shape[-1]
        rows_seen += n_q
        for (la_, ha), (lb_, hb) in head_map.items():
            p, q = pa[la_][ha], pb[lb_][hb]
            m = 0.5 * (p + q)
            with np.errstate(divide="ignore", invalid="ignore"):
                kl_p = np.where(p > 0, p * np.log2(p / m), 0).sum(-1)
                kl_q = np.where(q > 0, q * np.log2(q / m), 0).sum(-1)
            jsd[(la_, ha)] += float((0.5 * (kl_p + kl_q)).sum())
            x, y = p.ravel() - p.mean(), q.ravel() - q.mean()
            den = np.sqrt((x * x).sum() * (y * y).sum())
            corr[(la_, ha)] += float((x * y).sum() / den) * n_q if den > 0 else 0.0
    out = []
    for lay, head in head_map:
        base = {"model": store_a.manifest.get("model", {}).get("name"),
                "variant": store_b.manifest.get("model", {}).get("name"),
                "site": f"L{lay}.attn.pattern", "layer": lay, "head": head}
        out.append({**base, "metric": "attention_jsd_bits", "value": jsd[(lay, head)] / rows_seen})
        out.append({**base, "metric": "attention_corr", "value": corr[(lay, head)] / rows_seen})
    return Results(out)
