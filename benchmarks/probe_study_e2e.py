"""A whole probe study against the time of its forward passes, end to end through the command line.

``study``: ``probekit --profile probe --model minilm-l6 --task upos,deprel --random-init`` on the whole UD English
EWT train file (dev as the test set), from nothing: both stores (the model's and its random-weights copy's) are
extracted inside the timing, then controls, 1,000 bootstrap replicates, tables and figures. It runs as a child
process; ``wall_s`` is its wall time, ``peak_rss_gb`` its peak RSS, ``profile_s`` its per-phase profile (the
CLI's ``--profile``). ``floor_s`` is what the study cannot go below on this machine, measured in the same run:
two bare forwards over the study's tokens (the model and its random copy, no hooks, the same length-sorted token
batches ``extract`` uses) plus the study's own fitting (its ``fit`` phase). ``--autocast bf16`` adds the same study
with bf16 autocast beside it (wall, and the largest accuracy difference against float32); ``--float32-stores``
the same study with float32 task stores (``--dtype float32``) against the float16 default.

``pooling``: pooled extraction (word and sentence means, stored in float32, and in float16 as the study's task
stores are) against the bare forward over the same sentences, interleaved rounds, tokens per second of each.

``demo``: ``probekit demo`` into a new run folder (install excluded), its wall time and stage profile.

Usage::

    PROBEKIT_UD_PATH=... python benchmarks/probe_study_e2e.py [--parts study,pooling,demo] [--autocast bf16]
        [--device cuda] [--quick] [--note "what else ran"]

``--quick`` uses 300 training sentences per file (a smoke test; its figures are not the benchmark's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from _machine import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "probe_study_e2e.json"
PROBEKIT = [sys.executable, "-m", "probekit.cli"]
TARGETS = {"wall_vs_floor": 1.15, "peak_rss_gb": 3.0, "accuracy_points": 0.2, "bf16_wall_s": 150.0,
           "pooled_vs_bare": 0.90, "demo_wall_s": 120.0}


def _child(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; its wall seconds, its own peak RSS (GB) and its stderr."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})},
                                cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        err.seek(0)
        text = err.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 2**20, text


def _profile_from(stderr: str) -> dict[str, float]:
    """The ``--profile`` table the CLI prints at the end (phase, seconds, share, calls)."""
    out = {}
    lines = stderr.split("where the time went", 1)[-1].splitlines()
    for line in lines:
        parts = line.split()
        if len(parts) == 4 and parts[0] != "phase":
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                continue
    return out


def _accuracies(out: Path) -> dict[str, float]:
    df = pd.read_csv(out / "tables" / "probes.csv")
    mean = df[df.metric == "accuracy_mean"]
    return {f"{'random-init/' if isinstance(v, str) else ''}{t}@{s}": float(x)
            for t, s, v, x in zip(mean.task, mean.site, mean.variant, mean.value)}


def _study_cmd(a, out: Path, autocast: str | None, dtype: str | None = None) -> list[str]:
    cmd = PROBEKIT + ["--profile", "probe", "--model", "minilm-l6", "--task", "upos,deprel", "--random-init",
                      "--ud-path", a.ud, "--out", str(out)]
    if a.quick:
        cmd += ["--limit", "300"]
    if autocast:
        cmd += ["--autocast", autocast]
    if dtype:
        cmd += ["--dtype", dtype]
    if a.device:
        cmd += ["--device", a.device]
    return cmd


def _bare_forwards(a) -> dict:
    """Two bare forwards over the study's sentences (train and dev): the model and its random-weights copy."""
    from probekit import load_model
    from probekit.data import build_task, ud_files
    from probekit.probes import random_init_copy
    from probekit.store import token_budget_batches

    files = ud_files(a.ud)
    task = build_task("upos", "ud", path={"train": files["train"], "dev": files["dev"]},
                      limit=300 if a.quick else None)
    words = [list(w) for w in task.dataset.word_lists()]
    model = load_model("minilm-l6", device=a.device)
    out = {"sentences": len(words)}
    for label, m in (("model", model), ("random_copy", random_init_copy(model, seed=0))):
        batch = m.tokenize(words)
        rows = [w.row_ids for w in batch.windows]
        t = time.perf_counter()
        with torch.inference_mode():
            for idx in token_budget_batches([len(r) for r in rows], 2048):
                m.forward_rows([rows[i] for i in idx])
        if m.device.type == "cuda":
            torch.cuda.synchronize()
        out[f"{label}_s"] = time.perf_counter() - t
        out["tokens"] = sum(len(r) for r in rows)
    return out


