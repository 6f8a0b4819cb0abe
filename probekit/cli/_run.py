"""``probekit run EXPERIMENT.yaml``: run a staged, cached experiment from one config file."""

from __future__ import annotations

import time

import click

from probekit.cli._errors import check_output
from probekit.cli._main import main


def echo_event(event: str, stage: str, info: dict) -> None:
    """Print a stage's start, completion or reuse."""
    if event == "start":
        click.echo(f"[{time.strftime('%H:%M:%S')}] {stage} ...")
    elif event == "done":
        click.echo(f"[{time.strftime('%H:%M:%S')}] {stage} done in {info.get('seconds', 0):.1f} s")
    else:
        click.echo(f"[{time.strftime('%H:%M:%S')}] {stage}: cached")


def print_timings(info: dict, out) -> None:
    """The per-stage timings table printed at the end of a run."""
    click.echo("\nstage timings (s): wall, and CPU time of this process (all threads)")
    cpu = info.get("cpu_seconds", {})
    for stage, sec in info["timings"].items():
        note = " (cached)" if info["cached"].get(stage) else ""
        click.echo(f"  {stage:<12} {sec:8.1f} {cpu.get(stage, float('nan')):8.1f}{note}")
    click.echo(f"  {'total':<12} {info['total_seconds']:8.1f} {info.get('total_cpu_seconds', float('nan')):8.1f}")
    click.echo(f"run folder: {out}")


def run_config(cfg: dict, out: str, force: bool, progress: bool = True) -> dict:
    """Run ``cfg`` into ``out`` with stage messages and the timings table; errors become click errors."""
    from probekit.pipeline import ConfigError, run_experiment

    try:
        info = run_experiment(cfg, out, force=force, progress=progress, on_event=echo_event)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    print_timings(info, out)
    return info


@main.command("run")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder (default: runs/<name from the config>).")
@click.option("--force", is_flag=True, help="Re-run every stage, ignoring cached results.")
@click.option("--check", is_flag=True, help="Only validate the config and list the stages it runs.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def run_cmd(experiment: str, out: str | None, force: bool, check: bool, no_progress: bool) -> None:
    """Run the experiment described by EXPERIMENT (YAML): stages, cached, resumable.

    The config names the model, data, tasks, sites, probes, seeds, variants
    and outputs; it is validated before anything runs (errors name the key
    and its line). A second run reuses every stage whose inputs did not
    change; an interrupted run resumes from the last completed stage.

    \b
    Examples:
      probekit run examples/demo.yaml              # what `probekit demo` runs
      probekit run examples/ud_ewt_probes.yaml --out runs/ud
      probekit run my.yaml --check                 # validate and list stages
    """
    from probekit.pipeline import ConfigError, load_config, plan

    try:
        cfg = load_config(experiment)
    except (ConfigError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    if check:
        click.echo(f"{experiment}: valid; stages: {', '.join(s.name for s in plan(cfg))}")
        return
    out = out or f"runs/{cfg['name']}"
    check_output(out)
    run_config(cfg, out, force, progress=not no_progress)
