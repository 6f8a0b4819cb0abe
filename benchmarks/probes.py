"""Probe training speed: probekit's batched linear probes against scikit-learn per layer.

UPOS on UD English EWT with the default MiniLM-L6: word-pooled (mean over sub-words) features of all 7
residual sites (``emb`` and the 6 layers), read from a store made by ``probekit.probes.extract_task``
(``probekit.extract``; reused when it exists). Training uses the train split, accuracy is reported on dev.

1. ``probekit``: ``fit_batched(LinearProbe(solver="lbfgs"), ...)``: the probes of all layers trained as one
   batched computation (full-batch L-BFGS in whitened coordinates, early stopping on a 10 % validation split
   of the training rows; see ``probekit/probes/_lbfgs.py``);
2. ``sklearn_default``: ``LogisticRegression`` as its users run it, with its defaults (lbfgs, ``max_iter=100``),
   per layer on the same features: the honest baseline;
3. ``sklearn``: the same run to convergence (``max_iter`` high enough, so ``n_iter_`` is reported);
4. ``probekit_adam`` (``--adam``): the minibatch Adam path of ``LinearProbe`` (the default solver), for context.

Both minimise mean cross-entropy + ``||W||^2 / (2 C n)`` over the ``n`` rows each one fits on (scikit-learn's
``C * sum(loss) + ||W||^2 / 2`` divided by ``C n``) with the same ``C``; neither penalises the intercept.
The methods run side by side, interleaved for ``--rounds`` rounds; the best round of each counts (on a shared
machine the best is the least disturbed). Writes ``benchmarks/results/probes.json`` and prints a table.

Usage: ``python benchmarks/probes.py [--rounds 2] [--C 1.0] [--threads 1] [--train-rows N] [--adam]``
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
import sklearn  # noqa: E402
import torch  # noqa: E402
from _machine import machine  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from probekit.data import build_task, ud_files  # noqa: E402
from probekit.probes import (  # noqa: E402
    LinearProbe,
    extract_task,
    fit_batched,
    task_inputs,  # noqa: E402
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "probes.json"
DEFAULT_STORE = ROOT / "stores" / "bench_probes_upos_minilm-l6"  # git-ignored


def _shown(p: Path) -> str:
    """A path as recorded in the results: relative to the repository when inside it."""
    try:
        return Path(p).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(p)


def load_features(store_dir: Path, ud: Path | None):
    """Train/dev features ``[n, d]`` per layer (float32) and labels, from the store (extracted if missing).

    ``ud`` is a UD English EWT folder (default ``$PROBEKIT_UD_PATH``, else the copy fetched by ``probekit data
    fetch ud_ewt``); only its train and dev files are read, the dev file cut into dev and test halves.
    """
    files = ud_files(ud)
    task = build_task("upos", "ud", path={"train": files["train"], "dev": files["dev"]})
    t0 = time.perf_counter()
    store = extract_task("minilm-l6", task, store_dir, dtype="float16", progress=False)
    extract_s = time.perf_counter() - t0
    inp = task_inputs(store, task)
    Xtr = [np.ascontiguousarray(X[inp.train]) for X in inp.X]
    Xte = [np.ascontiguousarray(X[inp.test]) for X in inp.X]
    info = {"task": "upos", "train_split": inp.train_split, "test_split": inp.test_split,
            "sites": [str(s) for s in inp.sites], "layers": inp.layers, "n_train": int(inp.train.sum()),
            "n_test": int(inp.test.sum()), "d": int(Xtr[0].shape[1]), "n_classes": int(len(np.unique(inp.y))),
            "store": _shown(store_dir), "store_dtype": "float16", "store_seconds_open_or_extract": extract_s}
    return Xtr, inp.y[inp.train], Xte, inp.y[inp.test], info


def run_probekit(Xtr, ytr, Xte, yte, C, solver):
    t0 = time.perf_counter()
    probes = fit_batched(LinearProbe(C=C, solver=solver, random_state=0), Xtr, ytr)
    dt = time.perf_counter() - t0
    return {"seconds": dt, "accuracy": [float(p[0].score(X, yte)) for p, X in zip(probes, Xte)],
            "n_iter": [int(p[0].n_iter_) for p in probes]}


def run_sklearn(Xtr, ytr, Xte, yte, C, max_iter):
    acc, iters, dtypes, secs = [], [], [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        for X, Xt in zip(Xtr, Xte):
            t1 = time.perf_counter()
            clf = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter).fit(X, ytr)
            secs.append(time.perf_counter() - t1)
            acc.append(float(clf.score(Xt, yte)))
            iters.append(int(np.max(clf.n_iter_)))
            dtypes.append(str(clf.coef_.dtype))
        dt = time.perf_counter() - t0
    not_converged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {"seconds": dt, "seconds_per_layer": secs, "accuracy": acc, "n_iter": iters, "coef_dtype": dtypes,
            "convergence_warnings": not_converged}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--C", type=float, default=1.0, help="inverse L2 strength, the same for both")
    p.add_argument("--sklearn-max-iter", type=int, default=10000)
    p.add_argument("--store", type=Path, default=DEFAULT_STORE)
    p.add_argument("--ud", type=Path, default=None,
                   help="UD English EWT folder (default $PROBEKIT_UD_PATH, else the copy fetched by 'probekit data "
                        "fetch ud_ewt')")
    p.add_argument("--adam", action="store_true", help="also time LinearProbe's minibatch Adam solver")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for torch and for scikit-learn's BLAS alike (1: one core each, the fairest "
                        "comparison on a shared machine)")
    p.add_argument("--train-rows", type=int, default=None,
                   help="use only the first N training words (default: all); the dev set is always whole")
    a = p.parse_args()
    if a.rounds < 1:
        p.error("--rounds must be at least 1")
    if a.threads < 1:
        p.error("--threads must be at least 1")
    torch.set_num_threads(a.threads)
    threadpool_limits(a.threads)
    Xtr, ytr, Xte, yte, info = load_features(a.store, a.ud)
    if a.train_rows is not None:
        if not 0 < a.train_rows <= len(ytr):
            p.error(f"--train-rows must be in [1, {len(ytr)}]")
        Xtr, ytr = [X[: a.train_rows] for X in Xtr], ytr[: a.train_rows]
        info["n_train_used"] = a.train_rows
    else:
        info["n_train_used"] = len(ytr)
    info["threads"] = a.threads
    print(f"features: {len(Xtr)} layers, train {Xtr[0].shape}, dev {Xte[0].shape}, "
          f"{info['n_classes']} classes", flush=True)
    methods = {
        "probekit": lambda: run_probekit(Xtr, ytr, Xte, yte, a.C, "lbfgs"),
        "sklearn_default": lambda: run_sklearn(Xtr, ytr, Xte, yte, a.C, 100),
        "sklearn": lambda: run_sklearn(Xtr, ytr, Xte, yte, a.C, a.sklearn_max_iter),
    }
    if a.adam:
        methods["probekit_adam"] = lambda: run_probekit(Xtr, ytr, Xte, yte, a.C, "adam")
    runs: dict[str, list[dict]] = {k: [] for k in methods}
    for r in range(a.rounds):
        for name, fn in methods.items():
            res = fn()
            res["round"] = r
            res["load_average"] = os.getloadavg()
            runs[name].append(res)
            print(f"round {r} {name:14s} {res['seconds']:8.1f} s  iterations {res['n_iter']}", flush=True)
    best = {k: min(v, key=lambda x: x["seconds"]) for k, v in runs.items()}
    seconds = {k: v["seconds"] for k, v in best.items()}
    ours, ref = np.array(best["probekit"]["accuracy"]), np.array(best["sklearn"]["accuracy"])
    gaps = 100 * (ours - ref)
    speedup = seconds["sklearn"] / seconds["probekit"]
    max_gap = float(np.max(np.abs(gaps)))
    per_round = [s["seconds"] / q["seconds"] for s, q in zip(runs["sklearn"], runs["probekit"])]
    dflt = np.array(best["sklearn_default"]["accuracy"])
    vs_default = {k: seconds["sklearn_default"] / seconds[k] for k in seconds if k.startswith("probekit")}
    default_gap = {k: float(np.max(np.abs(100 * (np.array(best[k]["accuracy"]) - dflt))))
                   for k in seconds if k.startswith("probekit")}
    result = {
        "setup": {**info, "model": "minilm-l6", "word_pooling": "mean", "C": a.C,
                  "probekit": "fit_batched(LinearProbe(C, solver='lbfgs', random_state=0)) over all layers",
                  "sklearn": f"LogisticRegression(C, solver='lbfgs', tol=1e-4, max_iter={a.sklearn_max_iter}) "
                             "per layer",
                  "sklearn_default": "LogisticRegression(C) with its defaults (lbfgs, tol=1e-4, max_iter=100) per "
                                     "layer",
                  "rounds": a.rounds, "statistic": "best round per method (seconds); ratio of the best rounds"},
        "machine": machine(sklearn=sklearn.__version__,
                           blas=[{k: v for k, v in lib.items() if k in ("internal_api", "version", "num_threads")}
                                 for lib in threadpool_info()]),
        "seconds": seconds,
        "speedup_vs_sklearn_default": vs_default,
        "max_accuracy_gap_points_vs_sklearn_default": default_gap,
        "sklearn_default_convergence_warnings": best["sklearn_default"]["convergence_warnings"],
        "speedup_vs_sklearn": speedup,
        "speedup_per_round": per_round,
        "max_accuracy_gap_points": max_gap,
        "accuracy": {"layer": info["layers"], "probekit": ours.tolist(), "sklearn": ref.tolist(),
                     "sklearn_default": dflt.tolist(),
                     "gap_points": gaps.tolist(),
                     **({"probekit_adam": best["probekit_adam"]["accuracy"]} if "probekit_adam" in best else {})},
        "runs": runs,
        "targets": {"speedup>=10": speedup >= 10, "max_accuracy_gap<=0.5": max_gap <= 0.5},
    }
    if "probekit_adam" in seconds:
        result["speedup_adam_vs_sklearn"] = seconds["sklearn"] / seconds["probekit_adam"]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"\n{'layer':>5s} {'probekit':>9s} {'sklearn':>9s} {'gap pt':>7s}")
    for li, a_, b_, g_ in zip(info["layers"], ours, ref, gaps):
        print(f"{li:5d} {100 * a_:9.2f} {100 * b_:9.2f} {g_:+7.2f}")
    print("\n" + "  ".join(f"{k}: {v:.1f} s" for k, v in seconds.items()))
    print("against scikit-learn's defaults: " + ", ".join(
        f"{k} {v:.2f}x (max gap {default_gap[k]:.2f} points)" for k, v in vs_default.items()))
    print("against converged scikit-learn: "
          f"speedup_vs_sklearn={speedup:.2f}x (per round: {', '.join(f'{x:.2f}' for x in per_round)}), "
          f"max_accuracy_gap_points={max_gap:.2f}")
    print(f"targets: {result['targets']}")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
