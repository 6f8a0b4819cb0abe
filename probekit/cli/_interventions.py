"""``probekit erase`` (fit and save a concept eraser) and ``probekit amnesic`` (amnesic probing into a run folder)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from probekit.cli._errors import check_output, split_list
from probekit.cli._main import main


def _task(name: str, source: str, ud_path: str | None, limit: int | None, seed: int):
    from probekit.data import build_task

    return build_task(name, source, path=ud_path, limit=limit, seed=seed)


_TASK_OPTIONS = [
    click.option("--model", "model_spec", default="minilm-l6", show_default=True,
                 help="Alias, model folder or hub name."),
    click.option("--task", "task_name", required=True, help="A word- or sentence-level task (upos, deprel, "
                                                            "sentiment, ...; see 'probekit tasks list')."),
    click.option("--source", type=click.Choice(["ud", "rt"]), default="ud", show_default=True,
                 help="Gold UD English EWT or Rotten Tomatoes (silver spaCy labels)."),
    click.option("--ud-path", default=None, help="UD English EWT folder (default $PROBEKIT_UD_PATH or the fetched "
                                                 "copy)."),
    click.option("--limit", type=int, default=None, help="Use only N sentences (of each UD file; of RT)."),
    click.option("--seed", type=int, default=0, show_default=True),
]


def _with(options):
    def deco(f):
        for opt in reversed(options):
            f = opt(f)
        return f
    return deco


@main.command("erase")
@_with(_TASK_OPTIONS)
@click.option("--site", required=True, help="The site to erase the concept from, e.g. L3.resid.")
@click.option("--method", type=click.Choice(["leace", "inlp"]), default="leace", show_default=True)
@click.option("--store", "store_dir", default=None, type=click.Path(file_okay=False),
              help="Store of the task's examples (default: OUT-store beside OUT, extracted and reused).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Eraser folder (safetensors + JSON).")
@click.option("--overwrite", is_flag=True,
              help="Replace an eraser already saved at OUT, and a task store of other inputs at --store.")
def erase_cmd(model_spec, task_name, source, ud_path, limit, seed, site, method, store_dir, out, overwrite) -> None:
    """Fit a concept eraser (LEACE or INLP) on a task's training rows at one site and save it.

    Prints the eraser's rank and a linear probe's test accuracy before and
    after erasure. The eraser is an intervention: load it with
    probekit.interventions.Eraser.load(OUT) and pass it in interventions=[...].

    \b
    Examples:
      probekit erase --task upos --site L3.resid --out runs/erasers/upos-L3
      probekit erase --model smollm2-135m --task deprel --site L10.resid --method inlp --out runs/erasers/dep
    """
    check_output(out)
    from probekit.pipeline import fit_eraser
    from probekit.variants import load_model  # probekit.load_model: saved variants too

    out_p = Path(out)
    if (out_p / "eraser.json").exists() and not overwrite:
        raise click.ClickException(f"{out} already holds an eraser; pass --overwrite to replace it")
    model = load_model(model_spec)
    task = _task(task_name, source, ud_path, limit, seed)
    store_p = Path(store_dir) if store_dir else out_p.with_name(out_p.name + "-store")
    try:
        eraser, info = fit_eraser(model, task, site, method, store_p, seed=seed, overwrite=overwrite)
    except (ValueError, LookupError) as exc:
        raise click.ClickException(str(exc)) from exc
    eraser.save(out_p, overwrite=overwrite)
    click.echo(f"{out}: {method} eraser of {task_name} at {info['site']}, rank {info['rank']} of {info['d']}; linear "
               f"probe {info['split']} accuracy {100 * info['accuracy_before']:.1f}% -> "
               f"{100 * info['accuracy_after']:.1f}% (fingerprint {info['fingerprint'][:12]})")


@main.command("amnesic")
@_with(_TASK_OPTIONS)
@click.option("--sites", default=None, help="Comma-separated sites (default: every residual site).")
@click.option("--behaviour", type=click.Choice(["lm", "classifier"]), default="lm", show_default=True,
              help="lm: next-token loss/accuracy of a causal LM on the task's test sentences; classifier: a "
                   "sequence classifier's accuracy on the task's test sentences (sentence-level task labels).")
@click.option("--method", type=click.Choice(["leace", "inlp"]), default="leace", show_default=True)
@click.option("--held-out", type=int, default=200, show_default=True, help="Test sentences the behaviour runs on.")
@click.option("--n-random", type=int, default=1, show_default=True, help="Random same-rank erasures per site.")
@click.option("--n-boot", type=int, default=1000, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (report inside).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def amnesic_cmd(model_spec, task_name, source, ud_path, limit, seed, sites, behaviour, method, held_out, n_random,
                n_boot, out, progress) -> None:
    """Amnesic probing: erase a property at each layer, measure the behaviour change against random erasure.

    Writes, with the function the pipeline's amnesic stage uses,
    OUT/tables/amnesic.csv (tidy rows), OUT/tables/amnesic_summary.csv (one
    row per site), OUT/figures/amnesic__by_layer.png,
    OUT/summaries/amnesic.md, OUT/run.json and the report (OUT/report.html,
    report.md) with an "Amnesic probing" section.

    \b
    Examples:
      probekit amnesic --model smollm2-135m --task upos --sites L5.resid,L15.resid,L25.resid --out runs/amnesic
      probekit amnesic --model runs/ft --task sentiment --source rt --behaviour classifier --out runs/amnesic-rt
    """
    check_output(out)
    if held_out < 1 or n_random < 1 or n_boot < 1:
        raise click.ClickException("--held-out, --n-random and --n-boot must be >= 1")
    from probekit.pipeline import amnesic_analysis, amnesic_outputs
    from probekit.report import write_report
    from probekit.runfolder import RUN_JSON, Outputs
    from probekit.variants import is_variant_folder, load_model  # probekit.load_model: saved variants too

    t0 = time.time()
    # a saved variant fixes its own head; otherwise a language model needs its LM head
    head = "causal-lm" if behaviour == "lm" and not is_variant_folder(model_spec) else None
    model = load_model(model_spec, head=head)
    task = _task(task_name, source, ud_path, limit, seed)
    out_p = Path(out)
    try:
        res, store, n_texts = amnesic_analysis(model, task, out_p / "store", sites=split_list(sites) or None,
                                               behaviour=behaviour, method=method, held_out=held_out,
                                               n_random=n_random, seed=seed, n_boot=n_boot, progress=progress)
    except (ValueError, LookupError) as exc:
        raise click.ClickException(str(exc)) from exc
    table = amnesic_outputs(res, Outputs(out_p))["amnesic_summary"]
    run = {"name": out_p.name, "command": "amnesic", "model": model_spec, "task": task_name, "source": source,
           "behaviour": behaviour, "method": method, "seed": seed, "n_held_out": n_texts,
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(time.time() - t0, 1),
           "stores": {"task": store.fingerprint}}
    (out_p / RUN_JSON).write_text(json.dumps(run, indent=1) + "\n")
    path = write_report(out_p)
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    click.echo(f"wrote {out_p / 'tables' / 'amnesic.csv'} and {path}")