def study(a, payload: dict) -> None:
    runs = {}
    todo = [("float32", None, None)] + ([(a.autocast, a.autocast, None)] if a.autocast else []) + \
        ([("float32_stores", None, "float32")] if a.float32_stores else [])
    for label, autocast, dtype in todo:
        out = Path(tempfile.mkdtemp(prefix=f"study-{label}-"))
        try:
            wall, rss, err = _child(_study_cmd(a, out, autocast, dtype))
            runs[label] = {"wall_s": wall, "peak_rss_gb": rss, "profile_s": _profile_from(err),
                           "accuracies": _accuracies(out)}
        finally:
            shutil.rmtree(out, ignore_errors=True)
        print(f"study {label}: {wall:.1f} s, peak RSS {rss:.2f} GB, profile {runs[label]['profile_s']}")
    bare = _bare_forwards(a)
    fit = runs["float32"]["profile_s"].get("fit", float("nan"))
    floor = bare["model_s"] + bare["random_copy_s"] + fit
    ref = runs["float32"]
    res = {"runs": runs, "bare_forwards": bare, "fit_s": fit, "floor_s": floor, "wall_s": ref["wall_s"],
           "peak_rss_gb": ref["peak_rss_gb"], "wall_vs_floor": ref["wall_s"] / floor}
    if "bf16" in runs:
        b = runs["bf16"]
        common = set(b["accuracies"]) & set(ref["accuracies"])
        res["bf16"] = {"wall_s": b["wall_s"], "wall_vs_float32": b["wall_s"] / ref["wall_s"],
                       "largest_accuracy_difference_points":
                           max(abs(b["accuracies"][k] - ref["accuracies"][k]) for k in common) * 100,
                       "native_bf16": _native_bf16(a.device)}
    if "float32_stores" in runs:  # the task stores' default dtype (float16) against float32 stores
        f = runs["float32_stores"]
        common = set(f["accuracies"]) & set(ref["accuracies"])
        res["float32_stores"] = {"wall_s": f["wall_s"], "wall_vs_default": ref["wall_s"] / f["wall_s"],
                                 "largest_accuracy_difference_points":
                                     max(abs(f["accuracies"][k] - ref["accuracies"][k]) for k in common) * 100}
    payload["study"] = res
    print(f"floor {floor:.1f} s (bare forwards {bare['model_s']:.1f} + {bare['random_copy_s']:.1f} s, fit {fit:.1f} s);"
          f" wall / floor {res['wall_vs_floor']:.2f}")


def _native_bf16(device: str | None) -> bool:
    from probekit.store import native_bf16

    return native_bf16(torch.device(device or "cpu"))


def pooling(a, payload: dict) -> None:
    """Pooled extraction vs the bare forward on the same sentences, interleaved, best of the rounds."""
    from probekit import extract, load_model
    from probekit.data import build_task, ud_files
    from probekit.store import token_budget_batches

    files = ud_files(a.ud)
    task = build_task("upos", "ud", path={"train": files["train"]}, limit=300 if a.quick else 4000)
    words = [list(w) for w in task.dataset.word_lists()]
    frame = pd.DataFrame({"words": words})
    model = load_model("minilm-l6", device=a.device)
    sites = model.residual_sites()
    rows = [w.row_ids for w in model.tokenize(words).windows]
    n_tok = sum(len(r) for r in rows)
    best = {"bare": float("inf"), "pooled": float("inf"), "pooled_float16": float("inf")}
    for _ in range(2 if a.quick else 3):
        t = time.perf_counter()
        with torch.inference_mode():
            for idx in token_budget_batches([len(r) for r in rows], 2048):
                model.forward_rows([rows[i] for i in idx])
        best["bare"] = min(best["bare"], time.perf_counter() - t)
        for key, dtype in (("pooled", "float32"), ("pooled_float16", "float16")):
            d = tempfile.mkdtemp(prefix="pooled-")
            try:
                t = time.perf_counter()
                extract(model, frame, sites, Path(d) / "s", dtype=dtype, tokens=False, word_pooling=["mean"],
                        sentence_pooling=["mean"], progress=False)
                best[key] = min(best[key], time.perf_counter() - t)
            finally:
                shutil.rmtree(d, ignore_errors=True)
    payload["pooling"] = {"sentences": len(words), "tokens": n_tok, "sites": [str(s) for s in sites],
                          "bare_tokens_per_s": n_tok / best["bare"], "pooled_tokens_per_s": n_tok / best["pooled"],
                          "pooled_vs_bare": best["bare"] / best["pooled"],
                          "pooled_float16_tokens_per_s": n_tok / best["pooled_float16"],
                          "pooled_float16_vs_bare": best["bare"] / best["pooled_float16"],
                          "note": "extract includes tokenization, pooling, writing and checksums; best of the rounds; "
                                  "pooled_vs_bare (the target's) stores float32 rows, pooled_float16 the task "
                                  "stores' default dtype"}
    print(f"pooling: bare {n_tok / best['bare']:.0f} tok/s, pooled extraction {n_tok / best['pooled']:.0f} tok/s "
          f"({best['bare'] / best['pooled']:.2f}; float16 rows {best['bare'] / best['pooled_float16']:.2f})")


