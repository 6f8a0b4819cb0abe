"""Analysis stages: extraction, task stores, the probe suite and the attention suite."""

from __future__ import annotations

import logging

from probekit.attention import AttentionSuite
from probekit.data import build_task
from probekit.pipeline._common import fresh_store, load_base, model_spec, outputs, sentences_frame
from probekit.pipeline._interventions import config_interventions
from probekit.pipeline._tables import attention_outputs, probe_outputs
from probekit.probes import ProbeSuite, extract_tasks, group_tasks, random_init_copy
from probekit.results import Results
from probekit.store import ActivationStore, StoreError, extract, resolve_sites

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
        batch_tokens=cfg["extract"]["batch_tokens"], sentence_pooling=("mean",), autocast=cfg["extract"]["autocast"],
        interventions=config_interventions(cfg), progress=ctx.progress, overwrite=ow))
    return {"outputs": ["stores/main"], "fingerprints": {"main": store.fingerprint},
            "info": {"examples": store.n_examples, "sites": [str(s) for s in store.sites]}}


def build_tasks(cfg: dict) -> list:
    """The configured probing tasks, built on the experiment's data and seed."""
    d = cfg["data"]
    return [build_task(t, d["source"], path=d["path"], limit=d["sentences"], seed=cfg["seed"])
            for t in cfg["probes"]["tasks"]]


def _main_source(ctx, model, sites) -> list:
    """``[stores/main]`` when it can give the task stores their rows (token rows of ``sites``), else ``[]``."""
    if ctx.cfg.get("extract") is None:
        return []
    try:
        main = ActivationStore.open(ctx.run_dir / "stores" / "main", model=model)
    except (StoreError, FileNotFoundError) as exc:
        logger.info("task stores: the main store cannot be used (%s); extracting the task sentences", exc)
        return []
    if not (main.settings["tokens"] and all(s in main for s in sites)):
        logger.info("task stores: the main store lacks token rows of some of %s; extracting those sentences",
                    ", ".join(map(str, sites)))
        return []
    return [main]


def stage_task_stores(ctx) -> dict:
    """The task stores: pooled rows derived from the main store, the model run only over sentences not in it.

    Each model runs over each sentence once: the sentences of ``stores/main``
    are pooled from its token rows, the task sentences it lacks (e.g. the
    rewritten ones of ``bigramshift``) run once into ``stores/tasks/@extracted``,
    and the random-weights copy runs once over every task sentence into
    ``stores/random/@extracted``; every group of tasks then gets a derived
    store of the rows it reads.
    """
    cfg = ctx.cfg
    model = load_base(ctx)
    tasks = build_tasks(cfg)
    dtype = cfg["extract"]["dtype"] if cfg.get("extract") is not None else "float32"
    autocast = cfg["extract"]["autocast"] if cfg.get("extract") is not None else None
    sites = resolve_sites(model, None)
    sources = _main_source(ctx, model, sites)
    outputs, fps, info = [], {}, []
    # a seed other than the model's own, so that a model built from a config is not its own random copy
    rand_seed = max(cfg["seed"], model_spec(cfg)[2]) + 1
    rand = random_init_copy(model, seed=rand_seed) if cfg["probes"]["random_init"] else None
    # the sentences the main store lacks run with its attention kernel (eager where it holds attention
    # patterns), so that its rows and theirs come from one forward and can share a derived store
    forward = sources[0].manifest["components"].get("forward", {}) if sources else {}
    eager = forward.get("attn_implementation") == "eager"
    made = {}
    for label, m, src in (("tasks", model, sources), ("random", rand, [])):
        if m is None:
            continue

        # the configured interventions act on the experiment's model, not on its random-weights copy
        ivs = config_interventions(cfg) if m is model else []

        def make(ow, m=m, label=label, src=src, ivs=ivs):
            with m.eager_attention(eager and bool(src)):
                return extract_tasks(m, tasks, ctx.path("stores", label), dtype=dtype, sources=src,
                                     autocast=autocast, interventions=ivs, progress=ctx.progress, overwrite=ow)

        made[label] = fresh_store(ctx, make)
        outputs.append(f"stores/{label}")
    for i, (group, store) in enumerate(made["tasks"]):
        name = f"tasks/{store.path.name}"
        fps[name] = store.fingerprint
        entry = {"tasks": [t.name for t in group], "store": name, "examples": store.n_examples}
        if "random" in made:
            rstore = made["random"][i][1]
            rname = f"random/{rstore.path.name}"
            fps[rname] = rstore.fingerprint
            entry["random_store"] = rname
        info.append(entry)
    return {"outputs": outputs, "fingerprints": fps,
            "info": {"groups": info, "random_init_seed": rand_seed if rand is not None else None,
                     "derived_from_main": bool(sources)}}


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
    out = outputs(ctx)
    tables = probe_outputs(results, out, controls=pc["controls"])
    best = tables["probe_best"]
    return {"outputs": out.written, "info": {"best": best[["task", "probe", "layer", "accuracy"]].to_dict("records")}}


def stage_attention(ctx) -> dict:
    """Head statistics, [CLS]/[SEP] mass by layer, one sentence's heatmaps and its rollout map."""
    ac = ctx.cfg["attention"]
    store = ActivationStore.open(ctx.run_dir / "stores" / "main")
    suite = AttentionSuite(store, load_base(ctx).tokenizer)
    out = outputs(ctx)
    i = int(ac["example"])
    try:
        tables = attention_outputs(suite, out, example=i, layers=ac["heatmap_layers"], progress=ctx.progress)
    except ValueError as exc:
        raise ValueError(f"attention (example {i}, heatmap_layers {ac['heatmap_layers']}): {exc}") from exc
    sdf, mass = tables["attention_heads"], tables["special_mass"]
    top = sdf[sdf["metric"] == "sep"].nlargest(3, "value")[["layer", "block", "head", "value"]]
    return {"outputs": out.written, "info": {"example": " ".join(store.words(i)),
                                             "top_sep_heads": top.to_dict("records"),
                                             "special_mass": mass.round(4).to_dict("records")}}
