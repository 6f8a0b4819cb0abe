"""Build a small real run folder (the shared run-folder contract) from real library outputs.

MiniLM-L6 on Rotten Tomatoes sentences: a probe store and a ProbeSuite run,
head statistics with plots, a dynamic-int8 variant (its accuracy, size and
latency measured here), a base-vs-int8 comparison and probe attributions.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from probekit.variants import state_dict_bytes  # noqa: E402

N_SENTENCES = 120
SEEDS = (0, 1)
N_BOOT = 100
ATTN_EXAMPLES = 24


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_real_run(model, out: Path) -> Path:
    """Write ``out`` as a run folder; returns ``out``."""
    import captum
    import sklearn
    import transformers
    import yaml

    import probekit
    from probekit import site_layer
    from probekit.attention import AttentionSuite
    from probekit.attribution import Attributor, agreement
    from probekit.compare import attention_deltas, compare
    from probekit.data import build_task
    from probekit.plots import (
        attention_heatmap,
        attribution_html,
        layer_head_grid,
        pattern_frame,
        probe_curves,
        selectivity_curves,
        similarity_heatmap,
    )
    from probekit.probes import LinearProbe, ProbeSuite, extract_task
    from probekit.probes._task_store import task_inputs
    from probekit.report import expected_layers, probe_summary
    from probekit.variants import measure_latency, quantize

    out = Path(out)
    for sub in ("stores", "tables", "figures", "attributions"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    tables, figures = out / "tables", out / "figures"
    config = {"model": "minilm-l6", "data": {"source": "rt", "task": "sentiment", "limit": N_SENTENCES},
              "probes": {"kind": "linear", "seeds": list(SEEDS), "n_boot": N_BOOT},
              "attention": {"examples": ATTN_EXAMPLES}, "variants": [{"quantize": "dynamic-int8"}]}
    timings: dict = {}
    started = datetime.now(timezone.utc)
    layers = range(model.n_layers)
    resid = ["emb"] + [f"L{i}.resid" for i in layers]
    attn = [f"L{i}.attn.pattern" for i in layers]

    t0 = time.perf_counter()
    task = build_task("sentiment", "rt", limit=N_SENTENCES, seed=0)
    base = extract_task(model, task, out / "stores" / "rt-base", sites=resid, progress=False)
    texts = list(task.dataset.texts)[:ATTN_EXAMPLES]
    abase = probekit.extract(model, texts, attn, out / "stores" / "attn-base", dtype="float32", progress=False)
    timings["extract"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    q = quantize(model, method="dynamic-int8")  # a ModelVariant; q.model is its HookedModel
    qstore = extract_task(q.model, task, out / "stores" / "rt-int8", sites=resid, progress=False)
    aq = probekit.extract(q.model, texts, attn, out / "stores" / "attn-int8", dtype="float32", progress=False)
    timings["variants"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    suite = ProbeSuite(task, seeds=SEEDS, n_boot=N_BOOT)
    res = suite.run({"minilm-l6": base, ("minilm-l6", "dynamic-int8"): qstore})
    probes = res.to_frame()
    probes.to_csv(tables / "probes.csv", index=False)
    base_rows = probes[probes["variant"].isna()]
    probe_summary(base_rows).to_csv(tables / "probe_summary.csv", index=False)
    exp = expected_layers(base_rows)
    exp[[c for c in ("task", "expected_layer", "center_of_gravity") if c in exp.columns]].to_csv(
        tables / "expected_layer.csv", index=False)
    _save(probe_curves(probes), figures / "probes__curves.png")
    _save(selectivity_curves(base_rows), figures / "probes__selectivity.png")
    timings["probes"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    asuite = AttentionSuite(abase, model.tokenizer)
    stats = asuite.head_statistics(progress=False)
    sdf = stats.to_frame()
    sdf.to_csv(tables / "attention_heads.csv", index=False)
    asuite.special_mass_by_layer(stats).to_csv(tables / "special_mass.csv", index=False)
    _save(layer_head_grid(sdf[sdf["metric"] == "sep"], title="attention mass on [SEP]"),
          figures / "attention__grid_sep.png")
    tokens = model.tokenizer.convert_ids_to_tokens(abase.input_ids(0).tolist())
    last = model.n_layers - 1
    pattern = torch.from_numpy(np.asarray(abase[f"L{last}.attn.pattern"].example(0), np.float32))
    _save(attention_heatmap(pattern_frame(pattern, tokens),
                            title=f"example 0, layer {last + 1} (L{last}.attn.pattern), mean over heads"),
          figures / f"attention__heatmap_L{last}.png")
    roll = asuite.rollout(0)
    _save(attention_heatmap(pattern_frame(torch.as_tensor(roll[-1]), tokens),
                            title=f"example 0, attention rollout through layer {last + 1}"),
          figures / "attention__rollout.png")
    timings["attention"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    inp = task_inputs(base, task, [f"L{last}.resid"])
    lp = LinearProbe(random_state=0).fit(inp.X[0][inp.train], inp.y[inp.train])
    w = torch.tensor(lp.coef_, dtype=torch.float32)
    b = torch.tensor(lp.intercept_, dtype=torch.float32)

    def head(acts, mask):  # the sentence probe on mean-pooled last-layer states
        m = mask[..., None].to(acts.dtype)
        return ((acts * m).sum(1) / m.sum(1)) @ w.T + b

    test_idx = np.flatnonzero(np.asarray(task.dataset.splits) == "test")
    test_idx = sorted(test_idx, key=lambda i: len(task.dataset.words[i]))[:2]  # the two shortest test sentences
    examples = [task.dataset.words[i] for i in test_idx]
    by_method = {m: Attributor(model, m, probe=head, probe_site=f"L{last}.resid").attribute(examples, n_steps=16)
                 for m in ("integrated_gradients", "saliency", "input_x_gradient")}
    frames = []
    for k, i in enumerate(test_idx):
        atts = {m: r[k] for m, r in by_method.items()}
        first = next(iter(atts.values()))
        gold = task.dataset.labels[i]
        title = f"test sentence {i}: gold {gold}, probe explains class {lp.classes_[first.target]}"
        frag = attribution_html(first.tokens, {m: a.scores for m, a in atts.items()}, title=title)
        (out / "attributions" / f"example_{i}.html").write_text(frag, encoding="utf-8")
        for a in atts.values():
            frames.append(a.to_results(example=int(i), task="sentiment", model="minilm-l6").to_frame())
    pd.concat(frames, ignore_index=True).to_csv(tables / "attributions.csv", index=False)
    ag = agreement({m: [a.scores for a in r] for m, r in by_method.items()})
    ag.groupby(["a", "b"], as_index=False)["spearman"].mean().to_csv(tables / "attribution_agreement.csv",
                                                                     index=False)
    timings["attributions"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    enc = model.tokenizer(list(task.dataset.texts)[:32], padding=True, return_tensors="pt")
    one = {k: v[:1] for k, v in enc.items()}
    n_params = sum(p.numel() for p in model.model.parameters())
    acc = probes[(probes["metric"] == "accuracy_mean") & (probes["site"] == f"L{last}.resid")
                 & (probes["task"] == "sentiment") & (probes["probe"] == "linear")]
    f1 = probes[(probes["metric"] == "macro_f1_mean") & (probes["site"] == f"L{last}.resid")
                & (probes["task"] == "sentiment") & (probes["probe"] == "linear")]
    rows = []
    for name, mod, sel in (("base", model.model, acc["variant"].isna()),
                           ("dynamic-int8", q.model.model, acc["variant"] == "dynamic-int8")):
        sel_f1 = f1["variant"].isna() if name == "base" else f1["variant"] == "dynamic-int8"
        with torch.inference_mode():
            lat = measure_latency(lambda mod=mod: mod(**one), repeats=5, warmup=1)
            t32 = measure_latency(lambda mod=mod: mod(**enc), repeats=2, warmup=1)
        rows.append({"variant": name, "accuracy": float(acc[sel]["value"].iloc[0]),
                     "macro_f1": float(f1[sel_f1]["value"].iloc[0]), "params": n_params,
                     "size_mb": state_dict_bytes(mod) / 1e6, "latency_ms_b1": lat, "throughput_b32": 32 / (t32 / 1000),
                     "recipe": "pretrained" if name == "base" else json.dumps(q.recipe.to_dict())})
    pd.DataFrame(rows).to_csv(tables / "variants.csv", index=False)
    timings["variant_metrics"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cmp = compare(base, qstore, attention=False, progress=False)
    crow, drow = [], []
    for measure, mat in cmp.matrices.items():  # the pipeline's layout: A's site and layer, B's site beside
        for a in mat.index:
            for b_ in mat.columns:
                crow.append({"variant": "dynamic-int8", "measure": measure, "site": a, "layer": site_layer(a),
                             "site_b": b_, "layer_b": site_layer(b_), "value": float(mat.loc[a, b_])})
        for a, b_ in cmp.layer_map.items():
            drow.append({"variant": "dynamic-int8", "measure": measure, "site": a, "layer": site_layer(a),
                         "site_b": b_, "value": float(mat.loc[a, b_])})
    pd.DataFrame(crow).to_csv(tables / "compare.csv", index=False)
    pd.DataFrame(drow).to_csv(tables / "compare_diagonal.csv", index=False)
    first_measure = next(iter(cmp.matrices))
    mat = cmp.matrices[first_measure]
    _save(similarity_heatmap(mat, title=f"{first_measure}: base (rows) vs dynamic-int8 (columns)"),
          figures / "compare__similarity.png")
    key = ["task", "site", "probe"]
    am = probes[(probes["metric"] == "accuracy_mean") & (probes["probe"] == "linear")]
    merged = am[am["variant"].isna()][key + ["layer", "value"]].merge(
        am[am["variant"] == "dynamic-int8"][key + ["value"]], on=key, suffixes=("_base", "_variant"))
    merged = merged.rename(columns={"value_base": "accuracy_base", "value_variant": "accuracy"})
    merged.insert(0, "variant", "dynamic-int8")
    merged.insert(4, "site_b", merged["site"])
    merged["delta"] = merged["accuracy"] - merged["accuracy_base"]
    merged.to_csv(tables / "probe_deltas.csv", index=False)
    ad = attention_deltas(abase, aq, progress=False).to_frame()
    ad["variant"] = "dynamic-int8"
    ad.to_csv(tables / "attention_deltas.csv", index=False)
    timings["compare"] = time.perf_counter() - t0

    run = {"name": "report-test", "config": config, "probekit_version": probekit.__version__,
           "versions": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__, "captum": captum.__version__,
                        "sklearn": sklearn.__version__, "pandas": pd.__version__, "numpy": np.__version__},
           "seeds": {"probes": list(SEEDS), "task": 0},
           "fingerprints": {p.name: probekit.ActivationStore.open(p).fingerprint
                            for p in sorted((out / "stores").iterdir())},
           "timings": timings, "started": started.isoformat(timespec="seconds"),
           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "cached": {k: False for k in timings},
           "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                       "python": sys.version.split()[0]}}
    (out / "run.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out
