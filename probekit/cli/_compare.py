"""``probekit compare``: compare two stores (a model and a variant) layer by layer."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from probekit.cli._errors import check_output, split_list
from probekit.cli._main import main

logger = logging.getLogger(__name__)


def _parse_layer_map(spec: str) -> dict[str, str]:
    out = {}
    for item in split_list((spec,)):
        if "=" not in item:
            raise click.BadParameter(f"layer map entries look like SITE_A=SITE_B (e.g. L1.resid=L0.resid), "
                                     f"got {item!r}", param_hint="--layer-map")
        a, b = (x.strip() for x in item.split("=", 1))
        out[a] = b
    if not out:
        raise click.BadParameter("empty layer map", param_hint="--layer-map")
    return out


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
    return probe_deltas(suites[0], suites[1], layer_map=lmap, n_boot=n_boot, seed=seed)


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

    Writes what the compare stage of 'probekit run' writes, with the same
    function, so 'probekit report OUT' renders it: tables/compare.csv (every
    matrix cell), tables/compare_diagonal.csv (aligned layers),
    tables/compare_best.csv (most similar layer of A for each layer of B),
    tables/attention_deltas.csv (per head, when both stores hold attention),
    with --probes tables/probe_deltas.csv, figures/compare__*.png and
    summaries/compare.md (also printed). B is named by its store folder.

    \b
    Examples:
      probekit compare runs/rt-minilm runs/rt-student --out cmp
      probekit compare runs/a runs/b --measure linear_cka,svcca,pwcca --level token --out cmp
      probekit compare runs/a runs/b --layer-map 'emb=emb,L1.resid=L0.resid,L3.resid=L1.resid' --out cmp
      probekit compare runs/upos-a runs/upos-b --probes upos --ud-path data/ud_en_ewt --limit 500 --out cmp
    """
    check_output(out)
    from probekit.compare import compare, layer_map_for
    from probekit.pipeline import compare_outputs
    from probekit.runfolder import Outputs
    from probekit.store import ActivationStore

    try:
        sa, sb = ActivationStore.open(store_a), ActivationStore.open(store_b)
        if layer_map == "auto":
            lmap = layer_map_for(sa, sb)
            map_source = "from the stores' variant records" if any(
                (s.manifest.get("components") or {}).get("recipe") for s in (sa, sb)) else "same-named sites"
        else:
            lmap, map_source = _parse_layer_map(layer_map), "given"
        cmp = compare(sa, sb, layer_map=lmap, level=level, measures=split_list(measures), max_rows=max_rows,
                      seed=seed, attention=attention, progress=False)
        probe_res = None
        tasks = split_list(probe_tasks)
        if tasks:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
            probe_res = _probe_deltas(sa, sb, tasks, lmap, source, ud_path, limit, task_seed, probe, seed_list,
                                      n_boot, seed)
    except (ValueError, LookupError, FileNotFoundError, TypeError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    name = Path(store_b).resolve().name
    written = Outputs(out)
    compare_outputs({name: cmp}, written, probe_deltas={name: probe_res} if probe_res is not None else None)
    click.echo(f"A: {sa.path} ({sa.n_examples} examples); B: {sb.path} ({sb.n_examples} examples); "
               f"layer map {map_source}")
    click.echo((Path(out) / "summaries" / "compare.md").read_text(encoding="utf-8"))
    click.echo(f"wrote {', '.join(written.written)} to {out}")
