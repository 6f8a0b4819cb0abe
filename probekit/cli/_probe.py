"""``probekit probe``: run the probe suite over stores extracted for tasks."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from probekit.cli._errors import check_output, split_list
from probekit.cli._main import main

logger = logging.getLogger(__name__)


def _store_key(spec: str):
    """``DIR``, ``MODEL=DIR`` or ``MODEL:VARIANT=DIR``."""
    if "=" in spec:
        label, path = spec.split("=", 1)
        key = tuple(label.split(":", 1)) if ":" in label else label
        return key, path
    return None, spec


def _extract_for_tasks(models: tuple[str, ...], tasks: list, root: Path, random_init: bool,
                       sources: tuple[str, ...] = (), autocast: str | None = None,
                       device: str | None = None, dtype: str | None = None,
                       overwrite: bool = False) -> list[tuple[list, dict]]:
    """Extract (or reuse) the task stores of each model; one ``(tasks, {key: store})`` per group of tasks.

    ``sources``: token-level stores of the (single) model, whose sentences are pooled rather than run again.
    """
    from probekit.probes import extract_tasks, random_init_copy
    from probekit.variants import load_model

    by_group: dict[tuple[str, ...], tuple[list, dict]] = {}
    for spec in models:
        model = load_model(spec, device=device)
        name = model.name or spec
        todo = [(name, model)]
        if random_init:
            todo.append(((name, "random-init"), random_init_copy(model, seed=0)))
        for key, m in todo:
            label = key if isinstance(key, str) else f"{key[0]}-{key[1]}"
            click.echo(f"extracting task stores of {label}", err=True)
            src = sources if m is model else ()
            for members, store in extract_tasks(m, tasks, root / label.replace("/", "_"), sources=src,
                                                progress=None, autocast=autocast, dtype=dtype, overwrite=overwrite):
                names = tuple(t.name for t in members)
                by_group.setdefault(names, (members, {}))[1][key] = store
    return list(by_group.values())


@main.command("probe")
@click.option("--store", "stores", multiple=True,
              help="Store directory or URL (s3://..., from extract_task), or MODEL=DIR / MODEL:VARIANT=DIR. "
                   "Repeatable; the first is the reference of model comparisons.")
@click.option("--model", "models", multiple=True,
              help="Instead of --store: a model (alias, folder or hub name) to extract the task stores from, "
                   "into OUT/stores/ (reused on re-run). Repeatable.")
@click.option("--from-store", "from_stores", multiple=True, type=click.Path(file_okay=False),
              help="With --model: a token-level store of that model (e.g. from 'probekit extract'); the task "
                   "sentences it holds are pooled from its token rows instead of running the model again. "
                   "Repeatable.")
@click.option("--random-init", is_flag=True,
              help="With --model: also probe a randomly initialised copy of each model (the random-weights baseline).")
@click.option("--task", "tasks", multiple=True, required=True, help="Task names (comma-separated; repeatable).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--source", type=click.Choice(["ud", "rt"]), default="ud", show_default=True)
@click.option("--ud-path", type=click.Path(), default=None, help="UD folder or .conllu file (source ud).")
@click.option("--limit", type=int, default=None, help="Sentences per source file, as used for the store.")
@click.option("--task-seed", type=int, default=0, show_default=True, help="Seed the tasks were built with.")
@click.option("--probe", "probes", multiple=True, type=click.Choice(["linear", "mlp"]), default=("linear",),
              show_default=True)
@click.option("--seeds", default="0", show_default=True, help="Comma-separated probe seeds.")
@click.option("--n-boot", default=1000, show_default=True, help="Bootstrap replicates.")
@click.option("--controls/--no-controls", default=True, show_default=True, help="Run control tasks.")
@click.option("--autocast", type=click.Choice(["bf16"]), default=None,
              help="With --model: run the forward passes under bf16 autocast (recorded in the stores' fingerprints; "
                   "faster only where the CPU or GPU has native bf16).")
@click.option("--device", default=None, help="With --model: where the model runs (e.g. cuda); default: the CPU.")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default=None,
              help="With --model: of the task stores [default: float16, or float32 where a value is beyond "
                   "float16's range].")
@click.option("--overwrite", is_flag=True,
              help="With --model: replace task stores under OUT/stores made with other settings (probekit's own).")
def probe_cmd(stores: tuple[str, ...], models: tuple[str, ...], from_stores: tuple[str, ...], random_init: bool,
              tasks: tuple[str, ...], out: str,
              source: str, ud_path: str | None, limit: int | None, task_seed: int, probes: tuple[str, ...],
              seeds: str, n_boot: int, controls: bool, autocast: str | None, device: str | None,
              dtype: str | None, overwrite: bool) -> None:
    """Probe stored activations for tasks; write the probe tables, plots and summaries/probes.md.

    The tables and figures are the pipeline's own (the same functions write
    them): tables/probes.csv (tidy rows), tables/probe_summary.csv (per task,
    probe and layer), tables/expected_layer.csv, tables/probe_best.csv (the
    best layer of each task, also as summaries/probes.md) and figures/probes__*.png,
    so 'probekit report OUT' renders them. --task-seed also seeds the control
    tasks, as the pipeline's seed does.

    Either give --model, and the stores are extracted for the tasks (one per
    group of tasks sharing their sentences, under OUT/stores/, reused on
    re-run; each sentence runs through the model once, and with --from-store
    not at all when that store of the model holds it), or give --store: each
    store must then hold exactly the task's examples, built with
    probekit.probes.extract_task (same --source, --ud-path, --limit,
    --task-seed).

    \b
    Examples:
      probekit probe --model minilm-l6 --task upos,deprel --limit 500 --out res --random-init
      probekit probe --model minilm-l6 --from-store acts --task upos --limit 500 --out res
      probekit probe --model minilm-l6 --source rt --task sentiment,sentlen,bigram_shift --limit 2000 --out res
      probekit probe --store runs/upos-minilm --task upos,deprel --ud-path data/ud_en_ewt --limit 500 --out res
      probekit probe --store minilm=runs/a --store minilm:random-init=runs/b --task upos --out res --seeds 0,1,2
    """
    check_output(out)
    from probekit.data import build_task
    from probekit.pipeline import probe_outputs
    from probekit.probes import ProbeSuite
    from probekit.runfolder import Outputs
    from probekit.store import ActivationStore

    if bool(stores) == bool(models):
        raise click.UsageError("give either --store (stores extracted for the tasks) or --model (extract them now)")
    if random_init and not models:
        raise click.UsageError("--random-init needs --model (it extracts a store from a random copy of the model)")
    given = [f for f, v in (("--autocast", autocast), ("--device", device), ("--dtype", dtype),
                            ("--overwrite", overwrite)) if v]
    if given and not models:
        raise click.UsageError(f"{given[0]} needs --model (it sets how the stores are extracted)")
    if from_stores and len(models) != 1:
        raise click.UsageError("--from-store needs exactly one --model (the model its token rows come from)")
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        task_objs = [build_task(t, source, path=ud_path, limit=limit, seed=task_seed) for t in split_list(tasks)]
        # every suite setting (--n-boot, --seeds) is checked now, before any store is extracted or probe trained
        ProbeSuite(task_objs, list(probes), seed_list, controls=controls, n_boot=n_boot, control_seed=task_seed)
        if models:
            groups = _extract_for_tasks(models, task_objs, Path(out) / "stores", random_init, from_stores,
                                        autocast, device, dtype, overwrite)
        else:
            opened = {}
            for spec in stores:
                key, path = _store_key(spec)
                st = ActivationStore.open(path)
                opened[key if key is not None else (str((st.manifest.get("model") or {}).get("name") or
                                                        Path(path).name))] = st
            groups = [(task_objs, opened)]
        results = None
        for group_tasks, opened in groups:
            suite = ProbeSuite(group_tasks, list(probes), seed_list, controls=controls, n_boot=n_boot,
                               control_seed=task_seed, device=device)
            part = suite.run(opened)
            results = part if results is None else results + part
    except (ValueError, LookupError, FileNotFoundError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    written = Outputs(out)
    probe_outputs(results, written, controls=controls)
    click.echo((Path(out) / "summaries" / "probes.md").read_text(encoding="utf-8"))
    click.echo(f"wrote {', '.join(written.written)} to {out}")
