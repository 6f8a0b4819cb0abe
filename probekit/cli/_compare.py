"""``probekit compare``: compare two stores (a model and a variant) layer by layer."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from probekit.cli._errors import check_output
from probekit.cli._main import main
from probekit.cli._probe import _split

logger = logging.getLogger(__name__)


def _parse_layer_map(spec: str) -> dict[str, str]:
    out = {}
    for item in _split((spec,)):
        if "=" not in item:
            raise click.BadParameter(f"layer map entries look like SITE_A=SITE_B (e.g. L1.resid=L0.resid), "
                                     f"got {item!r}", param_hint="--layer-map")
        a, b = (x.strip() for x in item.split("=", 1))
        out[a] = b
    if not out:
        raise click.BadParameter("empty layer map", param_hint="--layer-map")
    return out


def _summary(store_a, store_b, cmp, map_source: str, probe_table) -> str:
    import pandas as pd

    from probekit.pipeline import markdown_table as _markdown

    name = lambda s: (s.manifest.get("model") or {}).get("name") or s.path.name
    lines = [f"# Comparison: {name(store_a)} (A) vs {name(store_b)} (B)", "",
             f"- A: `{store_a.path}` ({store_a.n_examples} examples)",
             f"- B: `{store_b.path}` ({store_b.n_examples} examples)",
             f"- level: {cmp.level}; rows per measure: "
             + ", ".join(f"{m} {n:,}" for m, n in cmp.rows_used.items()),
             f"- layer map ({map_source}): " + ", ".join(f"{a} -> {b}" for a, b in cmp.layer_map.items()), "",
             "## Aligned layers", ""]
    diag = None
    for m in cmp.measures:
        d = cmp.diagonal(m).round(4)
        diag = d if diag is None else diag.merge(d, on=["site_a", "site_b"])
    lines.append(_markdown(diag))
    lines += ["## Most similar layer of A for each layer of B", "",
              "(`procrustes` is a distance: smallest wins; every other measure: largest.)", ""]
    best = []
    for m in cmp.measures:
        b = cmp.best_matches(m)
        best.append(b.assign(measure=m)[["measure", "site", "best", "value", "margin", "mapped", "correct"]]
                    .rename(columns={"site": "site_b", "best": "best_a", "mapped": "mapped_a"}).round(4))
    table = pd.concat(best, ignore_index=True)
    lines.append(_markdown(table))
    for m in cmp.measures:
        b = cmp.best_matches(m)
        mapped = b["mapped"].notna()
        lines.append(f"- {m}: {int(b.loc[mapped, 'correct'].sum())} of {int(mapped.sum())} mapped layers of B "
                     "have their mapped layer of A as the most similar one.")
    att = cmp.results.to_frame()
    att = att[att["metric"].isin(["attention_jsd_bits", "attention_corr"])]
    if not att.empty:
        per_layer = att.pivot_table(index="layer", columns="metric", values="value", aggfunc="mean").round(4)
        lines += ["", "## Attention deltas (mean over heads)", "", _markdown(per_layer.reset_index())]
    if probe_table is not None and not probe_table.empty:
        lines += ["", "## Probe deltas (B - A, seed mean, paired bootstrap over test examples)", "",
                  _markdown(probe_table)]
    return "\n".join(lines) + "\n"


def _probe_deltas(store_a, store_b, tasks, lmap, source, ud_path, limit, task_seed, probe, seeds, n_boot, seed):
    from probekit.compare import probe_deltas
    from probekit.data import build_task
    from probekit.probes import ProbeSuite

    task_objs = [build_task(t, source, path=ud_path, limit=limit, seed=task_seed) for t in tasks]
    suites = []
    for store in (store_a, store_b):
        suite = ProbeSuite(task_objs, [probe], seeds, controls=False, n_boot=n_boot)
        suite.run([store])
        suites.append(suite)
    res = probe_deltas(suites[0], suites[1], layer_map=lmap, n_boot=n_boot, seed=seed)
    df = res.to_frame()
    mean = df[df["metric"] == "delta_accuracy_mean"]
    keys = ["task", "site", "layer", "site_b"]
    acc = df[df["metric"].isin(["accuracy_a", "accuracy_b"])].pivot_table(
        index=keys, columns="metric", values="value").reset_index()
    acc.columns.name = None
    table = mean[keys + ["value", "ci_low", "ci_high"]].rename(columns={"value": "delta_accuracy"})
    table = acc.merge(table, on=keys).round(4)
    return res, table


@main.command("compare")
@click.argument("store_a", type=click.Path(exists=True, file_okay=False))
@click.argument("store_b", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--measure", "measures", multiple=True, default=("linear_cka",), show_default=True,
              help="Similarity measures (comma-separated; repeatable): linear_cka, procrustes (streamed, exact), "
                   "svcca, pwcca, rbf_cka, minibatch_cka (in memory, on at most --max-rows rows).")
@click.option("--level", type=click.Choice(["sentence", "token"]), default="sentence", show_default=True,
              help="Rows compared: one mean-pooled vector per example, or every token.")
@click.option("--layer-map", "layer_map", default="auto", show_default=True,
              help="'auto' (from the variant recipe / layer map recorded in the store manifests; same-named "
                   "sites when there is none) or explicit pairs SITE_A=SITE_B, comma-separated.")
@click.option("--max-rows", default=10000, show_default=True, help="Row cap of the in-memory measures.")
@click.option("--seed", default=0, show_default=True, help="Seed of the row subsample and bootstraps.")
@click.option("--attention/--no-attention", default=True, show_default=True,
              help="Also compare attention patterns stored in both stores (per head; a head-pruned "
                   "variant's surviving heads pair with the base heads they descend from).")
@click.option("--probes", "probe_tasks", multiple=True,
              help="Also write probe deltas (B - A) for these tasks (comma-separated); both stores must hold "
                   "the tasks' examples (see `probekit probe`).")
@click.option("--source", type=click.Choice(["ud", "rt"]), default="ud", show_default=True,
              help="Task data source (with --probes).")
@click.option("--ud-path", type=click.Path(), default=None, help="UD folder or .conllu file (with --probes).")
@click.option("--limit", type=int, default=None, help="Sentences per source file, as used for the stores.")
@click.option("--task-seed", type=int, default=0, show_default=True, help="Seed the tasks were built with.")
@click.option("--probe", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True)
@click.option("--seeds", default="0", show_default=True, help="Comma-separated probe seeds.")
@click.option("--n-boot", default=1000, show_default=True, help="Bootstrap replicates of the probe deltas.")
def compare_cmd(store_a: str, store_b: str, out: str, measures: tuple[str, ...], level: str, layer_map: str,
                max_rows: int, seed: int, attention: bool, probe_tasks: tuple[str, ...], source: str,
                ud_path: str | None, limit: int | None, task_seed: int, probe: str, seeds: str,
                n_boot: int) -> None:
    """Compare STORE_A (e.g. a base model) with STORE_B (e.g. its variant) on the same data.

    Writes compare.csv (tidy: aligned layers, every matrix cell, attention
    deltas), compare_diagonal.csv, summary.md, one heatmap PNG per measure,
    diagonal.png (aligned-layer curves) and, with --probes,
    probe_deltas.csv and probe_deltas.png.

    \b
    Examples:
      probekit compare runs/rt-minilm runs/rt-student --out cmp
      probekit compare runs/a runs/b --measure linear_cka,svcca,pwcca --level token --out cmp
      probekit compare runs/a runs/b --layer-map 'emb=emb,L1.resid=L0.resid,L3.resid=L1.resid' --out cmp
      probekit compare runs/upos-a runs/upos-b --probes upos --ud-path data/ud_en_ewt --limit 500 --out cmp
    """
    check_output(out)
    import matplotlib.pyplot as plt

    from probekit.compare import compare, layer_map_for
    from probekit.plots import diagonal_curves, probe_delta_heatmap, similarity_heatmap
    from probekit.store import ActivationStore

    try:
        sa, sb = ActivationStore.open(store_a), ActivationStore.open(store_b)
        if layer_map == "auto":
            lmap = layer_map_for(sa, sb)
            map_source = "from the stores' variant records" if any(
                (s.manifest.get("components") or {}).get("recipe") for s in (sa, sb)) else "same-named sites"
        else:
            lmap, map_source = _parse_layer_map(layer_map), "given"
        cmp = compare(sa, sb, layer_map=lmap, level=level, measures=_split(measures), max_rows=max_rows,
                      seed=seed, attention=attention, progress=False)
        probe_res = probe_table = None
        tasks = _split(probe_tasks)
        if tasks:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
            probe_res, probe_table = _probe_deltas(sa, sb, tasks, lmap, source, ud_path, limit, task_seed, probe,
                                                   seed_list, n_boot, seed)
    except (ValueError, LookupError, FileNotFoundError, TypeError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    cmp.to_results(matrix=True).to_csv(out_dir / "compare.csv")
    diag = cmp.results.to_frame()
    att = diag[diag["metric"].isin(["attention_jsd_bits", "attention_corr"])]
    diag[~diag.index.isin(att.index)].to_csv(out_dir / "compare_diagonal.csv", index=False)
    written += ["compare.csv", "compare_diagonal.csv"]
    if not att.empty:
        att.to_csv(out_dir / "attention_deltas.csv", index=False)
        written.append("attention_deltas.csv")
    for m, frame in cmp.matrices.items():
        vmax = max(1.0, float(frame.values.max())) if m == "procrustes" else 1.0
        fig = similarity_heatmap(frame, title=f"{m} ({level} level): A rows, B columns", vmax=vmax)
        fig.savefig(out_dir / f"heatmap_{m}.png", dpi=110)
        plt.close(fig)
        written.append(f"heatmap_{m}.png")
    fig, axes = plt.subplots(1, len(cmp.measures), figsize=(5.2 * len(cmp.measures), 3.6), squeeze=False)
    for ax, m in zip(axes[0], cmp.measures):
        diagonal_curves(diag, measure=m, ax=ax)
    fig.savefig(out_dir / "diagonal.png", dpi=110)
    plt.close(fig)
    written.append("diagonal.png")
    if probe_res is not None:
        probe_res.to_csv(out_dir / "probe_deltas.csv")
        fig = probe_delta_heatmap(probe_res.to_frame())
        fig.savefig(out_dir / "probe_deltas.png", dpi=110)
        plt.close(fig)
        written += ["probe_deltas.csv", "probe_deltas.png"]
    md = _summary(sa, sb, cmp, map_source, probe_table)
    (out_dir / "summary.md").write_text(md, encoding="utf-8")
    written.append("summary.md")
    click.echo(md)
    click.echo(f"wrote {', '.join(written)} to {out_dir}")
