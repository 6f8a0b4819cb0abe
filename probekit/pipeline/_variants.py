"""Stages on the fine-tuned classifier: fine-tuning, variants, attribution and layer-by-layer comparison."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd

from probekit.attention import head_importance
from probekit.attribution import Attributor
from probekit.compare import compare, layer_map_for, probe_deltas
from probekit.data import build_task
from probekit.pipeline._common import fresh_store, model_spec, outputs, sentences_frame
from probekit.pipeline._compare_tables import compare_outputs
from probekit.pipeline._model_tables import attribution_outputs
from probekit.probes import ProbeSuite, extract_task
from probekit.store import extract
from probekit.variants import (
    DistillRecipe,
    FinetuneRecipe,
    compare_latency,
    distill,
    evaluate,
    finetune,
    load_model,
    load_variant,
    magnitude_prune,
    parameter_count,
    prune_heads,
    quantize,
    rotten_tomatoes_splits,
    state_dict_bytes,
)

logger = logging.getLogger(__name__)

__all__ = ["stage_finetune", "stage_variants", "stage_attribution", "stage_compare", "VARIANT_ORDER"]

#: Variant names (the config keys under ``variants``) in the order they are made and tabulated.
VARIANT_ORDER = ("magnitude_prune", "prune_heads", "quantize", "distill")


def rt_splits(cfg: dict) -> dict[str, pd.DataFrame]:
    """Rotten Tomatoes train/validation/test, with the configured seeded samples."""
    fc, seed = cfg["finetune"], cfg["seed"]
    sp = rotten_tomatoes_splits(seed=seed)
    out = {}
    for k, df in sp.items():
        n = fc["train_size"] if k == "train" else fc["eval_size"]
        if n is not None and n < len(df):
            df = df.sample(n, random_state=seed).reset_index(drop=True)
        out[k] = df
    return out


def _finetuned(ctx):
    return ctx.cached("finetuned", lambda: load_variant(ctx.run_dir / "models" / "finetuned"))


def stage_finetune(ctx) -> dict:
    """Fine-tune the model for Rotten Tomatoes sentiment (``models/finetuned``)."""
    cfg, fc = ctx.cfg, ctx.cfg["finetune"]
    sp = rt_splits(cfg)
    spec, name, seed = model_spec(cfg)
    base = load_model(spec, head="sequence-classification", num_labels=int(sp["train"]["label"].max()) + 1,
                      seed=seed, name=name)
    out = ctx.run_dir / "models" / "finetuned"
    recipe = FinetuneRecipe(epochs=float(fc["epochs"]), lr=float(fc["lr"]), batch_size=fc["batch_size"],
                            max_length=fc["max_length"], early_stopping=None, seed=cfg["seed"])
    ft = finetune(base, sp["train"], recipe, eval_data=sp["validation"], out=out, progress=ctx.progress,
                  resume=(out / "checkpoints").is_dir() and not ctx.force)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    ctx._cache["finetuned"] = ft
    ev = ft.report.get("eval", {})
    return {"outputs": ["models/finetuned"], "fingerprints": {"finetuned": ft.fingerprint()},
            "info": {"train": len(sp["train"]), "validation": len(sp["validation"]),
                     "validation_accuracy": ev.get("accuracy"), "validation_macro_f1": ev.get("macro_f1")}}


def _measure(made: dict, test: pd.DataFrame, max_length: int, n_single: int, rounds: int = 3) -> pd.DataFrame:
    """Accuracy, size and speed of every model against the first (the fine-tuned original).

    Speed as in ``benchmarks/variants.py``: :func:`probekit.variants.compare_latency` runs every model on each
    input in turn (order rotated per round), at one thread count for all; ``throughput_ratio`` is the median
    over rounds of the same-round batch-32 throughput ratio to the original (``throughput_ratio_min/max``:
    its range), ``latency_ms_b1`` the median batch-1 latency over ``n_single`` test sentences.
    """
    import torch

    first = next(iter(made.values())).model
    tok = first.tokenizer
    texts = list(test["text"])
    def enc(part):
        e = tok(part, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return e["input_ids"], e["attention_mask"]

    singles = [enc(texts[i: i + 1]) for i in range(min(n_single, len(texts)))]
    batches = [enc(texts[i: i + 32]) for i in range(0, min(len(texts), 128), 32)]
    nets = {name: v.model.model.eval() for name, v in made.items()}

    def runner(net):
        return lambda ids, mask: net(input_ids=ids, attention_mask=mask)

    runs = {name: runner(net) for name, net in nets.items()}
    with torch.inference_mode():
        b32 = compare_latency(runs, batches, units=[len(b[0]) for b in batches], rounds=rounds, warmup=1)
        b1 = compare_latency(runs, singles, rounds=rounds, warmup=2)
    base = next(iter(made))
    s32, s1 = b32.summary(base), b1.summary(base)
    rows = []
    acc0 = None
    for name, v in made.items():
        ev = evaluate(v.model, test, max_length=max_length)
        acc0 = ev["accuracy"] if acc0 is None else acc0
        rows.append({"variant": name, "accuracy": ev["accuracy"], "macro_f1": ev["macro_f1"],
                     "accuracy_drop_points": 100 * (acc0 - ev["accuracy"]),
                     "accuracy_fraction": ev["accuracy"] / acc0 if acc0 else float("nan"),
                     "params": parameter_count(nets[name]), "size_mb": state_dict_bytes(nets[name]) / 2**20,
                     "latency_ms_b1": float(s1.loc[name, "median_ms"]),
                     "throughput_b32": float(s32.loc[name, "per_s_median"]),
                     "throughput_ratio": float(s32.loc[name, "speedup_paired"]),
                     "throughput_ratio_min": float(s32.loc[name, "speedup_min"]),
                     "throughput_ratio_max": float(s32.loc[name, "speedup_max"]),
                     "threads": b32.threads})
    return pd.DataFrame(rows)


def stage_variants(ctx) -> dict:
    """Magnitude-prune, head-prune, quantize and distil the fine-tuned model; the variants table."""
    cfg, vc, fc = ctx.cfg, ctx.cfg["variants"], ctx.cfg["finetune"]
    sp = rt_splits(cfg)
    ft = _finetuned(ctx)
    models = ctx.run_dir / "models"
    made = {"finetuned": ft}
    for name in VARIANT_ORDER:
        opts = vc.get(name)
        if opts is None:
            continue
        logger.info("making variant %s", name)
        if name == "magnitude_prune":
            v = magnitude_prune(ft, sparsity=float(opts["sparsity"]), recover_epochs=float(opts["recover_epochs"]),
                                data=sp["train"], eval_data=sp["validation"])
        elif name == "prune_heads":
            scores = None
            if opts["importance"] == "michel":
                imp = sp["train"].sample(min(opts["importance_sentences"], len(sp["train"])), random_state=cfg["seed"])
                scores = head_importance(ft.model, list(imp["text"]), imp["label"].astype(int).tolist())
            v = prune_heads(ft, fraction=float(opts["fraction"]), importance=opts["importance"], scores=scores,
                            data=sp["train"], eval_data=sp["validation"], recover_epochs=float(opts["recover_epochs"]))
        elif name == "quantize":
            v = quantize(ft, method=opts["method"])
        else:
            train = sp["train"]
            if opts["train_size"] is not None and opts["train_size"] < len(train):
                train = train.sample(opts["train_size"], random_state=cfg["seed"]).reset_index(drop=True)
            n_layers = min(int(opts["n_layers"]), ft.model.n_layers)
            recipe = DistillRecipe(n_layers=n_layers, alpha=float(opts["alpha"]),
                                   temperature=float(opts["temperature"]), epochs=float(opts["epochs"]),
                                   lr=float(fc["lr"]), batch_size=fc["batch_size"], max_length=fc["max_length"],
                                   seed=cfg["seed"])
            v = distill(ft, train, recipe, eval_data=sp["validation"], progress=ctx.progress)
        v.save(models / name)
        made[name] = v
    table = _measure(made, sp["test"], fc["max_length"], vc["latency_repeats"])
    table["recipe"] = [json.dumps(v.recipe.to_dict(), default=str) for v in made.values()]
    table["layers"] = [v.model.n_layers for v in made.values()]
    table["warnings"] = [_warnings(v) for v in made.values()]
    out = outputs(ctx, [f"models/{n}" for n in made if n != "finetuned"])
    out.table(table, "variants")
    out.figure(lambda: _variants_plot(table), "variants", "accuracy_latency")
    return {"outputs": out.written, "fingerprints": {f"model:{n}": v.fingerprint() for n, v in made.items()},
            "info": {"test_sentences": len(sp["test"]),
                     "table": table.drop(columns=["recipe"]).round(4).to_dict("records")}}


def _warnings(variant) -> str:
    """The training warnings a variant (or its recovery / distillation run) recorded, one per line."""
    msgs = list(variant.report.get("warnings") or [])
    for key in ("recovery",):
        msgs += list((variant.report.get(key) or {}).get("warnings") or [])
    return "\n".join(msgs)


def _variants_plot(table: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(table["latency_ms_b1"], table["accuracy"], s=40 + 3 * table["size_mb"], alpha=0.7)
    for r in table.itertuples():
        ax.annotate(r.variant, (r.latency_ms_b1, r.accuracy), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("latency, batch 1 (ms)")
    ax.set_ylabel("test accuracy")
    ax.set_title("variants: accuracy vs latency (marker area ~ size)")
    fig.tight_layout()
    return fig


def stage_attribution(ctx) -> dict:
    """Attributions of a few test sentences by two (or more) methods, side by side."""
    cfg, ac = ctx.cfg, ctx.cfg["attribution"]
    test = rt_splits(cfg)["test"]
    short = test[test["text"].str.split().str.len().between(5, 18)]
    pick = (short if len(short) >= ac["sentences"] else test).sample(
        min(ac["sentences"], len(test)), random_state=cfg["seed"])
    texts = list(pick["text"])
    model = _finetuned(ctx).model
    by_method = {m: Attributor(model, m).attribute(texts, n_steps=ac["n_steps"]) for m in ac["methods"]}
    out = outputs(ctx)
    tables = attribution_outputs(by_method, out, special_tokens=model.tokenizer.all_special_tokens,
                                 label_names={0: "negative", 1: "positive"}, gold=list(pick["label"]),
                                 task="sentiment", model=str(model.name), variant="finetuned", split="test")
    agree = tables.get("attribution_agreement")
    mean = float(agree["spearman"].mean()) if agree is not None and len(agree) else None
    return {"outputs": out.written, "info": {"texts": texts, "mean_spearman": mean}}


# ------------------------------------------------------------------ compare
def _compare_data(cfg: dict):
    """The compare sentences: the probe task (when given) or the experiment's first sentences."""
    cc, d = cfg["compare"], cfg["data"]
    if cc["probe_task"]:
        return build_task(cc["probe_task"], d["source"], path=d["path"], limit=cc["sentences"], seed=cfg["seed"])
    return sentences_frame(cfg, cc["sentences"])


