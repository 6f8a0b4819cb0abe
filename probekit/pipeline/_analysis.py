"""Analysis stages: extraction, task stores, the probe suite and the attention suite."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from probekit.pipeline._common import (
    fresh_store,
    load_base,
    model_spec,
    sentences_frame,
    try_figure,
    write_table,
)
from probekit.probes import group_tasks
from probekit.report import expected_layers, probe_summary

logger = logging.getLogger(__name__)

__all__ = ["stage_extract", "stage_task_stores", "stage_probes", "stage_attention"]


def _main_sites(cfg: dict, model) -> list:
    from probekit.store._extract import resolve_sites

    sites = list(resolve_sites(model, cfg["extract"]["sites"]))
    if cfg["extract"]["attention"]:
        sites += [model.site(f"L{i}.attn.pattern") for i in range(model.n_layers)]
    return list(dict.fromkeys(sites))


def stage_extract(ctx) -> dict:
    """Extract the configured sites (and attention patterns) of the experiment's sentences into ``stores/main``."""
    from probekit import extract

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
    from probekit.data import build_task

    d = cfg["data"]
    return [build_task(t, d["source"], path=d["path"], limit=d["sentences"], seed=cfg["seed"])
            for t in cfg["probes"]["tasks"]]


def stage_task_stores(ctx) -> dict:
    """One store per distinct example set of the tasks (plus its random-weights copy)."""
    from probekit.probes import extract_task, random_init_copy

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
    from probekit import Results
    from probekit.plots import probe_curves, probe_heatmap, selectivity_curves
    from probekit.probes import ProbeSuite
    from probekit.store import ActivationStore

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
    outputs: list[str] = []
    df = results.to_frame()
    write_table(ctx, df, "probes", outputs)
    summary = probe_summary(df)
    write_table(ctx, summary, "probe_summary", outputs)
    write_table(ctx, expected_layers(df), "expected_layer", outputs)
    real = df[df["variant"].isna()]
    try_figure(ctx, lambda: probe_curves(df), "probes", "curves", outputs)
    try_figure(ctx, lambda: probe_heatmap(real), "probes", "heatmap", outputs)
    if pc["controls"]:
        try_figure(ctx, lambda: selectivity_curves(real), "probes", "selectivity", outputs)
    best = summary.loc[summary.groupby(["task", "probe"])["accuracy"].idxmax()] if len(summary) else summary
    return {"outputs": outputs, "info": {"best": best[["task", "probe", "layer", "accuracy"]].to_dict("records")}}


def _special_mass(stats: pd.DataFrame) -> pd.DataFrame:
    """Mean over heads per layer (the layer axis: block ``i``'s pattern is layer ``i + 1``), with its block."""
    df = stats[stats["metric"].isin(["cls", "sep", "punct", "self", "prev", "next", "entropy"])]
    out = df.pivot_table(index=["layer", "block"], columns="metric", values="value", aggfunc="mean").reset_index()
    out.columns.name = None
    cols = ["layer", "block"] + [c for c in ("cls", "sep", "punct", "self", "prev", "next", "entropy")
                                 if c in out.columns]
    return out[cols]


def _mass_plot(mass: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for col in ("cls", "sep", "punct", "self"):
        if col in mass.columns:
            ax.plot(mass["layer"], mass[col], marker="o", label=f"[{col.upper()}]" if col in ("cls", "sep") else col)
    ax.set_xlabel("layer (block i's attention is layer i + 1)")
    ax.set_ylabel("mean attention mass")
    ax.set_xticks(mass["layer"])
    ax.legend(frameon=False)
    ax.set_title("attention mass by layer")
    fig.tight_layout()
    return fig


def stage_attention(ctx) -> dict:
    """Head statistics, [CLS]/[SEP] mass by layer, one sentence's heatmaps and its rollout map."""
    import torch

    from probekit.attention import AttentionSuite
    from probekit.model import Site
    from probekit.plots import attention_heatmap, layer_head_grid, pattern_frame
    from probekit.store import ActivationStore

    ac = ctx.cfg["attention"]
    store = ActivationStore.open(ctx.run_dir / "stores" / "main")
    tok = load_base(ctx).tokenizer
    suite = AttentionSuite(store, tok)
    stats = suite.head_statistics(progress=ctx.progress)
    sdf = stats.to_frame()
    outputs: list[str] = []
    write_table(ctx, sdf, "attention_heads", outputs)
    mass = _special_mass(sdf)
    write_table(ctx, mass, "special_mass", outputs)
    try_figure(ctx, lambda: _mass_plot(mass), "attention", "special_mass", outputs)
    for metric in ("sep", "cls", "entropy"):
        grid = sdf[sdf["metric"] == metric]
        try_figure(ctx, lambda g=grid, m=metric: layer_head_grid(g, title=f"{m} by layer and head"), "attention",
                   f"grid_{metric}", outputs)
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
