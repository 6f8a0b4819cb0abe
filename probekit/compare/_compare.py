"""``compare(store_a, store_b)``: what changed inside a model, layer by layer.

Both stores must hold the same data (the data part of their fingerprints
must match). Representational similarity streams over the stores' memory
maps; attention deltas read one example at a time.

Rows are indexed by A, the reference (usually the base model): ``site``,
``layer``, ``block`` and ``head`` are A's (the one layer axis, see
:func:`probekit.site_layer`), ``site_b`` is the site of B paired with it, so
every variant compared with one base lines up on the base's layers, and the
rows join other suites' rows of A on ``(site, layer)``.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from probekit.compare._layermap import head_map_for
from probekit.compare._similarity import _whiten_basis, minibatch_cka, pwcca, rbf_cka, svcca
from probekit.compare._streaming import CrossMoments
from probekit.model import Site, site_layer
from probekit.results import Results, site_columns, store_blocks
from probekit.store import RowView
from probekit.validation import Boolean, Interval, ListOf, Options, declare, validate_params

__all__ = ["compare", "Comparison", "CompareSuite", "attention_deltas", "MEASURES"]

logger = logging.getLogger(__name__)


@dataclass
class Comparison:
    """The outcome of :func:`compare`.

    ``matrices[measure]`` is a layer x layer DataFrame (rows: sites of A,
    columns: sites of B); ``results`` holds the tidy rows (the aligned
    diagonal through the layer map, attention deltas per head);
    ``level`` is the row level compared and ``rows_used[measure]`` the rows
    each measure saw (in-memory measures may use a seeded subsample).
    """

    matrices: dict[str, pd.DataFrame]
    results: Results
    layer_map: dict[str, str]
    level: str = "sentence"
    rows_used: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    variant: str | None = None
    n_blocks: int | None = None

    @property
    def measures(self) -> list[str]:
        """The similarity measures computed, in order."""
        return list(self.matrices)

    def diagonal(self, measure: str = "linear_cka") -> pd.DataFrame:
        """``site_a, site_b, value`` along the layer map."""
        m = self._matrix(measure)
        return pd.DataFrame([(a, b, float(m.loc[a, b])) for a, b in self.layer_map.items()],
                            columns=["site_a", "site_b", measure])

    def _matrix(self, measure: str) -> pd.DataFrame:
        if measure not in self.matrices:
            raise KeyError(f"measure {measure!r} was not computed; computed: {', '.join(self.matrices)}")
        return self.matrices[measure]

    def matrix_results(self) -> Results:
        """Every cell of every matrix as a tidy row (``site`` of A, ``site_b`` of B).

        ``metric`` is ``"<measure>:<level>:matrix"``; ``layer`` is A's layer
        on the layer axis (``emb`` is 0, ``L{i}`` is ``i + 1``).
        """
        rows = [self._cell_row(a, b, measure, float(m.loc[a, b]), "matrix")
                for measure, m in self.matrices.items() for a in m.index for b in m.columns]
        return Results(rows)

    def _cell_row(self, a: str, b: str, measure: str, value: float, kind: str | None) -> dict:
        metric = f"{measure}:{self.level}" + (f":{kind}" if kind else "")
        return {"model": self.model, "variant": self.variant, **site_columns(a, self.n_blocks), "site_b": b,
                "metric": metric, "value": value}

    def to_results(self, *, matrix: bool = False) -> Results:
        """The tidy rows (the diagonal and attention deltas), plus every matrix cell with ``matrix=True``."""
        return self.results + self.matrix_results() if matrix else self.results

    def to_frame(self, *, matrix: bool = False) -> pd.DataFrame:
        """:meth:`to_results` as a DataFrame with the standard result columns."""
        return self.to_results(matrix=matrix).to_frame()

    def best_matches(self, measure: str = "linear_cka", *, of: str = "b") -> pd.DataFrame:
        """For each site of one side, the most similar site of the other side.

        Parameters
        ----------
        measure : str
            A computed measure. For ``procrustes`` (a distance) the smallest
            value is the best match; for every other measure the largest.
        of : {"b", "a"}
            ``"b"``: one row per site of B, matched among A's sites (e.g. for
            each student layer its closest teacher layer); ``"a"``: the reverse.

        Returns
        -------
        DataFrame
            ``site, best, value, margin, mapped, correct``: ``margin`` is how
            much better the best site is than the runner-up (0 for a tie: then
            ``best`` is simply the first of the tied sites); ``mapped`` is the
            site the layer map pairs ``site`` with (empty when unmapped) and
            ``correct`` whether ``best`` equals it.
        """
        if of not in ("a", "b"):
            raise ValueError(f"of must be 'a' or 'b', not {of!r}")
        m = self._matrix(measure)
        m = m.T if of == "b" else m
        lower = measure == "procrustes"
        best = m.idxmin(axis=1) if lower else m.idxmax(axis=1)
        mapped = {b: a for a, b in self.layer_map.items()} if of == "b" else dict(self.layer_map)
        vals = np.sort(m.to_numpy(dtype=np.float64), axis=1)
        margin = (vals[:, 1] - vals[:, 0]) if lower else (vals[:, -1] - vals[:, -2])
        out = pd.DataFrame({"site": m.index, "best": best.values,
                            "value": [float(m.loc[i, j]) for i, j in best.items()],
                            "margin": margin if m.shape[1] > 1 else np.nan})
        out["mapped"] = out["site"].map(mapped)
        out["correct"] = out["mapped"].notna() & (out["best"] == out["mapped"])
        return out


def _data_fingerprint(store) -> object:
    comps = store.manifest.get("components", {})
    return comps.get("data", store.manifest.get("data"))


def _residual_sites(store) -> list[Site]:
    return sorted((s for s in store.sites if s.component in ("emb", "resid")), key=site_layer)


#: Measures computed exactly by streaming over the stores (memory independent of the rows).
STREAMED_MEASURES: tuple[str, ...] = ("linear_cka", "procrustes")
#: Measures computed in memory on at most ``max_rows`` rows (a seeded subsample when there are more).
IN_MEMORY_MEASURES: dict[str, Callable] = {"svcca": svcca, "pwcca": pwcca, "rbf_cka": rbf_cka,
                                           "minibatch_cka": minibatch_cka}
#: ``rbf_cka`` builds two n x n Gram matrices, so it sees at most this many of the sampled rows.
RBF_MAX_ROWS = 4000
MEASURES: tuple[str, ...] = STREAMED_MEASURES + tuple(IN_MEMORY_MEASURES)


def _check_measures(measures: Sequence[str]) -> list[str]:
    if isinstance(measures, str):
        measures = [measures]
    out = list(dict.fromkeys(measures))
    if not out:
        raise ValueError(f"measures is empty; choose from {', '.join(MEASURES)}")
    for m in out:
        if m not in MEASURES:
            close = difflib.get_close_matches(m, MEASURES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown similarity measure {m!r}{hint}; choose from {', '.join(MEASURES)}")
    return out


def _take(view: RowView, idx: np.ndarray, chunk_rows: int) -> np.ndarray:
    """Rows ``idx`` (sorted) of a view, read chunk by chunk."""
    parts = []
    for start in range(0, len(view), chunk_rows):
        stop = min(start + chunk_rows, len(view))
        lo, hi = np.searchsorted(idx, [start, stop])
        if lo < hi:
            parts.append(np.asarray(view[start:stop], dtype=np.float64)[idx[lo:hi] - start])
    return np.concatenate(parts)


def _cca_matrix(measure: str, xa: list[np.ndarray], xb: list[np.ndarray], bases: dict) -> np.ndarray:
    """SVCCA or PWCCA of every layer pair, whitening each layer once (same values as :func:`svcca`/:func:`pwcca`)."""
    keep = 0.99 if measure == "svcca" else None

    def basis(side, i, x):
        key = (side, i, keep)
        if key not in bases:
            xc = x - x.mean(0)
            bases[key] = (xc, _whiten_basis(xc, keep))
        return bases[key]

    out = np.empty((len(xa), len(xb)))
    for i, x in enumerate(xa):
        xc, qx = basis("a", i, x)
        for j, y in enumerate(xb):
            _, qy = basis("b", j, y)
            if measure == "svcca":
                out[i, j] = float(np.mean(np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0, 1)))
            else:
                u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
                h = qx @ u
                alpha = np.abs(h[:, : rho.shape[0]].T @ xc).sum(axis=1)
                out[i, j] = float(np.sum(alpha * np.clip(rho, 0, 1)) / np.sum(alpha))
    return out


_POSITIVE = Interval(Integral, 1, None, closed="left")


def _rows_of(view, level: str, how: str | None):
    """The rows compared at ``level``: pooled with ``how``, or by default with means where the store holds them
    and otherwise with the pooling it holds (a decoder's task stores hold last-token rows)."""
    if level == "token":
        return view.row_view(level, None)
    if how is not None or level not in ("sentence", "word"):  # (an unknown level: the store names the problem)
        return view.row_view(level, how)
    try:
        return view.row_view(level, "mean")
    except KeyError:
        return view.row_view(level, None)


@declare({
    "layer_map": [Mapping, None],
    "level": [Options({"sentence", "token", "word"})],
    "how": [Options({"mean", "first", "last", "cls"}), None],
    "measures": [ListOf(Options(MEASURES), min_len=1), Options(MEASURES)],
    "max_rows": [Interval(Integral, 2, None, closed="left")],
    "seed": [Interval(Integral, 0, None, closed="left")],
    "chunk_rows": [_POSITIVE],
    "attention": [Boolean()],
    "progress": [Boolean()],
})

def compare(
    store_a,
    store_b,
    *,
    sites_a: Sequence[Site | str] | None = None,
    sites_b: Sequence[Site | str] | None = None,
    layer_map: Mapping[str, str] | None = None,
    level: str = "sentence",
    how: str | None = None,
    measures: Sequence[str] = STREAMED_MEASURES,
    max_rows: int = 10000,
    seed: int = 0,
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
        :func:`probekit.compare.layer_map_for` reads it from a variant's
        recipe recorded in the stores.
    level : {"sentence", "token", "word"}
        Rows compared: one per example (pooled with ``how``), per token, or per word.
        ``how`` (a keyword) picks the sentence or word pooling; by default means where the stores hold
        them, otherwise the pooling they hold (a decoder's task stores hold the last token).
    measures : sequence of str
        Any of ``linear_cka`` and ``procrustes`` (exact, streamed over all
        rows) and ``svcca``, ``pwcca``, ``rbf_cka``, ``minibatch_cka`` (in
        memory, on at most ``max_rows`` rows; ``rbf_cka`` on at most
        ``RBF_MAX_ROWS`` of them).
    max_rows : int
        Row cap of the in-memory measures; with more rows, the same seeded
        random subsample of rows is used for every site of both stores.
    seed : int
        Seed of that subsample (and of ``minibatch_cka``'s batches).
    attention : bool
        Also compare attention patterns of layers stored in both (per head:
        Jensen-Shannon divergence and pattern correlation).

    Returns
    -------
    Comparison
    """
    validate_params(compare, locals())
    measures = _check_measures(measures)
    if level not in ("sentence", "token", "word"):
        raise ValueError(f"level must be 'sentence', 'token' or 'word', not {level!r}")
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
    views_a = [_rows_of(store_a[s], level, how) for s in sa]
    views_b = [_rows_of(store_b[s], level, how) for s in sb]
    n = {len(v) for v in views_a + views_b}
    if len(n) != 1:
        raise ValueError(f"the stores do not align row by row at level {level!r}: row counts {sorted(n)}")
    total = next(iter(n))
    matrices: dict[str, pd.DataFrame] = {}
    rows_used: dict[str, int] = {}
    streamed = [m for m in measures if m in STREAMED_MEASURES]
    if streamed:
        acc = CrossMoments(len(sa), len(sb))
        for start in tqdm(range(0, total, chunk_rows), desc="similarity", unit="chunk", disable=not progress):
            stop = min(start + chunk_rows, total)
            acc.update([v[start:stop] for v in views_a], [v[start:stop] for v in views_b])
        for m in streamed:
            matrices[m] = pd.DataFrame(getattr(acc, m)(), index=names_a, columns=names_b)
            rows_used[m] = total
    in_memory = [m for m in measures if m in IN_MEMORY_MEASURES]
    if in_memory:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(total, max_rows, replace=False)) if total > max_rows else np.arange(total)
        xa = [_take(v, idx, chunk_rows) for v in views_a]
        xb = [_take(v, idx, chunk_rows) for v in views_b]
        bases: dict = {}
        for m in in_memory:
            if m in ("svcca", "pwcca"):
                vals = _cca_matrix(m, xa, xb, bases)
                matrices[m] = pd.DataFrame(vals, index=names_a, columns=names_b)
                rows_used[m] = len(idx)
                continue
            fn, kw, take = IN_MEMORY_MEASURES[m], {}, slice(None)
            if m == "rbf_cka":
                take = slice(0, RBF_MAX_ROWS)  # idx is a random sample, so its first rows are one too
                kw = {"max_rows": RBF_MAX_ROWS}
            elif m == "minibatch_cka":
                kw = {"seed": seed}
            vals = np.array([[fn(x[take], y[take], **kw) for y in xb]
                             for x in tqdm(xa, desc=m, unit="layer", disable=not progress)])
            matrices[m] = pd.DataFrame(vals, index=names_a, columns=names_b)
            rows_used[m] = int(len(xa[0][take]))
    matrices = {m: matrices[m] for m in measures}
    model_a = store_a.manifest.get("model", {}).get("name")
    model_b = store_b.manifest.get("model", {}).get("name")
    n_blocks = store_blocks(store_a)
    rows = []
    for a, b in layer_map.items():
        for measure, m in matrices.items():
            rows.append({"model": model_a, "variant": model_b, **site_columns(a, n_blocks), "site_b": b,
                         "metric": f"{measure}:{level}", "value": float(m.loc[a, b])})
    results = Results(rows)
    if attention:
        results = results + attention_deltas(store_a, store_b, progress=progress)
    return Comparison(matrices, results, dict(layer_map), level=level, rows_used=rows_used, model=model_a,
                      variant=model_b, n_blocks=n_blocks)


def attention_deltas(store_a, store_b, *, head_map: Mapping[tuple[int, int], tuple[int, int]] | None = None,
                     progress: bool = True) -> Results:
    """Per head: mean Jensen-Shannon divergence (bits) and Pearson correlation of the two patterns.

    Rows carry A's head (``site = "L{i}.attn.pattern"``, ``block = i``,
    ``layer = i + 1``, ``head``) and B's head as ``site_b``
    (``"L{j}.attn.pattern.h{k}"``).

    ``head_map`` maps (block, head) of A to (block, head) of B; default:
    :func:`head_map_for`, which reads the variants' layer maps recorded in
    the stores (the surviving heads of a head-pruned model, a distilled
    student's teacher layers) and otherwise pairs the same head of the same
    layer.
    """
    if head_map is None:
        head_map = head_map_for(store_a, store_b)
        for (la_, ha), (lb_, hb) in head_map.items():
            if ha >= store_a.heads(la_) or hb >= store_b.heads(lb_):
                raise ValueError(f"head map pairs L{la_}.h{ha} with L{lb_}.h{hb} but layer {la_} of A has "
                                 f"{store_a.heads(la_)} heads and layer {lb_} of B {store_b.heads(lb_)}")
    if not head_map:
        return Results()
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
        lb_, hb = head_map[(lay, head)]
        base = {"model": store_a.manifest.get("model", {}).get("name"),
                "variant": store_b.manifest.get("model", {}).get("name"),
                **site_columns(Site(lay, "attn.pattern", head)), "site_b": str(Site(lb_, "attn.pattern", hb))}
        out.append({**base, "metric": "attention_jsd_bits", "value": jsd[(lay, head)] / rows_seen})
        out.append({**base, "metric": "attention_corr", "value": corr[(lay, head)] / rows_seen})
    return Results(out)


class CompareSuite:
    """:func:`compare` in the suites' shape: the two stores and the options first, ``run()`` gives :class:`Results`.

    Parameters
    ----------
    store_a, store_b : ActivationStore
        The reference (e.g. the base model) and the model compared with it,
        extracted from the same data.
    **options
        Any keyword of :func:`compare` but ``progress`` (``measures``,
        ``level``, ``layer_map``, ...); checked here, before anything runs.

    Attributes
    ----------
    comparison : Comparison or None
        The last :meth:`run`'s full outcome (the layer x layer matrices as
        well as the rows), ``None`` before the first run.

    Examples
    --------
    >>> from probekit.compare import CompareSuite
    >>> CompareSuite(None, None, level="phrase")
    Traceback (most recent call last):
    ...
    probekit.validation.InvalidParameterError: the 'level' parameter of compare must be ...
    """

    def __init__(self, store_a, store_b, **options):
        known = set(inspect.signature(compare).parameters) - {"store_a", "store_b", "progress"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"CompareSuite got unknown options {unknown}; it takes {sorted(known)}")
        validate_params(compare, options)
        self.store_a, self.store_b, self.options = store_a, store_b, dict(options)
        self.comparison: Comparison | None = None

    def run(self, *, progress: bool = True, matrix: bool = False) -> Results:
        """The comparison's rows (the aligned diagonal and attention deltas), as every suite's ``run`` gives.

        ``matrix=True`` adds every cell of the layer x layer matrices
        (:meth:`Comparison.matrix_results`).
        """
        self.comparison = compare(self.store_a, self.store_b, progress=progress, **self.options)
        return self.comparison.to_results(matrix=matrix)
