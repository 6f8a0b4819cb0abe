"""Analysis stages: extraction, task stores, the probe suite and the attention suite."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from probekit.attention import AttentionSuite
from probekit.data import build_task
from probekit.model import Site
from probekit.pipeline._common import (
    fresh_store,
    load_base,
    model_spec,
    sentences_frame,
    try_figure,
)
from probekit.pipeline._outputs import Outputs, attention_outputs, best_layers, probe_outputs
from probekit.plots import (
    attention_heatmap,
    pattern_frame,
)
from probekit.probes import ProbeSuite, extract_task, group_tasks, random_init_copy
from probekit.results import Results
from probekit.store import ActivationStore, extract, resolve_sites

logger = logging.getLogger(__name__)

__all__ = ["stage_extract", "stage_task_stores", "stage_probes", "stage_attention"]


def _main_sites(cfg: dict, model) -> list:
    sites = list(resolve_sites(model, cfg["extract"]["sites"]))
    if cfg["extract"]["attention"]:
        sites += [model.site(f"L{i}.attn.pattern") for i in range(model.n_layers)]
    return list(dict.fromkeys(sites))


def stage_extract(ctx) -> dict:
    """Extract the configured sites (and attention patterns) of the experiment's sentences into ``stores/main``."""
    cfg = ctx.cfg
    model = load_base(ctx)
    df = sentences_frame(cfg, cfg["data"]["sentences"])
    sites = _main_sites(cfg, model)
    store = fresh_store(ctx, lambda ow: extract(
        model, df, sites, ctx.path("stores", "main"), dtype=cfg["extract"]["dtype"],
        batch_tokens=cfg["extract"]["batch_tokens"], sentence_pooling=("mean",), progress=ctx.progress, overwrite=ow))
    return {"outputs": ["stores/main"], "fingerprints": {"main": store.fingerprint},
            "info": {"examples": store.n_examples, "sites": [str(s) for s in store.sites]}}


def build_tasks(cfg: dict) -> list:
    """The configured probing tasks, built on the experiment's data and seed."""
    d = cfg["data"]
    return [build_task(t, d["source"], path=d["path"], limit=d["sentences"], seed=cfg["seed"])
            for t in cfg["probes"]["tasks"]]


def stage_task_stores(ctx) -> dict:
    """One store per distinct example set of the tasks (plus its random-weights copy)."""
    cfg = ctx.cfg
    model = load_base(ctx)
    groups = group_tasks(build_tasks(cfg))
    outputs, fps, info = [], {}, []
    # a seed other than the model's own, so that a model built from a config is not its own random copy
    rand_seed = max(cfg["seed"], model_spec(cfg)[2]) + 1
    rand = random_init_copy(model, seed=rand_seed) if cfg["probes"]["random_init"] else None
    for i, group in enumerate(groups):
        name = f"tasks-{i}"
        st = fresh_store(ctx, lambda ow, t=group[0], n=name: extract_task(
            model, t, ctx.path("stores", n), progress=ctx.progress, overwrite=ow))
        outputs.append(f"stores/{name}")
        fps[name] = st.fingerprint
        entry = {"tasks": [t.name for t in group], "store": name, "examples": st.n_examples}
        if rand is not None:
            rname = f"random-{i}"
            rs = fresh_store(ctx, lambda ow, t=group[0], n=rname: extract_task(
                rand, t, ctx.path("stores", n), progress=ctx.progress, overwrite=ow))
            outputs.append(f"stores/{rname}")
            fps[rname] = rs.fingerprint
            entry["random_store"] = rname
        info.append(entry)
    return {"outputs": outputs, "fingerprints": fps,
            "info": {"groups": info, "random_init_seed": rand_seed if rand is not None else None}}


def stage_probes(ctx) -> dict:
    """The probe suite over the task stores: tidy results, summary tables and plots."""
    cfg, pc = ctx.cfg, ctx.cfg["probes"]
    name = str(load_base(ctx).name)
    groups = group_tasks(build_tasks(cfg))
    stored = ctx.records["task_stores"]["info"]["groups"]
    results = Results()
    for group, entry in zip(groups, stored):
        if [t.name for t in group] != entry["tasks"]:
            raise RuntimeError("the task stores do not match the tasks; re-run with --force")
        stores = {name: ActivationStore.open(ctx.run_dir / "stores" / entry["store"])}
        if "random_store" in entry:
            stores[(name, "random-init")] = ActivationStore.open(ctx.run_dir / "stores" / entry["random_store"])
        suite = ProbeSuite(group, list(pc["probes"]), pc["seeds"], controls=pc["controls"], n_boot=pc["n_boot"],
                           control_seed=cfg["seed"])
        results = results + suite.run(stores)
    out = Outputs(ctx.run_dir, figures=ctx.cfg["outputs"]["figures"])
    summary = probe_outputs(results, out, controls=pc["controls"])
    best = best_layers(summary)
    return {"outputs": out.written, "info": {"best": best[["task", "probe", "layer", "accuracy"]].to_dict("records")}}



def stage_attention(ctx) -> dict:
    """Head statistics, [CLS]/[SEP] mass by layer, one sentence's heatmaps and its rollout map."""
    import torch

    ac = ctx.cfg["attention"]
    store = ActivationStore.open(ctx.run_dir / "stores" / "main")
    tok = load_base(ctx).tokenizer
    suite = AttentionSuite(store, tok)
    out = Outputs(ctx.run_dir, figures=ctx.cfg["outputs"]["figures"])
    sdf, mass = attention_outputs(suite, out, progress=ctx.progress)
    outputs = out.written
    i = int(ac["example"])
    if not 0 <= i < store.n_examples:
        raise ValueError(f"attention.example is {i}, but the store has {store.n_examples} examples")
    tokens = tok.convert_ids_to_tokens(store.input_ids(i).tolist())
    n = len(suite.blocks)
    # heatmap_layers are on the layer axis: block i's pattern is layer i + 1
    stored = [b + 1 for b in suite.blocks]
    layers = ac["heatmap_layers"] if ac["heatmap_layers"] is not None else sorted({1, n // 2 + 1, n})
    for lay in layers:
        if lay not in stored:
            raise ValueError(f"attention.heatmap_layers names layer {lay}; the stored attention patterns are layers "
                             f"{stored} (block i's pattern is layer i + 1; layer 0, the embeddings, has none)")
        block = lay - 1
        p = torch.from_numpy(np.asarray(store[Site(block, "attn.pattern")].example(i), np.float32))
        try_figure(ctx, lambda p=p, lay=lay, block=block: attention_heatmap(
            pattern_frame(p, tokens, head="mean"), title=f"layer {lay} (L{block}.attn.pattern), mean over heads"),
                   "attention", f"heatmap_L{block}", outputs)
    roll = suite.rollout(i)[-1]
    frame = pd.DataFrame(roll, index=tokens, columns=tokens)
    try_figure(ctx, lambda: attention_heatmap(frame, title=f"attention rollout through layer {n}"), "attention",
               "rollout", outputs)
    top = sdf[sdf["metric"] == "sep"].nlargest(3, "value")[["layer", "block", "head", "value"]]
    return {"outputs": outputs, "info": {"example": " ".join(store.words(i)), "top_sep_heads": top.to_dict("records"),
                                         "special_mass": mass.round(4).to_dict("records")}}
