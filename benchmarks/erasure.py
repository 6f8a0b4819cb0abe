"""Concept erasure: probekit's LEACE against the ``concept-erasure`` package, guardedness after erasure, INLP.

UPOS on UD English EWT with the default MiniLM-L6: word-pooled (mean over sub-words) features of the chosen
residual sites (``--sites``), read from a float16 store made by ``probekit.probes.extract_task`` (reused when it
exists). Every eraser is fitted on the train split; accuracies are on the test split (the second half of the
dev file, see ``probekit.data``), INLP's per-iteration accuracies on the dev split (first half).

Per site:

1. ``probekit``: ``LeaceEraser(site).fit(store, task)``: the statistics are accumulated in float64 over chunks
   of rows streamed from the store's memory maps (float16 converted chunk by chunk); the plain sample
   covariance, singular values of the whitened cross-covariance kept above ``1e-8`` x the largest.
2. ``concept_erasure``: ``concept_erasure.LeaceFitter`` on the same rows as its users run it: the train rows
   loaded into one float64 tensor, one-hot labels, ``update`` once, ``.eraser``; with the same settings
   (``shrinkage=False``, ``svd_tol`` = ``1e-8`` x the largest singular value, its default trace constraint).
   Also ``concept_erasure_streamed`` (the same fitter updated chunk by chunk over the same rows: its bounded-
   memory use) and ``concept_erasure_float32`` (the rows as float32, its statistics then in float32).
3. Both tools again with ``concept-erasure``'s default estimator (linear shrinkage, ``svd_tol=0.01``): probekit
   ``LeaceEraser(shrinkage=True, svd_atol=0.01)``.

The four fits of 1. and 2. run interleaved for ``--rounds`` rounds after one untimed probekit fit (which also
warms the page cache); the best round of each counts for time, the largest of its rounds for memory.

``max_abs_diff_vs_concept_erasure``: the largest absolute difference between the erased features (every train
and test row, float64) of (1) and (2), over sites (target <= 1e-4); ``..._shrinkage`` the same for (3). Time
and peak memory of each fit: wall seconds, and the peak anonymous resident memory (``RssAnon``, sampled every
20 ms) above the level before the fit. File pages of the memory-mapped store are not counted (they are the
kernel's cache); glibc's mmap threshold is fixed at 64 KiB and freed memory is trimmed before each fit, so memory
one fit frees is not silently reused by the next. Loading the rows into RAM is part of the ``concept_erasure``
fits, which need them there.

Guardedness: on probekit's erased features, ``LinearProbe(solver="lbfgs")`` and scikit-learn's
``LogisticRegression`` are trained on the train rows and scored on the test rows, against the majority baseline
(the most frequent training class); ``guardedness_gap_points`` = 100 x (best probe accuracy - majority), the
largest over sites (target <= 1.0). For context: ``LinearProbe`` before erasure and after erasing a random
subspace of the same rank (``random_eraser_like``). INLP: ``InlpEraser(site, n_iter)`` with the default
``LinearProbe`` classifier, its dev accuracy after every iteration, time and peak memory.

UD English EWT is read from ``$PROBEKIT_UD_PATH``. Writes ``benchmarks/results/erasure.json`` and prints a table.

Usage: ``PROBEKIT_UD_PATH=... python benchmarks/erasure.py [--sites L2.resid L5.resid] [--inlp-iter 10]
[--threads 1] [--store PATH] [--limit N --out PATH]``
"""

from __future__ import annotations

import argparse
import gc
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
from _machine import AnonPeak, machine  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from probekit.data import build_task  # noqa: E402
from probekit.interventions import InlpEraser, LeaceEraser, random_eraser_like  # noqa: E402
from probekit.probes import LinearProbe, extract_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "erasure.json"
DEFAULT_STORE = ROOT / "stores" / "bench_erasure_upos_minilm-l6"  # git-ignored
CHUNK = LeaceEraser().chunk_rows  # rows per chunk of the streamed fits (probekit's default)


def word_rows(task) -> tuple[np.ndarray, np.ndarray]:
    """UPOS label and split of every word row, in store order."""
    ds = task.dataset
    labels = np.array([lab for row in ds.labels for lab in row])
    splits = np.repeat(np.asarray(ds.splits), [len(r) for r in ds.labels])
    return labels, splits


def _libc():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


LIBC = _libc()


def fixed_mmap_threshold() -> bool:
    """Serve every allocation above 64 KiB by its own mmap, returned to the system when freed.

    glibc otherwise raises its mmap threshold after large frees and keeps later large blocks in the heap,
    so memory freed by one fit would be reused by the next without showing in its resident peak.
    """
    return bool(LIBC is not None and LIBC.mallopt(-3, 64 * 1024))  # M_MMAP_THRESHOLD


