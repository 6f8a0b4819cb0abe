"""Amnesic probing (Elazar et al. 2021): does the model *use* what a probe finds?

At each layer, a concept eraser is fitted on the task's training rows of the
store; the probe accuracy is measured on the test rows before and after
erasure; then the model runs on held-out text with the eraser applied at that
site (every token, during the forward pass) and its behaviour is compared with
the plain model's and with erasing a random subspace of the same rank. If the
property matters to the model, erasing it hurts much more than erasing random
directions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from probekit.interventions._behaviour import Behaviour
from probekit.interventions._inlp import InlpEraser
from probekit.interventions._leace import LeaceEraser
from probekit.interventions._random import random_eraser_like
from probekit.model import Site, as_hooked_model, site_block, site_layer
from probekit.results import Results

__all__ = ["amnesic_probe", "amnesic_table", "AMNESIC_METHODS"]

logger = logging.getLogger(__name__)

AMNESIC_METHODS = ("leace", "inlp")


def _probe_accuracy(Xtr, ytr, Xte, yte, seed: int, n_boot: int) -> tuple[float, float, float]:
    from probekit.probes import LinearProbe, bootstrap_ci

    pred = LinearProbe(random_state=seed).fit(Xtr, ytr).predict(Xte)
    ci = bootstrap_ci(yte, pred, n_boot=n_boot, random_state=seed)
    return ci.estimate, ci.low, ci.high


def amnesic_probe(
    model,
    store,
    task,
    behaviour: Behaviour,
    sites: Sequence[Site | str] | None = None,
    *,
    method: str = "leace",
    n_random: int = 1,
    seed: int = 0,
    n_boot: int = 1000,
    alpha: float = 0.05,
    inlp_iter: int = 10,
    progress: bool | None = None,
):
    """Erase ``task``'s property at each site and measure the change in ``behaviour`` against random erasure.

    Parameters
    ----------
    model : HookedModel or ModelVariant
        The model whose behaviour is measured (a causal LM for
        :class:`NextTokenBehaviour`, a classifier for
        :class:`ClassifierBehaviour`); ``store`` must hold its activations.
    store : ActivationStore
        The task's examples (:func:`probekit.probes.extract_task`), extracted
        from ``model`` without interventions.
    task : Task
        A word- or sentence-level task (UPOS, dependency labels, sentiment...);
        the eraser and the probe train on its train (or dev) rows, the probe
        is scored on its test rows.
    behaviour : Behaviour
        What is measured on held-out text.
    sites : sequence, optional
        Default: every token-level site of the store.
    method : {"leace", "inlp"}
        The eraser.
    n_random : int
        Random same-rank erasures per site (their behaviour is averaged).
    seed : int
        Seed of the probes, the random subspaces and the bootstrap.
    n_boot : int
        Bootstrap replicates (over held-out examples for the behaviour, over
        test rows for the probe).
    alpha : float
        Intervals are ``1 - alpha``.
    inlp_iter : int
        INLP iterations (``method="inlp"``).
    progress : bool, optional
        Progress bar over sites.

    Returns
    -------
    probekit.Results
        Per site (``site``, ``layer``, ``block``; ``task``; ``probe="linear"``):
        ``rank``, ``majority``, ``probe_accuracy_before`` / ``_after`` /
        ``_random`` (intervals over test rows), and for each behaviour metric
        ``M`` (e.g. ``lm_loss``, ``lm_accuracy``, ``accuracy``): ``M_before``,
        ``M_after``, ``M_random``, ``M_change`` (after - before),
        ``M_random_change`` and ``M_change_vs_random`` (after - random), with
        paired bootstrap intervals over held-out examples. ``extra`` records
        the method, the eraser's fingerprint and the number of examples.
        :func:`amnesic_table` makes one row per site of it.

    Examples
    --------
    Erase part of speech from the last block of a tiny causal LM and measure
    its next-token loss on held-out text:

    >>> import probekit, tempfile, transformers
    >>> from probekit.data import build_task
    >>> from probekit.interventions import NextTokenBehaviour
    >>> from probekit.probes import extract_task
    >>> lm = probekit.load_model(transformers.GPT2Config(vocab_size=30522, n_embd=32, n_layer=2, n_head=4,
    ...                          bos_token_id=101, eos_token_id=102), head="causal-lm", seed=0)
    >>> upos = build_task("upos", "rt", limit=20)
    >>> store = extract_task(lm, upos, tempfile.mkdtemp() + "/upos", progress=False)
    >>> dev_texts = ["the cat sat on the mat", "it rained all day"]
    >>> res = amnesic_probe(lm, store, upos, NextTokenBehaviour(dev_texts), sites=["L1.resid"], n_random=1,
    ...                     n_boot=100, progress=False)
    >>> tab = amnesic_table(res)
    >>> tab[["task", "site", "layer"]].values.tolist()
    [['upos', 'L1.resid', 2]]
    >>> [c for c in tab.columns if c.startswith("lm_loss_") and not c.endswith(("_low", "_high"))]
    ['lm_loss_after', 'lm_loss_before', 'lm_loss_change', 'lm_loss_change_vs_random', 'lm_loss_random',
     'lm_loss_random_change']
    """
    from tqdm.auto import tqdm

    from probekit.probes import task_inputs

    if method not in AMNESIC_METHODS:
        raise ValueError(f"method must be one of {AMNESIC_METHODS}, not {method!r}")
    if not isinstance(behaviour, Behaviour):
        raise TypeError(f"behaviour must be a probekit.interventions Behaviour (NextTokenBehaviour, "
                        f"ClassifierBehaviour), not {type(behaviour).__name__}")
    if n_random < 1 or n_boot < 1:
        raise ValueError(f"n_random and n_boot must be >= 1, got {n_random} and {n_boot}")
    if task.level not in ("word", "sentence"):
        raise ValueError(f"task {task.name!r} is {task.level}-level; amnesic probing needs one label per word or "
                         "sentence")
    model = as_hooked_model(model)
    if store.interventions:
        raise ValueError(f"{store.path} was extracted with interventions; amnesic probing needs the plain model's "
                         "activations")
    store_weights = store.manifest["components"]["weights"]
    if store_weights != model.weights_hash():
        logger.warning("%s was extracted from other weights than this model's (a task head can differ; the base "
                       "must not)", store.path)
    inputs = task_inputs(store, task, sites)
    y = np.asarray(inputs.y).astype(str)
    tr, te = inputs.train, inputs.test
    n_blocks = model.n_layers
    q = [alpha / 2, 1 - alpha / 2]

    base = behaviour.stats(model)
    n_ex = len(next(iter(base.values())))
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_ex, np.full(n_ex, 1.0 / n_ex), size=n_boot).astype(np.float64)

    def point(stats):
        return {k: float(v) for k, v in behaviour.metrics({k: s.sum() for k, s in stats.items()}).items()}

    def boot(stats):
        return behaviour.metrics({k: weights @ s for k, s in stats.items()})

    base_p, base_b = point(base), boot(base)
    majority = float(np.mean(y[te] == pd.Series(y[tr]).value_counts().idxmax()))
    rows: list[dict] = []
    bar = tqdm(list(zip(inputs.sites, inputs.X)), desc="amnesic", disable=(not progress) if progress is not None
               else None, dynamic_ncols=True)
    for site, X in bar:
        bar.set_postfix_str(str(site), refresh=False)
        cols = {"model": model.name, "task": task.name, "site": str(site), "layer": site_layer(site, n_blocks),
                "block": site_block(site), "probe": "linear", "split": inputs.test_split}
        if method == "leace":
            eraser = LeaceEraser(str(site)).fit(X[tr], y[tr])
        else:
            eraser = InlpEraser(str(site), n_iter=inlp_iter, random_state=seed).fit(X[tr], y[tr])
        controls = [random_eraser_like(eraser, random_state=seed + k) for k in range(n_random)]
        extra = {"method": method, "eraser": eraser.fingerprint(), "n_examples": n_ex, "n_random": n_random,
                 **behaviour.describe()}

        def add(metric, value, low=None, high=None, cols=cols, extra=extra):
            rows.append({**cols, "metric": metric, "value": float(value), "ci_low": low, "ci_high": high,
                         "seed": seed, "extra": extra})

        add("rank", eraser.rank_)
        add("majority", majority)
        for name, f in (("before", None), ("after", eraser), ("random", controls[0])):
            Xtr, Xte = (X[tr], X[te]) if f is None else (f(X[tr]), f(X[te]))
            add(f"probe_accuracy_{name}", *_probe_accuracy(Xtr, y[tr], Xte, y[te], seed, n_boot))
        after = behaviour.stats(model, [eraser])
        rand_runs = [behaviour.stats(model, [c]) for c in controls]
        rand = {k: np.mean([r[k] for r in rand_runs], axis=0) for k in base}
        after_p, after_b = point(after), boot(after)
        rand_p, rand_b = point(rand), boot(rand)
        for m in base_p:
            add(f"{m}_before", base_p[m], *np.quantile(base_b[m], q))
            add(f"{m}_after", after_p[m], *np.quantile(after_b[m], q))
            add(f"{m}_random", rand_p[m], *np.quantile(rand_b[m], q))
            add(f"{m}_change", after_p[m] - base_p[m], *np.quantile(after_b[m] - base_b[m], q))
            add(f"{m}_random_change", rand_p[m] - base_p[m], *np.quantile(rand_b[m] - base_b[m], q))
            add(f"{m}_change_vs_random", after_p[m] - rand_p[m], *np.quantile(after_b[m] - rand_b[m], q))
        logger.info("%s %s: rank %d, probe %.3f -> %.3f; %s", task.name, site, eraser.rank_,
                    next(r["value"] for r in rows[::-1] if r["metric"] == "probe_accuracy_before"),
                    next(r["value"] for r in rows[::-1] if r["metric"] == "probe_accuracy_after"),
                    ", ".join(f"{m} {base_p[m]:.4f} -> {after_p[m]:.4f} (random {rand_p[m]:.4f})" for m in base_p))
    bar.close()
    return Results(rows)


def amnesic_table(results) -> pd.DataFrame:
    """One row per (task, site) of :func:`amnesic_probe`'s results: the numbers side by side.

    Columns: ``task``, ``site``, ``layer``, ``rank``, ``majority``, the probe
    accuracies before/after/random, and for each behaviour metric ``M`` its
    value before, the change after erasure and after random erasure, each
    change with its interval as ``M_change_low``/``_high``.
    """
    df = results.to_frame() if hasattr(results, "to_frame") else pd.DataFrame(results)
    if df.empty:
        raise ValueError("no amnesic probing rows")
    keys = ["task", "site", "layer"]
    wide = df.pivot_table(index=keys, columns="metric", values="value", aggfunc="first")
    out = wide.reset_index()
    for metric in [m for m in df["metric"].unique() if "_change" in m]:
        sub = df[df["metric"] == metric].set_index(keys)
        out = out.join(sub[["ci_low", "ci_high"]].rename(columns={"ci_low": f"{metric}_low",
                                                                   "ci_high": f"{metric}_high"}), on=keys)
    out.columns.name = None
    return out.sort_values(["task", "layer", "site"]).reset_index(drop=True)
