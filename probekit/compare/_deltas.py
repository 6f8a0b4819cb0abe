"""Probe accuracy deltas between two models (a base and a variant), task by task and layer by layer.

Two ways in, two kinds of interval:

- two fitted :class:`~probekit.probes.ProbeSuite` objects (one per store):
  the suites keep every probe's test predictions (``predictions_``), so the
  delta gets a **paired** percentile bootstrap over the test examples (the
  same resampled examples for both models and, for the seed mean, for every
  seed) and a McNemar test per seed;
- two result tables (``ProbeSuite.run(...)`` Results or their frames):
  only each model's own interval is known, so the delta's interval combines
  the two intervals as if the two accuracies were independent (the MOVER
  method of Zou & Donner 2008: ``d - sqrt((b - lb)^2 + (ua - a)^2)``,
  ``d + sqrt((ub - b)^2 + (a - la)^2)``). Both probes are scored on the same
  test examples, whose errors are usually positively correlated, so this
  interval is typically wider than the paired one: use it as a rough
  guide, and the suites when the interval matters. These rows are named
  ``delta_<metric>_mover`` so they are never mistaken for paired ones.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from probekit.model import Site
from probekit.probes import mcnemar, paired_bootstrap_seeds
from probekit.results import Results, site_columns

__all__ = ["probe_deltas"]

_METRICS = ("accuracy", "macro_f1")


def _order(site: str) -> tuple:
    """Sort key of sites within one model: emb, then block by block, final last (no model size needed)."""
    s = Site.parse(site)
    return (2, 0, str(s)) if s.component == "final" else (0 if s.layer is None else 1, s.layer or 0, str(s))


def _suite_key(suite, which: str, key) -> tuple:
    keys = sorted({k[:2] for k in suite.predictions_}, key=str)
    if not keys:
        raise ValueError(f"suite {which} holds no predictions; call its run() first")
    if key is not None:
        key = tuple(key) if isinstance(key, tuple) else (key, None)
        if key not in keys:
            raise KeyError(f"suite {which} has no predictions for (model, variant) {key}; it has {keys}")
        return key
    if len(keys) > 1:
        raise ValueError(f"suite {which} ran over several stores {keys}; pass key_{which}=(model, variant)")
    return keys[0]


def _align(sites_a, sites_b, layer_map) -> dict[str, str]:
    if layer_map is None:
        return {s: s for s in sites_a if s in sites_b}
    bad = {a: b for a, b in layer_map.items() if a not in sites_a or b not in sites_b}
    if bad:
        raise ValueError(f"layer map entries {bad} name sites the probes did not cover; "
                         f"A: {sorted(sites_a, key=_order)}, B: {sorted(sites_b, key=_order)}")
    return dict(layer_map)


def probe_deltas(a, b, *, layer_map: Mapping[str, str] | None = None, metric: str = "accuracy",
                 key_a=None, key_b=None, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> Results:
    """Probe ``metric`` of B minus A per task, aligned layer and probe seed, with intervals.

    Parameters
    ----------
    a, b : ProbeSuite, Results or DataFrame
        The base model's and the variant's probe results on the same tasks,
        test examples and probe seeds. Fitted suites give paired bootstrap
        intervals; result tables give the interval-combined approximation
        described in the module docstring (both must be of the same kind).
    layer_map : mapping site of A -> site of B, optional
        Which probed layer of B stands for which layer of A (e.g. from
        :func:`probekit.compare.layer_map_for`). Default: same-named sites.
    metric : {"accuracy", "macro_f1"}
    key_a, key_b : (model, variant) or model name, optional
        Which store's probes to use when a suite ran over several stores.
    n_boot, alpha, seed
        Bootstrap replicates, interval level ``1 - alpha`` and bootstrap seed.

    Returns
    -------
    Results
        Per task, aligned site pair (``site``, ``layer`` and ``block`` of A on
        the layer axis, ``site_b`` of B) and probe: ``delta_<metric>`` per probe seed (paired bootstrap) with
        ``mcnemar_p`` beside it, ``delta_<metric>_mean`` over seeds (one
        bootstrap resampling shared by all seeds), and ``<metric>_a`` /
        ``<metric>_b`` (seed means). From result tables: ``delta_<metric>_mover``
        per seed and for the seed mean (then the seed-mean interval combines
        the seed-averaged interval bounds). ``model`` is A's name,
        ``variant`` B's label (``model`` or ``model/variant``).

    Examples
    --------
    Sentiment probes on a tiny model and on its half-pruned copy:

    >>> import probekit, tempfile, transformers
    >>> from probekit.data import build_task
    >>> from probekit.probes import ProbeSuite, extract_task
    >>> from probekit.variants import magnitude_prune
    >>> base = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> task, d = build_task("sentiment", "rt", limit=60), tempfile.mkdtemp()
    >>> suites = []
    >>> for name, m in (("base", base), ("pruned", magnitude_prune(base, sparsity=0.5))):
    ...     store = extract_task(m, task, f"{d}/{name}", progress=False)
    ...     suite = ProbeSuite(task, "linear", controls=False, n_boot=100)
    ...     _ = suite.run(store)
    ...     suites.append(suite)
    >>> deltas = probe_deltas(*suites, layer_map={"L1.resid": "L1.resid"}, n_boot=100)
    >>> df = deltas.to_frame().query("metric == 'delta_accuracy_mean'")
    >>> df[["task", "site", "site_b", "probe"]].values.tolist()
    [['sentiment', 'L1.resid', 'L1.resid', 'linear']]
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, not {metric!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    suites = [hasattr(x, "predictions_") for x in (a, b)]
    if all(suites):
        return _from_suites(a, b, layer_map, metric, key_a, key_b, n_boot, alpha, seed)
    if any(suites):
        raise TypeError("pass two fitted ProbeSuites (paired intervals) or two result tables, not one of each")
    return _from_tables(a, b, layer_map, metric)


def _label(key) -> str:
    model, variant = key
    return str(model) if variant is None else f"{model}/{variant}"


def _from_suites(sa, sb, layer_map, metric, key_a, key_b, n_boot, alpha, seed) -> Results:
    ka, kb = _suite_key(sa, "a", key_a), _suite_key(sb, "b", key_b)
    pa = {k[2:]: v for k, v in sa.predictions_.items() if k[:2] == ka}  # (task, site, probe, seed) -> pred
    pb = {k[2:]: v for k, v in sb.predictions_.items() if k[:2] == kb}
    tasks = sorted({k[0] for k in pa} & {k[0] for k in pb})
    if not tasks:
        raise ValueError(f"the suites share no task: A has {sorted({k[0] for k in pa})}, "
                         f"B has {sorted({k[0] for k in pb})}")
    rows: list[dict] = []
    rng_seed = seed
    for task in tasks:
        y_a, y_b = np.asarray(sa.truth_[ka + (task,)]), np.asarray(sb.truth_[kb + (task,)])
        if y_a.shape != y_b.shape or not np.array_equal(y_a.astype(str), y_b.astype(str)):
            raise ValueError(f"task {task!r}: the two suites scored different test examples "
                             f"({len(y_a)} vs {len(y_b)} rows, or other labels); deltas need the same test rows")
        sites_a = {k[1] for k in pa if k[0] == task}
        sites_b = {k[1] for k in pb if k[0] == task}
        lmap = _align(sites_a, sites_b, layer_map)
        probes = sorted({k[2] for k in pa if k[0] == task} & {k[2] for k in pb if k[0] == task})
        n_blocks = getattr(sa, "n_blocks_", {}).get(ka)
        for site_a, site_b in sorted(lmap.items(), key=lambda kv: _order(kv[0])):
            for probe in probes:
                seeds = sorted({k[3] for k in pa if k[:3] == (task, site_a, probe)}
                               & {k[3] for k in pb if k[:3] == (task, site_b, probe)})
                if not seeds:
                    continue
                preds_a = [np.asarray(pa[(task, site_a, probe, s)]) for s in seeds]
                preds_b = [np.asarray(pb[(task, site_b, probe, s)]) for s in seeds]
                base = {"model": _label(ka), "variant": _label(kb), "task": task, **site_columns(site_a, n_blocks),
                        "site_b": site_b, "probe": probe, "split": None}
                rows += _paired_rows(base, y_a, preds_a, preds_b, seeds, metric, n_boot, alpha, rng_seed)
    return Results(rows)


def _paired_rows(base, y, preds_a, preds_b, seeds, metric, n_boot, alpha, rng_seed) -> list[dict]:
    """Rows for one (task, site pair, probe): per-seed and seed-mean deltas from one joint resampling."""
    va0, vb0, d = paired_bootstrap_seeds(y, preds_a, preds_b, metric, n_boot=n_boot, random_state=rng_seed)
    d0 = vb0 - va0
    lo, hi = np.nanquantile(d, [alpha / 2, 1 - alpha / 2], axis=0)
    dm = d.mean(1)
    mlo, mhi = np.nanquantile(dm, [alpha / 2, 1 - alpha / 2])
    out = []
    for i, s in enumerate(seeds):
        out.append({**base, "seed": s, "metric": f"delta_{metric}", "value": float(d0[i]),
                    "ci_low": float(lo[i]), "ci_high": float(hi[i])})
        out.append({**base, "seed": s, "metric": "mcnemar_p", "value": float(mcnemar(y, preds_b[i], preds_a[i]).pvalue),
                    "ci_low": np.nan, "ci_high": np.nan})
    out.append({**base, "seed": None, "metric": f"delta_{metric}_mean", "value": float(d0.mean()),
                "ci_low": float(mlo), "ci_high": float(mhi)})
    out.append({**base, "seed": None, "metric": f"{metric}_a", "value": float(va0.mean()),
                "ci_low": np.nan, "ci_high": np.nan})
    out.append({**base, "seed": None, "metric": f"{metric}_b", "value": float(vb0.mean()),
                "ci_low": np.nan, "ci_high": np.nan})
    return out


def _frame(x) -> pd.DataFrame:
    if isinstance(x, Results):
        return x.to_frame()
    if isinstance(x, pd.DataFrame):
        return x
    raise TypeError(f"expected a ProbeSuite, Results or DataFrame, got {type(x).__name__}")


def _table_site_columns(rows: pd.DataFrame, site: str) -> dict:
    """``site_columns`` of ``site``, taking its layer from A's own rows (they know the model's size)."""
    layers = rows.loc[rows["site"] == site, "layer"].dropna() if "layer" in rows.columns else pd.Series([])
    if len(layers):
        cols = site_columns(site, n_blocks=1)  # n_blocks only matters for final, whose layer is read below
        cols["layer"] = int(layers.iloc[0])
        return cols
    return site_columns(site)


def _mover(a, la, ua, b, lb, ub) -> tuple[float, float, float]:
    d = b - a
    return d, d - np.sqrt((b - lb) ** 2 + (ua - a) ** 2), d + np.sqrt((ub - b) ** 2 + (a - la) ** 2)


def _from_tables(ta, tb, layer_map, metric) -> Results:
    fa, fb = _frame(ta), _frame(tb)
    rows: list[dict] = []
    keys = ["task", "site", "probe", "seed"]
    for name, f in (("A", fa), ("B", fb)):
        if not (f["metric"] == metric).any():
            raise ValueError(f"results {name} have no per-seed {metric!r} rows (ProbeSuite output expected)")
    fa = fa[(fa["metric"] == metric) & fa["site"].notna()]
    fb = fb[(fb["metric"] == metric) & fb["site"].notna()]
    for name, f in (("A", fa), ("B", fb)):
        groups = f.groupby(["model", "variant"], dropna=False).ngroups
        if groups > 1:
            raise ValueError(f"results {name} hold several models/variants; filter them to one first")
    label = lambda f: _label((f["model"].iloc[0], None if pd.isna(f["variant"].iloc[0]) else f["variant"].iloc[0]))
    tasks = sorted(set(fa["task"]) & set(fb["task"]))
    if not tasks:
        raise ValueError(f"the results share no task: A has {sorted(set(fa['task']))}, B has {sorted(set(fb['task']))}")
    for task in tasks:
        ga, gb = fa[fa["task"] == task], fb[fb["task"] == task]
        lmap = _align(set(ga["site"]), set(gb["site"]), layer_map)
        ia, ib = ga.set_index(keys), gb.set_index(keys)
        for site_a, site_b in sorted(lmap.items(), key=lambda kv: _order(kv[0])):
            cols = _table_site_columns(ga, site_a)
            for probe in sorted(set(ga["probe"]) & set(gb["probe"])):
                seeds = sorted(set(ga[(ga.site == site_a) & (ga.probe == probe)]["seed"])
                               & set(gb[(gb.site == site_b) & (gb.probe == probe)]["seed"]))
                base = {"model": label(fa), "variant": label(fb), "task": task, **cols, "site_b": site_b,
                        "probe": probe, "split": None}
                per = []
                for s in seeds:
                    ra, rb = ia.loc[(task, site_a, probe, s)], ib.loc[(task, site_b, probe, s)]
                    vals = (float(ra["value"]), float(ra["ci_low"]), float(ra["ci_high"]),
                            float(rb["value"]), float(rb["ci_low"]), float(rb["ci_high"]))
                    per.append(vals)
                    d, lo, hi = _mover(*vals)
                    rows.append({**base, "seed": s, "metric": f"delta_{metric}_mover", "value": d,
                                 "ci_low": lo, "ci_high": hi})
                if per:
                    m = np.mean(np.asarray(per), axis=0)
                    d, lo, hi = _mover(*m)
                    rows.append({**base, "seed": None, "metric": f"delta_{metric}_mean_mover", "value": d,
                                 "ci_low": lo, "ci_high": hi})
                    rows.append({**base, "seed": None, "metric": f"{metric}_a", "value": m[0],
                                 "ci_low": np.nan, "ci_high": np.nan})
                    rows.append({**base, "seed": None, "metric": f"{metric}_b", "value": m[3],
                                 "ci_low": np.nan, "ci_high": np.nan})
    return Results(rows)