def measured(fn):
    """``(result, seconds, peak anonymous MB above the level before)``."""
    gc.collect()
    if LIBC is not None:
        LIBC.malloc_trim(0)
    base = AnonPeak.current_mb()
    with AnonPeak() as mem:
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
    peak = None if mem.peak_mb is None or base is None else mem.peak_mb - base
    return out, dt, peak


def ce_in_memory(view, mask, codes, k, dtype, **kw):
    from concept_erasure import LeaceFitter

    x = torch.from_numpy(np.asarray(view.numpy("word"))[mask]).to(dtype)
    z = torch.nn.functional.one_hot(torch.from_numpy(codes), k).to(dtype)
    fitter = LeaceFitter(x.shape[1], k, dtype=dtype, **kw)
    fitter.update(x, z)
    return fitter.eraser


def ce_streamed(view, mask, codes, k, **kw):
    """The fitter updated batch by batch over the same example batches probekit reads."""
    from concept_erasure import LeaceFitter

    fitter = LeaceFitter(view.d, k, dtype=torch.float64, **kw)
    batch = max(1, CHUNK // int(np.max(view.store.n_words)))
    row0 = used = 0
    for b in view.iter_batches(batch, "word", "mean"):
        sel = mask[row0: row0 + len(b.x)]
        row0 += len(b.x)
        x = torch.from_numpy(np.asarray(b.x[sel])).double()
        if len(x):
            fitter.update(x, torch.nn.functional.one_hot(torch.from_numpy(codes[used: used + len(x)]), k).double())
            used += len(x)
    return fitter.eraser


def ce_rank(eraser) -> int:
    """Directions a ``concept_erasure.LeaceEraser`` removes (it zeroes dropped columns rather than dropping them)."""
    norms = eraser.proj_left.double().norm(dim=0)
    return int((norms > 1e-9 * float(norms.max())).sum()) if len(norms) else 0


def max_diff(ours, theirs, X: np.ndarray) -> float:
    """Largest |ours(x) - theirs(x)| over the rows of ``X``; ours in float64, theirs in its own dtype."""
    worst = 0.0
    dtype = theirs.proj_left.dtype
    for a in range(0, len(X), CHUNK):
        x = torch.from_numpy(X[a: a + CHUNK]).double()
        worst = max(worst, float((ours(x) - theirs(x.to(dtype)).double()).abs().max()))
    return worst


def erased32(eraser, X: np.ndarray) -> np.ndarray:
    out = np.empty(X.shape, dtype=np.float32)
    for a in range(0, len(X), CHUNK):
        out[a: a + CHUNK] = eraser(torch.from_numpy(X[a: a + CHUNK]).double()).float().numpy()
    return out


def probe_accuracy(kind: str, Xtr, ytr, Xte, yte, max_iter: int) -> dict:
    t0 = time.perf_counter()
    if kind == "probekit":
        clf = LinearProbe(solver="lbfgs", random_state=0).fit(Xtr, ytr)
        extra = {"n_iter": int(clf.n_iter_)}
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf = LogisticRegression(max_iter=max_iter).fit(Xtr, ytr)
        extra = {"n_iter": int(np.max(clf.n_iter_)),
                 "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught)}
    acc = float(clf.score(Xte, yte))
    return {"accuracy": acc, "seconds": time.perf_counter() - t0, **extra}


def run_site(store, task, site: str, labels, splits, a) -> dict:
    view = store[site]
    train, test = splits == "train", splits == "test"
    classes, codes_all = np.unique(labels, return_inverse=True)
    k = len(classes)
    codes = codes_all[train]
    res: dict = {"site": site}
    print(f"\n== {site}", flush=True)

    warm = LeaceEraser(site).fit(store, task)  # untimed: warms the page cache and gives the singular values
    s = warm.fit_info_["singular_values"]
    tol = 1e-8 * s[0]
    methods = {
        "probekit": lambda: LeaceEraser(site).fit(store, task),
        "concept_erasure": lambda: ce_in_memory(view, train, codes, k, torch.float64, shrinkage=False, svd_tol=tol),
        "concept_erasure_streamed": lambda: ce_streamed(view, train, codes, k, shrinkage=False, svd_tol=tol),
        "concept_erasure_float32": lambda: ce_in_memory(view, train, codes, k, torch.float32, shrinkage=False,
                                                        svd_tol=tol),
    }
    runs: dict[str, list] = {m: [] for m in methods}
    fitted: dict = {}
    for r in range(a.rounds):
        for name, fn in methods.items():
            fitted[name] = None
            fitted[name], t, mem = measured(fn)
            runs[name].append({"round": r, "seconds": t, "peak_anon_mb": mem, "load_average": os.getloadavg()})
            print(f"round {r} {name:26s} {t:6.2f} s, peak +{mem:.0f} MB", flush=True)
    for name, rr in runs.items():
        best = min(rr, key=lambda x: x["seconds"])
        res[name] = {"seconds": best["seconds"], "peak_anon_mb": max(x["peak_anon_mb"] for x in rr), "runs": rr}
    ours, ref, streamed, ref32 = (fitted[m] for m in methods)
    res["probekit"].update(rank=ours.rank_, covariance_rank=ours.fit_info_["covariance_rank"], singular_values=s)
    res["concept_erasure"].update(rank=ce_rank(ref),
                                  settings=f"LeaceFitter(float64, shrinkage=False, svd_tol={tol:.3g}), all rows")
    res["speed_ratio_vs_concept_erasure"] = res["concept_erasure"]["seconds"] / res["probekit"]["seconds"]
    res["speed_ratio_vs_concept_erasure_streamed"] = (res["concept_erasure_streamed"]["seconds"]
                                                      / res["probekit"]["seconds"])

    X = np.asarray(view.numpy("word"))
    Xtr, Xte = np.asarray(X[train], dtype=np.float32), np.asarray(X[test], dtype=np.float32)
    both = np.concatenate([Xtr, Xte])
    res["max_abs_diff_vs_concept_erasure"] = max_diff(ours, ref, both)
    res["max_abs_diff_vs_concept_erasure_streamed"] = max_diff(ours, streamed, both)
    res["max_abs_diff_vs_concept_erasure_float32"] = max_diff(ours, ref32, both)
    res["max_abs_feature"] = float(np.abs(both).max())
    del ref, streamed, ref32

    shr, t, mem = measured(lambda: LeaceEraser(site, shrinkage=True, svd_atol=0.01).fit(store, task))
    res["probekit_shrinkage"] = {"seconds": t, "peak_anon_mb": mem, "rank": shr.rank_}
    ref_s, t, mem = measured(lambda: ce_in_memory(view, train, codes, k, torch.float64))
    res["concept_erasure_defaults"] = {"seconds": t, "peak_anon_mb": mem, "rank": ce_rank(ref_s),
                                       "settings": "LeaceFitter(float64) defaults: shrinkage, svd_tol=0.01"}
    res["max_abs_diff_vs_concept_erasure_shrinkage"] = max_diff(shr, ref_s, both)
    del ref_s, both
    print(f"max |diff| vs concept-erasure: {res['max_abs_diff_vs_concept_erasure']:.2e} (same settings), "
          f"{res['max_abs_diff_vs_concept_erasure_shrinkage']:.2e} (its defaults), "
          f"{res['max_abs_diff_vs_concept_erasure_float32']:.2e} (its float32)", flush=True)

    ytr, yte = labels[train], labels[test]
    tr_classes, tr_counts = np.unique(ytr, return_counts=True)
    majority = float(np.mean(yte == tr_classes[np.argmax(tr_counts)]))
    before = probe_accuracy("probekit", Xtr, ytr, Xte, yte, a.sklearn_max_iter)
    Etr, Ete = erased32(ours, Xtr), erased32(ours, Xte)
    after = {kind: probe_accuracy(kind, Etr, ytr, Ete, yte, a.sklearn_max_iter) for kind in ("probekit", "sklearn")}
    control = random_eraser_like(ours, random_state=0)
    rand = probe_accuracy("probekit", erased32(control, Xtr), ytr, erased32(control, Xte), yte, a.sklearn_max_iter)
    best = max(v["accuracy"] for v in after.values())
    res["guardedness"] = {"majority_class": str(tr_classes[np.argmax(tr_counts)]), "majority_accuracy": majority,
                          "linear_probe_before": before, "after_leace": after, "after_random_subspace": rand,
                          "best_after": best, "gap_points": 100 * (best - majority)}
    print(f"probe accuracy: before {before['accuracy']:.4f}; after LEACE probekit "
          f"{after['probekit']['accuracy']:.4f}, sklearn {after['sklearn']['accuracy']:.4f}; majority "
          f"{majority:.4f}; after random rank-{ours.rank_} subspace {rand['accuracy']:.4f}", flush=True)
    del Etr, Ete

    if a.inlp_iter:
        inlp, t, mem = measured(lambda: InlpEraser(site, n_iter=a.inlp_iter, random_state=0).fit(store, task))
        res["inlp"] = {"seconds": t, "peak_anon_mb": mem, "n_iter": a.inlp_iter, "rank": inlp.rank_,
                       "history_dev": inlp.history_, "majority_dev": inlp.majority_accuracy_,
                       "classifier": inlp.fit_info_["classifier"]}
        print(f"INLP {a.inlp_iter} iterations: {t:.1f} s, peak +{mem:.0f} MB, rank {inlp.rank_}, dev accuracy "
              + " ".join(f"{h['accuracy']:.3f}" for h in inlp.history_), flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", nargs="+", default=["L2.resid", "L5.resid"])
    p.add_argument("--inlp-iter", type=int, default=10, help="INLP iterations (0: skip INLP)")
    p.add_argument("--sklearn-max-iter", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1, help="threads for torch and BLAS alike")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the four LEACE fits (best round counts)")
    p.add_argument("--store", type=Path, default=DEFAULT_STORE)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--limit", type=int, default=None, help="sentences per UD file (a quick smoke run; not for "
                   "the recorded results)")
    a = p.parse_args()
    ud = os.environ.get("PROBEKIT_UD_PATH")
    if not ud or not Path(ud).is_dir():
        p.error("set PROBEKIT_UD_PATH to the UD English EWT folder (the train and dev .conllu files)")
    torch.set_num_threads(a.threads)
    threadpool_limits(a.threads)
    mmap_fixed = fixed_mmap_threshold()
    import concept_erasure

    task = build_task("upos", "ud", path=ud, limit=a.limit)
    t0 = time.perf_counter()
    store = extract_task("minilm-l6", task, a.store, sites=a.sites, dtype="float16", progress=False)
    store_s = time.perf_counter() - t0
    labels, splits = word_rows(task)
    info = {"task": "upos", "model": "minilm-l6", "store_dtype": "float16", "word_pooling": "mean",
            "sites": a.sites, "n_train": int((splits == "train").sum()), "n_test": int((splits == "test").sum()),
            "n_dev": int((splits == "dev").sum()), "d": int(store[a.sites[0]].d),
            "n_classes": int(len(np.unique(labels))), "store_seconds_open_or_extract": store_s,
            "threads": a.threads, "chunk_rows": CHUNK, "limit": a.limit, "rounds": a.rounds,
            "malloc_mmap_threshold_fixed": mmap_fixed}
    print(f"store: {info}", flush=True)
    sites = {s: run_site(store, task, s, labels, splits, a) for s in a.sites}
    diff = max(r["max_abs_diff_vs_concept_erasure"] for r in sites.values())
    diff_s = max(r["max_abs_diff_vs_concept_erasure_shrinkage"] for r in sites.values())
    gap = max(r["guardedness"]["gap_points"] for r in sites.values())
    result = {
        "setup": info,
        "machine": machine(sklearn=sklearn.__version__, concept_erasure=concept_erasure.__dict__.get(
            "__version__", _dist_version("concept-erasure"))),
        "max_abs_diff_vs_concept_erasure": diff,
        "max_abs_diff_vs_concept_erasure_shrinkage": diff_s,
        "guardedness_gap_points": gap,
        "sites": sites,
        "targets": {"max_abs_diff_vs_concept_erasure<=1e-4": diff <= 1e-4, "guardedness_gap_points<=1.0": gap <= 1.0},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    print(f"\n{'site':9s} {'probekit s':>10s} {'MB':>6s} {'c-e s':>7s} {'MB':>6s} {'c-e str s':>9s} {'MB':>5s} "
          f"{'max|diff|':>9s} {'before':>7s} {'after pk':>8s} {'after sk':>8s} {'majority':>8s} {'random':>7s} "
          f"{'INLP dev first->last':>21s}")
    for s, r in sites.items():
        g = r["guardedness"]
        inlp = r.get("inlp")
        inl = f"{inlp['history_dev'][0]['accuracy']:.3f}->{inlp['history_dev'][-1]['accuracy']:.3f}" if inlp else "-"
        print(f"{s:9s} {r['probekit']['seconds']:10.2f} {r['probekit']['peak_anon_mb']:6.0f} "
              f"{r['concept_erasure']['seconds']:7.2f} {r['concept_erasure']['peak_anon_mb']:6.0f} "
              f"{r['concept_erasure_streamed']['seconds']:9.2f} {r['concept_erasure_streamed']['peak_anon_mb']:5.0f} "
              f"{r['max_abs_diff_vs_concept_erasure']:9.1e} {g['linear_probe_before']['accuracy']:7.4f} "
              f"{g['after_leace']['probekit']['accuracy']:8.4f} {g['after_leace']['sklearn']['accuracy']:8.4f} "
              f"{g['majority_accuracy']:8.4f} {g['after_random_subspace']['accuracy']:7.4f} {inl:>21s}")
    print(f"\nmax_abs_diff_vs_concept_erasure={diff:.2e} (its defaults: {diff_s:.2e}), "
          f"guardedness_gap_points={gap:.2f}")
    print(f"targets: {result['targets']}")
    print(f"written {a.out}")


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
