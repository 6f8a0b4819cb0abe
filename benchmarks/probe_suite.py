"""The probe suite at research scale: the full UD English EWT study, and its layer-wise table against scikit-learn.

Two parts, each run as its own process (so that its peak memory is its own); both merge their figures into
``benchmarks/results/probe_suite.json`` and print a short table.

``study``: what ``probekit probe --model MODEL --task upos,deprel --random-init`` runs: UPOS and dependency labels
(deprel) of the whole UD English EWT train file (training rows) with the dev file as the held-out test set, control
tasks, the random-weights baseline store, 1,000 bootstrap replicates, seed 0. The task stores are extracted with
``extract_tasks`` (reused when they exist: extraction is timed separately, ``extract_s``); ``wall_s`` is the
study from building the tasks to the last result row; ``peak_rss_gb`` is the process's ``VmHWM`` (it counts
memory-mapped pages too), ``peak_anon_gb`` the memory it allocated itself.

``table``: the whole layer-wise table (task and control task of UPOS and deprel, 3 seeds, the chosen layers)
fitted by probekit's streamed probes (``fit_streamed``, the suite's path) and by scikit-learn's
``LogisticRegression`` with its defaults (lbfgs, ``max_iter=100``) on the same rows of the same store, side by
side at 1 thread and at every core. scikit-learn's lbfgs ignores ``random_state``: its 3 seeds are 3 identical
fits, so each fit is run once and counted 3 times. Accuracies are on the test rows. The converged scikit-learn
(``max_iter=10000``) runs on the subset named by ``--converged-layers`` (it is slow), against probekit on that
same subset.

Usage::

    PROBEKIT_UD_PATH=... python benchmarks/probe_suite.py study [--model minilm-l6] [--dtype float32]
    PROBEKIT_UD_PATH=... python benchmarks/probe_suite.py table [--layers all] [--threads 1,2]
    PROBEKIT_UD_PATH=... python benchmarks/probe_suite.py reference [--cells L1.resid/upos/control,...]

``reference``: scikit-learn run to convergence on the study's rows for a few cells (a task, its control task, or the
task on the random-weights store, at one site), beside the study's figures: where the study's figures differ from
earlier ones, or from scikit-learn's defaults, this says which side agrees with the optimum of the same objective.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _machine import AnonPeak, machine, peak_rss_kb  # noqa: E402

from probekit.data import build_task, control_task, ud_files  # noqa: E402
from probekit.probes import ProbeSuite, extract_tasks, random_init_copy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "probe_suite.json"
STORES = ROOT / "stores"  # git-ignored
SHARED = ("The machine (2 cores) was shared with other work during the run (see load_average): wall times and "
          "speedups are distorted by it, accuracies and memory are not.")
REFERENCE = {"upos_best_site": "L1.resid", "upos_accuracy": 0.952, "upos_selectivity": 0.34,
             "upos_random_init": 0.733, "wall_s": 16 * 60 + 48, "peak_rss_gb": 13.5}


def _tasks(ud):
    files = ud_files(ud)
    path = {"train": files["train"], "dev": files["dev"]}
    return [build_task(t, "ud", path=path) for t in ("upos", "deprel")]


def _merge(section: str, payload: dict, top: dict | None = None) -> None:
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    old[section] = payload
    old.update(top or {})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(old, indent=1, default=float))
    tmp.replace(RESULTS)


def _stores(model_alias: str, tasks, dtype: str) -> tuple[dict, float]:
    from probekit import load_model

    t = time.perf_counter()
    model = load_model(model_alias)
    out = {}
    for label, m in ((model_alias, model), (f"{model_alias}-random", random_init_copy(model, seed=0))):
        [(members, store)] = extract_tasks(m, tasks, STORES / f"ewt_{label}_{dtype}", dtype=dtype, progress=False)
        out[model_alias if label == model_alias else (model_alias, "random-init")] = store
    del model
    return out, time.perf_counter() - t


def study(a) -> None:
    mem = AnonPeak()
    mem.__enter__()
    t0 = time.perf_counter()
    prof = {}
    tasks = _tasks(a.ud)
    prof["build_tasks"] = time.perf_counter() - t0
    stores, prof["extract_or_open_stores"] = _stores(a.model, tasks, a.dtype)
    t1 = time.perf_counter()
    suite = ProbeSuite(tasks, seeds=(0,), n_boot=1000, memory_budget=a.budget)
    df = suite.run(stores).to_frame()
    prof["suite"] = time.perf_counter() - t1
    wall = time.perf_counter() - t0
    mem.__exit__(None, None, None)
    prof["suite_streamed_probes"] = {k: v for k, v in suite.profile_.items() if k != "peak_cache_bytes"}
    prof["suite_rest_(bootstrap,tests,rows)"] = prof["suite"] - sum(
        v for k, v in suite.profile_.items() if k in ("stats", "train", "validate", "predict"))
    mean = df[df.metric == "accuracy_mean"]
    out = {}
    for task in ("upos", "deprel"):
        real = mean[(mean.task == task) & mean.variant.isna()].set_index("site").value
        ctrl = mean[(mean.task == f"{task}.control") & mean.variant.isna()].set_index("site").value
        rand = mean[(mean.task == task) & (mean.variant == "random-init")].set_index("site").value
        best = str(real.idxmax())
        out[task] = {"best_site": best, "accuracy": float(real[best]), "selectivity": float(real[best] - ctrl[best]),
                     "random_init_at_best": float(rand[best]), "random_init_best": float(rand.max()),
                     "by_site": {s: {"accuracy": float(real[s]), "control": float(ctrl[s]),
                                     "random_init": float(rand[s])} for s in real.index}}
    ref = REFERENCE
    gaps = {"upos_accuracy": 100 * (out["upos"]["accuracy"] - ref["upos_accuracy"]),
            "upos_selectivity": 100 * (out["upos"]["selectivity"] - ref["upos_selectivity"]),
            "upos_random_init": 100 * (out["upos"]["random_init_at_best"] - ref["upos_random_init"])}
    any_store = next(iter(stores.values()))
    payload = {
        "setup": {"model": a.model, "store_dtype": a.dtype, "memory_budget": a.budget, "tasks": ["upos", "deprel"],
                  "controls": True, "random_init": True, "n_boot": 1000, "seeds": [0],
                  "n_examples": any_store.n_examples, "n_words": int(any_store.n_words.sum()),
                  "sites": [str(s) for s in any_store.sites], "extract_s": a.extract_s,
                  "note": "extract_s: the extraction of both task stores, timed separately (they are reused here)"},
        "wall_s": wall, "peak_rss_gb": peak_rss_kb() / 2**20,
        "peak_anon_gb": None if mem.peak_mb is None else mem.peak_mb / 1024,
        "peak_feature_cache_gb": suite.profile_.get("peak_cache_bytes", 0) / 2**30,
        "profile_s": prof, "results": out, "reference_before": ref if a.model == "minilm-l6" else None,
        "accuracy_gap_points_vs_before": gaps if a.model == "minilm-l6" else None,
        "targets": {"wall_s<=300": wall <= 300, "peak_rss_gb<=3": peak_rss_kb() / 2**20 <= 3}
        if a.model == "minilm-l6" else {"peak_rss_gb<=6": peak_rss_kb() / 2**20 <= 6},
        "machine": machine(), "shared_machine": SHARED,
    }
    top = {"wall_s": wall, "peak_rss_gb": payload["peak_rss_gb"]} if a.model == "minilm-l6" else None
    _merge(f"study_{a.model}", payload, top)
    print(f"study {a.model}: wall {wall:.1f} s, peak RSS {payload['peak_rss_gb']:.2f} GB "
          f"(anon {payload['peak_anon_gb']}), profile {json.dumps(prof, default=lambda x: round(x, 1))}")
    for task, r in out.items():
        print(f"  {task}: best {r['best_site']} {r['accuracy']:.4f}, selectivity {r['selectivity']:.3f}, "
              f"random-init {r['random_init_at_best']:.4f}")
    if a.model == "minilm-l6":
        print(f"  gap vs before (points): {json.dumps(gaps, default=lambda x: round(x, 2))}")


def _table_inputs(a):
    from probekit.probes import stream_inputs
    from probekit.store import ActivationStore

    tasks = _tasks(a.ud)
    store = ActivationStore.open(STORES / f"ewt_minilm-l6_{a.dtype}" / "upos+deprel")
    names, label_sets, inp = [], [], None
    for t in tasks:
        inp = stream_inputs(store, t, None)
        names += [t.name, f"{t.name}.control"]
        label_sets += [inp.y, np.asarray(control_task(t, 0).dataset.flat_labels(), dtype=object).astype(str)]
    train, test = np.flatnonzero(inp.train), np.flatnonzero(inp.test)
    classes = [np.unique(y[train]) for y in label_sets]
    codes = [np.clip(np.searchsorted(c, y), 0, len(c) - 1) for c, y in zip(classes, label_sets)]
    sites = [str(s) for s in inp.sites]
    return inp, sites, names, label_sets, classes, codes, train, test


def _ours(inp, layer_idx, codes, classes, label_sets, train, test, seeds, which=None):
    from probekit.probes import StreamConfig, fit_streamed

    which = list(range(len(codes))) if which is None else which
    t = time.perf_counter()
    fit = fit_streamed([inp.X[i] for i in layer_idx], inp.d, [codes[j] for j in which],
                       [len(classes[j]) for j in which], train, test, seeds, StreamConfig())
    dt = time.perf_counter() - t
    acc = {}
    for li, i in enumerate(layer_idx):
        for tj, j in enumerate(which):
            y = label_sets[j][test]
            acc[(i, j)] = [float((classes[j][fit.predictions[li][tj][s]] == y).mean()) for s in range(len(seeds))]
    return dt, acc, [n.max().item() for n in fit.n_iter]


def _sklearn(inp, layer_idx, label_sets, train, test, max_iter, which=None):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    which = list(range(len(label_sets))) if which is None else which
    secs, acc, iters, warned = {}, {}, {}, 0
    for i in layer_idx:
        X_tr = inp.X[i](train).astype(np.float32)
        X_te = inp.X[i](test).astype(np.float32)
        for j in which:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                t = time.perf_counter()
                clf = LogisticRegression(max_iter=max_iter).fit(X_tr, label_sets[j][train])
                secs[(i, j)] = time.perf_counter() - t
            warned += sum(issubclass(w.category, ConvergenceWarning) for w in caught)
            acc[(i, j)] = float(clf.score(X_te, label_sets[j][test]))
            iters[(i, j)] = int(np.max(clf.n_iter_))
            print(f"    sklearn max_iter={max_iter} layer {i} set {j}: {secs[(i, j)]:.1f} s, acc {acc[(i, j)]:.4f}, "
                  f"{iters[(i, j)]} iterations", flush=True)
        del X_tr, X_te
    return secs, acc, iters, warned


def _earlier_runs(sites: list[str]) -> dict:
    """Runs at other thread counts recorded for the same layers (each thread count may run in its own process)."""
    old = json.loads(RESULTS.read_text()).get("table", {}) if RESULTS.exists() else {}
    runs = old.get("runs") or {}
    return {k: r for k, r in runs.items() if r.get("sites", sites) == sites and "per_layer" in r}


def table(a) -> None:
    from threadpoolctl import threadpool_limits

    inp, sites, names, label_sets, classes, codes, train, test = _table_inputs(a)
    layer_idx = list(range(len(sites))) if a.layers == "all" else [sites.index(s) for s in a.layers.split(",")]
    seeds = (0, 1, 2)
    runs = _earlier_runs([sites[i] for i in layer_idx])
    for th in [int(x) for x in a.threads.split(",") if x.strip()]:  # '' keeps the recorded runs (converged only)
        torch.set_num_threads(th)
        ours_s, sk_secs, ours_acc, sk_acc, sk_iter, warned, per_layer, epochs = 0.0, {}, {}, {}, {}, 0, {}, {}
        with threadpool_limits(th):
            # layer by layer, probekit and scikit-learn back to back, so each pair meets the same machine load
            for i in layer_idx:
                o_s, o_acc, o_ep = _ours(inp, [i], codes, classes, label_sets, train, test, seeds)
                s_secs, s_acc, s_iter, w = _sklearn(inp, [i], label_sets, train, test, 100)
                ours_s += o_s
                ours_acc.update(o_acc)
                sk_secs.update(s_secs)
                sk_acc.update(s_acc)
                sk_iter.update(s_iter)
                warned += w
                epochs[sites[i]] = o_ep[0]
                per_layer[sites[i]] = {"probekit_s": o_s, "sklearn_default_s": 3 * sum(s_secs.values()),
                                       "speedup": 3 * sum(s_secs.values()) / o_s, "load_average": os.getloadavg()}
                print(f"  threads {th} {sites[i]}: probekit {o_s:.1f} s ({o_ep[0]} epochs), sklearn defaults "
                      f"{3 * sum(s_secs.values()):.1f} s (3 seeds): {3 * sum(s_secs.values()) / o_s:.1f}x", flush=True)
        sk_total = 3 * sum(sk_secs.values())
        gaps = [100 * abs(np.mean(ours_acc[k]) - sk_acc[k]) for k in sk_acc]
        runs[str(th)] = {
            "threads": th, "probekit_s": ours_s, "probekit_epochs_per_layer": epochs,
            "sklearn_default_s": sk_total, "sklearn_default_fit_s": {f"{sites[i]}/{names[j]}": v
                                                                     for (i, j), v in sk_secs.items()},
            "sklearn_default_n_iter": {f"{sites[i]}/{names[j]}": v for (i, j), v in sk_iter.items()},
            "sklearn_convergence_warnings": warned, "speedup_vs_sklearn_default": sk_total / ours_s,
            "per_layer": per_layer,
            "accuracy": {f"{sites[i]}/{names[j]}": {"probekit_seeds": ours_acc[(i, j)],
                                                    "sklearn_default": sk_acc[(i, j)]} for (i, j) in sk_acc},
            "max_accuracy_gap_points": float(max(gaps)), "load_average_after": os.getloadavg(),
            "machine": machine(), "note": a.note, "sites": [sites[i] for i in layer_idx]}
        print(f"  threads {th}: sklearn defaults {sk_total:.1f} s (3 seeds) vs probekit {ours_s:.1f} s: "
              f"{sk_total / ours_s:.1f}x, max gap {max(gaps):.2f} points", flush=True)
        _merge("table", {"partial": True, "runs": runs, "note": a.note})  # kept if a later part is stopped
    conv = None
    if a.converged_layers:
        th = max([int(x) for x in a.threads.split(",") if x.strip()] or [os.cpu_count()])
        torch.set_num_threads(th)
        c_idx = [sites.index(s) for s in a.converged_layers.split(",")]
        which = [names.index(n) for n in a.converged_sets.split(",")]
        with threadpool_limits(th):
            ours_s, ours_acc, _ = _ours(inp, c_idx, codes, classes, label_sets, train, test, seeds, which)
            sk_secs, sk_acc, sk_iter, warned = _sklearn(inp, c_idx, label_sets, train, test, 10000, which)
        sk_total = 3 * sum(sk_secs.values())
        conv = {"threads": th, "load_average_after": os.getloadavg(), "note": a.note,
                "sites": [sites[i] for i in c_idx], "label_sets": [names[j] for j in which],
                "probekit_s": ours_s, "sklearn_converged_s": sk_total,
                "speedup_vs_sklearn_converged": sk_total / ours_s,
                "sklearn_n_iter": {f"{sites[i]}/{names[j]}": v for (i, j), v in sk_iter.items()},
                "sklearn_convergence_warnings": warned,
                "accuracy": {f"{sites[i]}/{names[j]}": {"probekit_seeds": ours_acc[(i, j)],
                                                        "sklearn_converged": sk_acc[(i, j)]} for (i, j) in sk_acc},
                "max_accuracy_gap_points": float(max(100 * abs(np.mean(ours_acc[k]) - sk_acc[k]) for k in sk_acc))}
        print(f"  converged subset: sklearn {sk_total:.1f} s vs probekit {ours_s:.1f} s: {sk_total / ours_s:.1f}x",
              flush=True)
    if conv is None and RESULTS.exists():  # a run without the converged part keeps the one recorded
        conv = json.loads(RESULTS.read_text()).get("table", {}).get("converged")
    best = max(runs.values(), key=lambda r: r["threads"])
    one = runs.get("1", best)
    payload = {"setup": {"store": f"stores/ewt_minilm-l6_{a.dtype}/upos+deprel", "sites": [sites[i] for i in layer_idx],
                         "label_sets": names, "seeds": list(seeds), "n_train": len(train), "n_test": len(test),
                         "probekit": "fit_streamed (the ProbeSuite path): every label set and seed of a layer in one "
                                     "streamed pass, LinearProbe defaults",
                         "sklearn": "LogisticRegression() defaults (lbfgs, max_iter=100, C=1) per layer and label set; "
                                    "lbfgs ignores random_state, so each fit runs once and counts for 3 seeds"},
               "runs": runs, "converged": conv, "machine": machine(), "shared_machine": SHARED, "note": a.note}
    top = {"speedup_vs_sklearn_default": one["speedup_vs_sklearn_default"],
           "speedup_vs_sklearn_default_all_cores": best["speedup_vs_sklearn_default"] if len(runs) > 1 else None,
           "max_accuracy_gap_points": max(r["max_accuracy_gap_points"] for r in runs.values())}
    if conv is not None:
        top["speedup_vs_sklearn_converged"] = conv["speedup_vs_sklearn_converged"]
    _merge("table", payload, top)
    print(json.dumps(top, indent=1))


def reference(a) -> None:
    """Converged scikit-learn on chosen cells of the study (site / task / figure), beside the study's figures: which
    side of a drift from earlier figures, or of a gap to scikit-learn's defaults, is the optimum's."""
    from threadpoolctl import threadpool_limits

    from probekit.probes import stream_inputs
    from probekit.store import ActivationStore

    tasks = {t.name: t for t in _tasks(a.ud)}
    study = json.loads(RESULTS.read_text())["study_minilm-l6"]["results"]
    out = {}
    with threadpool_limits(a.threads):
        for cell in a.cells.split(","):
            site, task_name, figure = cell.split("/")
            task = tasks[task_name]
            folder = "ewt_minilm-l6-random" if figure == "random_init" else "ewt_minilm-l6"
            store = ActivationStore.open(STORES / f"{folder}_{a.dtype}" / "upos+deprel")
            inp = stream_inputs(store, task, [site])
            y = (np.asarray(control_task(task, 0).dataset.flat_labels(), dtype=object).astype(str)
                 if figure == "control" else inp.y)
            train, test = np.flatnonzero(inp.train), np.flatnonzero(inp.test)
            secs, acc, iters, warned = _sklearn(inp, [0], [y], train, test, 10000)
            ours = study[task_name]["by_site"][site][figure]
            out[cell] = {"sklearn_converged": acc[(0, 0)], "probekit_study": ours, "n_iter": iters[(0, 0)],
                         "gap_points": 100 * (ours - acc[(0, 0)]), "fit_s": secs[(0, 0)],
                         "convergence_warnings": warned}
    payload = {"setup": "LogisticRegression(max_iter=10000) on the study's rows (train file; dev file as test): a "
                        "task or its control task (seed 0) on the model's store, or the task on the random-weights "
                        "store; probekit_study is the study's figure (seed 0)",
               "cells": out, "reference_before": REFERENCE, "machine": machine()}
    _merge("converged_reference", payload)
    for cell, r in out.items():
        print(f"{cell}: sklearn converged {r['sklearn_converged']:.4f} ({r['n_iter']} iterations), probekit "
              f"{r['probekit_study']:.4f}, gap {r['gap_points']:+.2f} points")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="part", required=True)
    s = sub.add_parser("study")
    s.add_argument("--model", default="minilm-l6")
    s.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    s.add_argument("--budget", default="1GB", help="the suite's memory_budget")
    s.add_argument("--extract-s", type=float, default=None, help="seconds the extraction took, when run beforehand")
    s.add_argument("--threads", type=int, default=os.cpu_count())
    t = sub.add_parser("table")
    t.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    t.add_argument("--layers", default="all", help="'all' or comma-separated sites")
    t.add_argument("--threads", default=f"1,{os.cpu_count()}")
    t.add_argument("--converged-layers", default="L1.resid", help="sites of the converged scikit-learn run ('' skips)")
    t.add_argument("--converged-sets", default="upos,upos.control")
    t.add_argument("--note", default=None, help="a remark recorded with the figures (e.g. on the machine's load)")
    r = sub.add_parser("reference")
    r.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    r.add_argument("--cells", default="L1.resid/upos/accuracy,L1.resid/upos/control,L1.resid/upos/random_init,"
                                      "L2.resid/upos/random_init,L4.resid/deprel/control",
                   help="comma-separated SITE/TASK/FIGURE, FIGURE one of accuracy, control, random_init")
    r.add_argument("--threads", type=int, default=os.cpu_count())
    for q in (s, t, r):
        q.add_argument("--ud", type=Path, default=None, help="UD EWT folder (default $PROBEKIT_UD_PATH)")
    a = p.parse_args()
    if a.part == "study":
        torch.set_num_threads(a.threads)
        study(a)
    elif a.part == "reference":
        torch.set_num_threads(a.threads)
        reference(a)
    else:
        table(a)


if __name__ == "__main__":
    main()
