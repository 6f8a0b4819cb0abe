"""ProbeSuite: tasks x sites x probes x seeds over one or more activation stores.

Every number is a tidy row of :class:`probekit.Results` (``model, variant,
task, layer, block, site, probe, seed, split, metric, value, ci_low,
ci_high``; ``layer`` on the one layer axis: ``emb`` 0, ``L{i}.*`` ``i + 1``,
``final`` after the last block; ``block`` = ``i`` for a block's sublayers
such as ``L{i}.mlp.out``). Metrics, for each store, task and probe:

- ``accuracy``, ``macro_f1`` per layer and seed, with a percentile bootstrap
  interval over test examples (``1 - alpha``, default 95%);
  ``accuracy_mean``/``accuracy_std``/``macro_f1_mean``/``macro_f1_std`` over
  seeds (``seed`` empty).
- the same for the control task (``task = "<name>.control"``, Hewitt & Liang
  2019, same probe, same rows) and ``selectivity`` = task accuracy minus
  control accuracy, per layer and seed and for the seed means.
- the ``majority`` baseline (``probe = "majority"``, no layer): the most
  frequent training label predicted everywhere. The embedding layer is layer
  0 (site ``emb``); the random-weights baseline is a store extracted from
  :func:`random_init_copy` passed beside the real one (e.g. under the key
  ``(model, "random-init")``).
- ``delta_accuracy_vs_prev`` (paired bootstrap of layer l minus layer l-1 on
  the same test examples, first seed) and ``mcnemar_p_vs_prev``; with several
  stores, ``delta_accuracy_vs_reference``/``mcnemar_p_vs_reference`` of each
  store against the first one at the same site.
- ``expected_layer`` (Tenney et al. 2019, layer 0 as the baseline; on the layer axis) from the
  running maximum of the seed-mean accuracies over layers -- a stand-in for
  Tenney's cumulative scoring (a probe on layers ``0..l`` does at least as
  well as the best single one), which keeps every delta non-negative and the
  value within the probed layers (NaN when no layer gains) -- and ``center_of_gravity`` of the per-layer gain
  over the majority baseline (clipped at 0).

Linear probes (an L2 :class:`LinearProbe`, the default) of classification
tasks are trained from the store in bounded memory (``memory_budget``): the
suite reads one layer at a time, block by block, and every task of the same
rows (e.g. ``upos`` and ``deprel`` of one treebank), its control task and
every seed share each pass over the features (see
:mod:`probekit.probes._stream`: minibatch Adam on streamed, standardized
features). The intervals and paired tests need only the test predictions and
are exact as before. Other probes (MLP, rank-limited, L1) hold a task's
features in memory (``stream=False`` does so for every probe).

Structural tasks train a :class:`DistanceProbe` (``uuas``,
``distance_spearman``) and a :class:`DepthProbe` (``root_accuracy``,
``depth_spearman``) per layer and seed, without intervals or controls.
Edge tasks (``arc``, ``arclabel``) probe the concatenation ``[h_i; h_j]``
of the two words' vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from numbers import Integral, Real

import numpy as np
from sklearn.base import clone

from probekit.data import control_task
from probekit.model import Site, site_block, site_layer
from probekit.probes._batched import fit_batched
from probekit.probes._linear import LinearProbe
from probekit.probes._mlp import MLPProbe
from probekit.probes._stats import bootstrap_ci, center_of_gravity, expected_layer, mcnemar, paired_bootstrap
from probekit.probes._stream import DEFAULT_BUDGET, StreamConfig, fit_streamed, parse_bytes
from probekit.probes._structural import DepthProbe, DistanceProbe
from probekit.probes._task_store import TaskInputs, stream_inputs, task_inputs, task_labels
from probekit.profiling import phase
from probekit.results import Results, store_blocks
from probekit.store import ActivationStore
from probekit.validation import Boolean, Device, InstanceOf, Interval, ListOf, validate_params

logger = logging.getLogger(__name__)

__all__ = ["ProbeSuite", "PROBES"]

#: The probes named by a string (``ProbeSuite(task, "mlp")``, an experiment config's ``probes.probes``).
PROBES = {"linear": LinearProbe, "mlp": MLPProbe}


def _as_probes(probes) -> dict:
    if probes is None:
        return {"linear": LinearProbe(random_state=0)}
    if isinstance(probes, str):
        probes = [probes]
    if isinstance(probes, Mapping):
        return dict(probes)
    out = {}
    for p in probes if isinstance(probes, Sequence) else [probes]:
        if isinstance(p, str):
            if p not in PROBES:
                raise ValueError(f"unknown probe {p!r}; use one of {sorted(PROBES)} or pass an estimator")
            out[p] = PROBES[p](random_state=0)
        else:
            out[type(p).__name__.replace("Probe", "").lower()] = p
    return out


def _as_stores(stores) -> list[tuple[str, str | None, object]]:
    if isinstance(stores, ActivationStore):
        stores = [stores]
    items = stores.items() if isinstance(stores, Mapping) else [(None, s) for s in stores]
    out = []
    for key, st in items:
        name = (st.manifest.get("model") or {}).get("name") or st.path.name
        variant = None
        if isinstance(key, tuple):
            name, variant = key
        elif key is not None:
            name = key
        out.append((str(name), variant, st))
    if not out:
        raise ValueError("no stores given")
    return out


class ProbeSuite:
    """Run probing tasks over activation stores and collect tidy results.

    Parameters
    ----------
    tasks : Task or sequence of Task
        Real (not control) tasks; each store must hold exactly each task's
        examples (see :func:`extract_task`). Tasks of different example sets
        need different stores: pass one suite per store set, or ``stores``
        mapping for the matching task only (``run(..., task_stores=...)``).
    probes : str, estimator, sequence or mapping, optional
        ``"linear"`` (default), ``"mlp"``, estimators, or ``{name: estimator}``.
    seeds : sequence of int
        Seeds of every probe: a streamed linear probe's seed fixes its order of
        rows; other probes' seeds vary the initialisation (all layers x seeds of
        a task are fitted at once with :func:`fit_streamed` or :func:`fit_batched`).
    controls : bool
        Also run each task's control task and report selectivity.
    control_seed : int
    n_boot : int
        Bootstrap replicates of every interval and paired test.
    alpha : float
        Intervals are ``1 - alpha``.
    sites : sequence of str, optional
        Sites to probe (default: every token-level site of the store).
    structural : dict, optional
        Parameters of the structural probes (default ``rank=32, max_iter=20``).
    memory_budget : int or str
        Bytes of features (``"512MB"``, ``"2GB"``) the streamed linear probes
        keep in memory between passes (default 1 GiB); beyond it blocks are
        read again from the store. It changes speed, never results.
    stream : bool
        Train L2 :class:`LinearProbe` probes from the store in bounded memory
        (default). False: every probe holds a task's features in memory.
    device : str, optional
        Torch device of the streamed probes (``"cuda"``, ``"cpu"``; default:
        each probe's own ``device``).

    Attributes
    ----------
    predictions_ : dict
        ``(model, variant, task, site, probe, seed) -> predicted labels`` on
        the test rows, after :meth:`run`.
    truth_ : dict
        ``(model, variant, task) -> gold test labels``.
    n_blocks_ : dict
        ``(model, variant) -> number of blocks`` of each store's model (the
        layer of ``final`` is ``n_blocks + 1``).
    profile_ : dict
        Seconds spent per stage of the streamed probes (``read`` is part of the
        others), summed over stores, and ``peak_cache_bytes``.

    Examples
    --------
    >>> import probekit, tempfile, transformers
    >>> from probekit.data import build_task
    >>> m = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> from probekit.probes import extract_task
    >>> upos = build_task("upos", "rt", limit=20)
    >>> store = extract_task(m, upos, tempfile.mkdtemp() + "/upos", progress=False)
    >>> suite = ProbeSuite(upos, "linear", seeds=(0, 1), n_boot=100)
    >>> df = suite.run({"tiny-bert": store}).to_frame()
    >>> sorted(df["task"].unique()), sorted(df["probe"].unique())
    (['upos', 'upos.control'], ['linear', 'majority'])
    >>> sorted(df["site"].dropna().unique())
    ['L0.resid', 'L1.resid', 'emb']

    A dict key ``(model, variant)`` labels a variant's store, e.g.
    ``{"minilm": store, ("minilm", "random-init"): rstore}``.

    Every setting is checked here, when it is given:

    >>> ProbeSuite(upos, alpha=1.5)
    Traceback (most recent call last):
    ...
    probekit.validation.InvalidParameterError: the 'alpha' parameter of ProbeSuite must be a float ... got 1.5
    """

    #: What each setting accepts (checked in the constructor; shared with the experiment-config schema).
    _parameter_constraints = {
        "seeds": [ListOf(Interval(Integral, 0, None, closed="left"), min_len=1)],
        "controls": [Boolean()],
        "control_seed": [Interval(Integral, 0, None, closed="left")],
        "n_boot": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, 1, closed="neither")],
        "sites": [ListOf(InstanceOf(str, Site, name="a site")), None],
        "structural": [dict, None],
        "memory_budget": [Interval(Integral, 1, None, closed="left"), str],
        "stream": [Boolean()],
        "device": [Device(auto=True), None],
    }

    def __init__(self, tasks, probes=None, seeds: Sequence[int] = (0,), *, controls: bool = True,
                 control_seed: int = 0, n_boot: int = 1000, alpha: float = 0.05,
                 sites: Sequence[str] | None = None, structural: dict | None = None,
                 memory_budget: int | str = DEFAULT_BUDGET, stream: bool = True, device: str | None = None):
        validate_params(ProbeSuite, {**locals(), "seeds": list(seeds) if isinstance(seeds, range) else seeds})
        self.tasks = [tasks] if hasattr(tasks, "dataset") else list(tasks)
        for t in self.tasks:
            if t.control_of is not None:
                raise ValueError(f"pass real tasks; {t.name!r} is a control task (controls=True adds them)")
        self.probes = _as_probes(probes)
        for est in self.probes.values():  # the probes' own settings, checked now rather than after extraction
            check = getattr(est, "_check_params", None)
            if check is not None:
                check()
        self.seeds = tuple(int(s) for s in seeds)
        if not self.seeds:
            raise ValueError("seeds is empty")
        self.controls = controls
        self.control_seed = control_seed
        self.n_boot = n_boot
        self.alpha = alpha
        self.sites = sites
        self.structural = {"rank": 32, "max_iter": 20, **(structural or {})}
        unknown = set(self.structural) - set(DistanceProbe._parameter_constraints)
        if unknown:
            raise ValueError(f"structural: unknown structural-probe settings {sorted(unknown)}; known: "
                             f"{', '.join(sorted(DistanceProbe._parameter_constraints))}")
        validate_params(DistanceProbe, self.structural, caller="ProbeSuite(structural=...)")
        self.memory_budget = parse_bytes(memory_budget)
        self.stream = stream
        self.device = device
        self.profile_: dict = {}
        self.predictions_: dict = {}
        self.truth_: dict = {}
        self.n_blocks_: dict = {}

    # ------------------------------------------------------------------ run
    def run(self, stores) -> Results:
        """Run every task over every store.

        Parameters
        ----------
        stores : ActivationStore, sequence of them, or mapping
            Keys are model names or ``(model, variant)`` tuples; without keys
            the model name comes from the store's manifest. The first store is
            the reference of the ``*_vs_reference`` comparisons.

        Returns
        -------
        Results
        """
        rows: list[dict] = []
        items = _as_stores(stores)
        for model, variant, store in items:
            self.n_blocks_[(model, variant)] = store_blocks(store)
        controls = {}
        for task in self.tasks:
            if self.controls and task.level in ("sentence", "word", "edge"):
                controls[task.name] = control_task(task, self.control_seed)
        streamed: dict = {}
        inputs: dict = {}
        for si, (_, _, store) in enumerate(items):
            streamed.update(self._stream_store(si, store, controls, inputs))
        for task in self.tasks:
            control = controls.get(task.name)
            for si, (model, variant, store) in enumerate(items):
                ctx = {"model": model, "variant": variant}
                logger.info("probing %s on %s/%s", task.name, model, variant)
                inp = inputs.get((si, task.name))
                if inp is None:
                    with phase("read"):
                        inp = task_inputs(store, task, self.sites)
                if task.level == "structural":
                    rows += self._structural(ctx, task, inp)
                    continue
                rows += self._majority(ctx, task, inp)
                full = None  # features in memory, for the probes that are not streamed
                for pname, est in self.probes.items():
                    got = streamed.get((si, task.name, pname))
                    use = inp
                    if got is None and inp.d is not None:
                        full = full or task_inputs(store, task, self.sites)
                        use = full
                    acc = self._classify(ctx, task, task.name, use, use.y, pname, est, rows, got)
                    if control is not None:
                        y_c = task_labels(control)
                        acc_c = self._classify(ctx, task, control.name, use, y_c, pname, est, rows,
                                               streamed.get((si, control.name, pname)))
                        rows += self._selectivity(ctx, task, inp, pname, acc, acc_c)
                    rows += self._depth_of(ctx, task, inp, pname, acc, rows)
            rows += self._vs_reference(items, task)
        return Results(rows)

    # ------------------------------------------------------------ pieces
    def _row(self, ctx, task_name, inp: TaskInputs | None, li, probe, seed, metric, value, lo=np.nan, hi=np.nan,
             split=None):
        return {**ctx, "task": task_name, "layer": None if li is None else inp.layers[li],
                "block": None if li is None else site_block(inp.sites[li]),
                "site": None if li is None else str(inp.sites[li]), "head": None, "probe": probe, "seed": seed,
                "split": split if split is not None else (inp.test_split if inp is not None else None),
                "metric": metric, "value": float(value), "ci_low": float(lo), "ci_high": float(hi)}

    def _ci_rows(self, ctx, task_name, inp, li, probe, seed, y_true, pred, rs):
        out = []
        with phase("bootstrap"):
            for metric in ("accuracy", "macro_f1"):
                ci = bootstrap_ci(y_true, pred, metric, n_boot=self.n_boot, alpha=self.alpha, random_state=rs)
                out.append(self._row(ctx, task_name, inp, li, probe, seed, metric, ci.estimate, ci.low, ci.high))
        return out

    def _majority(self, ctx, task, inp: TaskInputs) -> list[dict]:
        y = np.asarray(inp.y)
        labels, counts = np.unique(y[inp.train], return_counts=True)
        major = labels[np.argmax(counts)]
        pred = np.full(int(inp.test.sum()), major, dtype=y.dtype)
        return self._ci_rows(ctx, task.name, inp, None, "majority", None, y[inp.test], pred, self.control_seed)

    # ------------------------------------------------------------ streamed
    def _streams(self, est) -> bool:
        return self.stream and isinstance(est, LinearProbe) and est.penalty == "l2"

    def _stream_config(self, est) -> StreamConfig:
        from probekit.probes._base import seed_from

        return StreamConfig(lr=float(est.lr), batch_size=int(est.batch_size), max_iter=int(est.max_iter),
                            tol=float(est.tol), n_iter_no_change=int(est.n_iter_no_change),
                            validation_fraction=float(est.validation_fraction) if est.early_stopping else 0.0,
                            C=float(est.C), shuffle_seed=seed_from(est.random_state),
                            memory_budget=self.memory_budget, device=str(self.device or est.device))

    def _stream_store(self, si: int, store, controls: dict, inputs: dict) -> dict:
        """Streamed predictions ``(si, task or control name, probe) -> [layers][seeds]`` labels of one store.

        Tasks that read the same rows (same level, splits and, for edges, pairs) share every pass.
        """
        probes = {p: e for p, e in self.probes.items() if self._streams(e)}
        tasks = [t for t in self.tasks if t.level in ("sentence", "word", "edge")]
        if not probes or not tasks:
            return {}
        groups: list[list] = []
        for task in tasks:
            with phase("read"):
                inp = stream_inputs(store, task, self.sites)
            inputs[(si, task.name)] = inp
            for g in groups:
                first = inputs[(si, g[0].name)]
                if (g[0].level == task.level and task.level != "edge" and np.array_equal(first.train, inp.train)
                        and np.array_equal(first.test, inp.test)):
                    g.append(task)
                    break
            else:
                groups.append([task])
        out: dict = {}
        for group in groups:
            inp = inputs[(si, group[0].name)]
            train, test = np.flatnonzero(inp.train), np.flatnonzero(inp.test)
            names, label_sets = [], []
            for task in group:
                names.append(task.name)
                label_sets.append(inputs[(si, task.name)].y)
                if task.name in controls:
                    names.append(controls[task.name].name)
                    label_sets.append(task_labels(controls[task.name]))
            classes, codes = [], []
            for name, y in zip(names, label_sets):
                cl = np.unique(y[train])
                if len(cl) < 2:
                    raise ValueError(f"{name}: a probe needs at least 2 classes in the training rows; got {cl}")
                classes.append(cl)
                codes.append(np.clip(np.searchsorted(cl, y), 0, len(cl) - 1))
            for pname, est in probes.items():
                logger.info("streaming %d label sets x %d seeds x %d layers of %s (%s)", len(names), len(self.seeds),
                            len(inp.X), store.path.name, pname)
                with phase("fit"):
                    fit = fit_streamed(inp.X, inp.d, codes, [len(c) for c in classes], train, test, self.seeds,
                                       self._stream_config(est))
                for key, v in fit.profile.items():
                    self.profile_[key] = (max if key == "peak_cache_bytes" else sum)((self.profile_.get(key, 0), v))
                for t, name in enumerate(names):
                    out[(si, name, pname)] = [[classes[t][fit.predictions[li][t][s]] for s in range(len(self.seeds))]
                                              for li in range(len(inp.X))]
        return out

    def _classify(self, ctx, task, task_name, inp, y, pname, est, rows, streamed=None) -> np.ndarray:
        """Fit all layers x seeds (or take the streamed predictions); append rows; return test accuracy."""
        y = np.asarray(y)
        y_tr, y_te = y[inp.train], y[inp.test]
        probes = None
        if streamed is None:
            with phase("fit"):
                probes = fit_batched(clone(est), [X[inp.train] for X in inp.X], y_tr, seeds=self.seeds)
        acc = np.zeros((len(inp.X), len(self.seeds)))
        f1 = np.zeros_like(acc)
        self.truth_[(ctx["model"], ctx["variant"], task_name)] = y_te
        for li, X in enumerate(inp.X):
            X_te = X[inp.test] if probes is not None else None
            for si, seed in enumerate(self.seeds):
                with phase("fit"):
                    pred = np.asarray(probes[li][si].predict(X_te)) if probes is not None else streamed[li][si]
                self.predictions_[(ctx["model"], ctx["variant"], task_name, str(inp.sites[li]), pname, seed)] = pred
                r = self._ci_rows(ctx, task_name, inp, li, pname, seed, y_te, pred, seed)
                acc[li, si], f1[li, si] = r[0]["value"], r[1]["value"]
                rows += r
            for name, m in (("accuracy", acc), ("macro_f1", f1)):
                rows.append(self._row(ctx, task_name, inp, li, pname, None, f"{name}_mean", m[li].mean()))
                rows.append(self._row(ctx, task_name, inp, li, pname, None, f"{name}_std", m[li].std(ddof=0)))
            if li > 0:
                key = (ctx["model"], ctx["variant"], task_name)
                a = self.predictions_[key + (str(inp.sites[li]), pname, self.seeds[0])]
                b = self.predictions_[key + (str(inp.sites[li - 1]), pname, self.seeds[0])]
                with phase("bootstrap"):
                    pb = paired_bootstrap(y_te, a, b, n_boot=self.n_boot, alpha=self.alpha,
                                          random_state=self.seeds[0])
                    p_mcnemar = mcnemar(y_te, a, b).pvalue
                rows.append(self._row(ctx, task_name, inp, li, pname, self.seeds[0], "delta_accuracy_vs_prev",
                                      pb.difference, pb.low, pb.high))
                rows.append(self._row(ctx, task_name, inp, li, pname, self.seeds[0], "mcnemar_p_vs_prev",
                                      p_mcnemar))
        return acc

    def _selectivity(self, ctx, task, inp, pname, acc, acc_c) -> list[dict]:
        out = []
        for li in range(len(inp.X)):
            for si, seed in enumerate(self.seeds):
                out.append(self._row(ctx, task.name, inp, li, pname, seed, "selectivity", acc[li, si] - acc_c[li, si]))
            out.append(self._row(ctx, task.name, inp, li, pname, None, "selectivity_mean",
                                 acc[li].mean() - acc_c[li].mean()))
        return out

    def _depth_of(self, ctx, task, inp, pname, acc, rows) -> list[dict]:
        mean = acc.mean(axis=1)
        layers = np.asarray(inp.layers, dtype=np.float64)
        major = next(r["value"] for r in reversed(rows) if r["probe"] == "majority" and r["task"] == task.name
                     and r["metric"] == "accuracy" and r["model"] == ctx["model"] and r["variant"] == ctx["variant"])
        gain = np.clip(mean - major, 0, None)
        cog = center_of_gravity(gain, layers) if gain.sum() > 0 else float("nan")
        el = expected_layer(np.maximum.accumulate(mean), layers)
        return [self._row(ctx, task.name, inp, None, pname, None, "expected_layer", el),
                self._row(ctx, task.name, inp, None, pname, None, "center_of_gravity", cog)]

    def _vs_reference(self, items, task) -> list[dict]:
        if len(items) < 2 or task.level == "structural":
            return []
        out = []
        ref_m, ref_v, _ = items[0]
        seed = self.seeds[0]
        for model, variant, _ in items[1:]:
            y = self.truth_.get((model, variant, task.name))
            if y is None:
                continue
            for (m, v, t, site, pname, s), pred in list(self.predictions_.items()):
                if (m, v, t, s) != (model, variant, task.name, seed):
                    continue
                ref = self.predictions_.get((ref_m, ref_v, t, site, pname, s))
                if ref is None or len(ref) != len(pred):
                    continue
                with phase("bootstrap"):
                    pb = paired_bootstrap(y, pred, ref, n_boot=self.n_boot, alpha=self.alpha, random_state=seed)
                base = {"model": model, "variant": variant, "task": t,
                        "layer": site_layer(site, self.n_blocks_.get((model, variant))), "block": site_block(site),
                        "site": site, "head": None, "probe": pname, "seed": seed, "split": None}
                out.append({**base, "metric": "delta_accuracy_vs_reference", "value": pb.difference,
                            "ci_low": pb.low, "ci_high": pb.high})
                out.append({**base, "metric": "mcnemar_p_vs_reference", "value": mcnemar(y, pred, ref).pvalue,
                            "ci_low": np.nan, "ci_high": np.nan})
        return out

    def _structural(self, ctx, task, inp: TaskInputs) -> list[dict]:
        rows = []
        tr, te = np.flatnonzero(inp.train), np.flatnonzero(inp.test)
        dist = [np.asarray(lab["distance"], dtype=np.float32) for lab in inp.y]
        depth = [np.asarray(lab["depth"], dtype=np.float32) for lab in inp.y]
        for pname, cls, gold in (("distance", DistanceProbe, dist), ("depth", DepthProbe, depth)):
            for li, Xs in enumerate(inp.X):
                vals: dict[str, list[float]] = {}
                for seed in self.seeds:
                    p = cls(**self.structural, random_state=seed).fit([Xs[i] for i in tr], [gold[i] for i in tr])
                    ev = p.evaluate([Xs[i] for i in te], [gold[i] for i in te])
                    for k, v in ev.items():
                        metric = {"spearman": f"{pname}_spearman"}.get(k, k)
                        vals.setdefault(metric, []).append(v)
                        rows.append(self._row(ctx, task.name, inp, li, pname, seed, metric, v))
                for metric, v in vals.items():
                    rows.append(self._row(ctx, task.name, inp, li, pname, None, f"{metric}_mean", np.mean(v)))
                    rows.append(self._row(ctx, task.name, inp, li, pname, None, f"{metric}_std", np.std(v)))
        return rows

    # ------------------------------------------------------------ comparisons
    def compare(self, a: tuple, b: tuple, metric: str = "accuracy") -> dict:
        """Paired bootstrap and McNemar test of two fitted probes on the same test rows.

        Parameters
        ----------
        a, b : tuple
            Keys of :attr:`predictions_`: ``(model, variant, task, site, probe, seed)``
            (two layers of one model, or one layer of two models).
        metric : {"accuracy", "macro_f1"}

        Returns
        -------
        dict
            ``difference, ci_low, ci_high, bootstrap_p, mcnemar_p``.
        """
        for k in (a, b):
            if k not in self.predictions_:
                raise KeyError(f"no predictions for {k}; run() first (keys: model, variant, task, site, probe, seed)")
        y = self.truth_[a[:3]]
        pa, pb_ = self.predictions_[a], self.predictions_[b]
        if len(pa) != len(pb_):
            raise ValueError("the two probes were evaluated on different test rows")
        pb = paired_bootstrap(y, pa, pb_, metric, n_boot=self.n_boot, alpha=self.alpha, random_state=0)
        return {"difference": pb.difference, "ci_low": pb.low, "ci_high": pb.high, "bootstrap_p": pb.pvalue,
                "mcnemar_p": mcnemar(y, pa, pb_).pvalue}