def demo(a, payload: dict) -> None:
    out = Path(tempfile.mkdtemp(prefix="demo-")) / "run"
    try:
        args = PROBEKIT + ["demo", "--out", str(out), "--no-progress"] + (["--quick"] if a.quick else [])
        wall, rss, _ = _child(args, cwd=ROOT)
        run = json.loads((out / "run.json").read_text())
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    payload["demo"] = {"wall_s": wall, "peak_rss_gb": rss, "stage_s": run["timings"],
                       "stage_profile_s": {k: v.get("profile", {}) for k, v in run["stages"].items()},
                       "quick": a.quick}
    print(f"demo: {wall:.1f} s, stages {run['timings']}")


def verdicts(res: dict) -> dict:
    """Each target with the figure it reads, met or missed (only those whose figures were measured)."""
    study, bf16 = res.get("study", {}), res.get("study", {}).get("bf16", {})
    f32_stores = study.get("float32_stores", {})
    figures = {"wall_vs_floor": (study.get("wall_vs_floor"), "<="), "peak_rss_gb": (study.get("peak_rss_gb"), "<="),
               "bf16_wall_s": (bf16.get("wall_s"), "<="),
               "accuracy_points": (bf16.get("largest_accuracy_difference_points"), "<="),
               "store_dtype_accuracy_points": (f32_stores.get("largest_accuracy_difference_points"), "<="),
               "pooled_vs_bare": (res.get("pooling", {}).get("pooled_vs_bare"), ">="),
               "demo_wall_s": (res.get("demo", {}).get("wall_s"), "<=")}
    out = {}
    for name, (value, op) in figures.items():
        if value is not None:
            t = TARGETS["accuracy_points" if name.endswith("accuracy_points") else name]
            label = "bf16_accuracy_points" if name == "accuracy_points" else name
            out[label] = {"target": f"{op} {t} (measured {value:.3g})",
                          "met": bool(value <= t if op == "<=" else value >= t)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="study,pooling,demo")
    p.add_argument("--autocast", choices=["bf16"], default=None)
    p.add_argument("--device", default=None, help="e.g. cuda (the GPU's name is recorded)")
    p.add_argument("--float32-stores", action="store_true",
                   help="also the study with float32 task stores (the accuracies against the float16 default)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    a = p.parse_args()
    a.ud = os.environ.get("PROBEKIT_UD_PATH")
    if not a.ud:
        sys.exit("set PROBEKIT_UD_PATH to a folder holding en_ewt-ud-train.conllu and en_ewt-ud-dev.conllu")
    parts = a.parts.split(",")
    payload: dict = {}
    for name in parts:
        {"study": study, "pooling": pooling, "demo": demo}[name](a, payload)
    gpu = torch.cuda.get_device_name(0) if a.device == "cuda" and torch.cuda.is_available() else None
    payload["machine"] = machine(gpu=gpu, note=a.note or "nothing else ran")
    payload["quick"] = a.quick
    payload["ratios"] = {k: v for k, v in (
        ("wall_vs_floor", payload.get("study", {}).get("wall_vs_floor")),
        ("pooled_vs_bare", payload.get("pooling", {}).get("pooled_vs_bare"))) if v is not None}
    key = "gpu" if gpu else "cpu"
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() and not a.quick else {}
    prev = old.get(key if not a.quick else "quick", {})
    payload["ratios"] = {**prev.get("ratios", {}), **payload["ratios"]}  # a part run alone keeps the others'
    # which parts each machine record describes, since parts can be re-run alone
    payload["part_runs"] = [*prev.get("part_runs", []),
                            {"parts": parts, "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "note": a.note}]
    merged = {**prev, **payload}
    merged["targets"] = verdicts(merged)
    old[key if not a.quick else "quick"] = merged
    dest = RESULTS if not a.quick else RESULTS.with_name("probe_study_e2e.quick.json.tmp")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(old, indent=1, default=float))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