def _extract_for_compare(model, data, out: Path, progress: bool, overwrite: bool):
    sites = ["emb"] + [f"L{i}.resid" for i in range(model.n_layers)] + \
        [f"L{i}.attn.pattern" for i in range(model.n_layers)]
    if hasattr(data, "dataset"):
        return extract_task(model, data, out, sites, progress=progress, overwrite=overwrite)
    return extract(model, data, sites, out, dtype="float32", tokens=False, sentence_pooling=("mean",),
                   progress=progress, overwrite=overwrite)


def stage_compare(ctx) -> dict:
    """Each variant against the fine-tuned original, layer by layer, on stores of the same sentences.

    Every table is on the original's layer axis (``layer`` of ``site``; ``site_b``/``layer_b`` are the
    variant's site paired with it through the variant's layer map).
    """
    cfg = ctx.cfg
    data = _compare_data(cfg)
    ft = _finetuned(ctx)
    names = ["finetuned"] + [n for n in VARIANT_ORDER if (cfg["variants"] or {}).get(n) is not None]
    stores, fps, outputs_ = {}, {}, []
    for n in names:
        v = ft if n == "finetuned" else load_variant(ctx.run_dir / "models" / n)
        st = fresh_store(ctx, lambda ow, v=v, n=n: _extract_for_compare(
            v, data, ctx.path("stores", f"compare-{n}"), ctx.progress, ow))
        stores[n] = (v, st)
        fps[f"compare-{n}"] = st.fingerprint
        outputs_.append(f"stores/compare-{n}")
    base_v, base_st = stores["finetuned"]
    # the layer and head maps come from the variant records in the stores' manifests
    comps = {n: compare(base_st, st, layer_map=layer_map_for(base_st, st), attention=True, progress=ctx.progress)
             for n, (_, st) in list(stores.items())[1:]}
    deltas = None
    if hasattr(data, "dataset"):
        suite = ProbeSuite(data, "linear", [cfg["seed"]], controls=False, n_boot=200)
        model_name = str(base_v.model.name)
        suite.run({(model_name, k): s for k, (_, s) in stores.items()})
        deltas = {n: probe_deltas(suite, suite, layer_map=comps[n].layer_map, key_a=(model_name, "finetuned"),
                                  key_b=(model_name, n), n_boot=200, seed=cfg["seed"]) for n in comps}
    out = outputs(ctx, outputs_)
    tables = compare_outputs(comps, out, probe_deltas=deltas) if comps else {}
    diag = tables.get("compare_diagonal", pd.DataFrame(columns=["variant", "measure", "value"]))
    summary = diag[diag["measure"] == "linear_cka"].groupby("variant")["value"].agg(["min", "mean"]).round(4)
    return {"outputs": out.written, "fingerprints": fps,
            "info": {"sentences": int(base_st.n_examples), "cka": summary.reset_index().to_dict("records")}}
