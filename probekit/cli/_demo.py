"""``probekit demo``: the main job on the bundled default model and data, as a staged, cached pipeline."""

from __future__ import annotations

import click

from probekit.cli._errors import check_output
from probekit.cli._main import main


@main.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="runs/demo", show_default=True,
              help="Run folder.")
@click.option("--quick", is_flag=True, help="Less data, fewer tasks and seeds, a tiny fine-tune (under 3 minutes).")
@click.option("--full", is_flag=True, help="All the data (slow on a CPU).")
@click.option("--force", is_flag=True, help="Re-run every stage, ignoring cached results.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def demo(out: str, quick: bool, full: bool, force: bool, no_progress: bool) -> None:
    """Run the main job on MiniLM-L6 and Rotten Tomatoes sentences (offline).

    Stages: extract the residual stream and attention patterns; probe suite
    (sentiment, SentLen, BigramShift, Tense, SubjNum, UPOS, dependency label,
    with control tasks, intervals, majority / embedding-layer / random-weights
    baselines and the expected layer); attention suite; fine-tune for
    sentiment; magnitude-prune, head-prune, int8-quantize and distil it;
    attributions; compare each variant with the original layer by layer;
    report. The config is examples/demo.yaml (`probekit run examples/demo.yaml`
    runs the same). A second run reuses every cached stage.

    \b
    Examples:
      probekit demo                      # ~3 minutes on 2 idle CPU cores, writes runs/demo/
      probekit demo --quick --out runs/q # under 3 minutes
      probekit demo --force              # recompute everything
    """
    check_output(out)
    from probekit.cli._run import run_config
    from probekit.pipeline import DEMO_CONFIG, FULL_OVERRIDES, QUICK_OVERRIDES, merge

    if quick and full:
        raise click.UsageError("--quick and --full exclude each other")
    cfg = merge(DEMO_CONFIG, QUICK_OVERRIDES) if quick else merge(DEMO_CONFIG, FULL_OVERRIDES) if full else DEMO_CONFIG
    if quick:
        cfg["name"] = "demo-quick"
    elif full:
        cfg["name"] = "demo-full"
    run_config(cfg, out, force, progress=not no_progress)
