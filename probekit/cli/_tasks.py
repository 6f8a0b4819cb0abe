"""``probekit tasks``: list the probing tasks and show their class statistics on real data."""

from __future__ import annotations

import click

from probekit.cli._main import main


@main.group("tasks")
def tasks() -> None:
    """Probing tasks (word, edge, structural, SentEval sentence tasks, control tasks).

    \b
    Examples:
      probekit tasks list
      probekit tasks show upos --source ud          # UD English EWT fetched by 'probekit data fetch ud_ewt'
      probekit tasks show upos --ud-path path/to/UD_English-EWT
      probekit tasks show sentlen --source rt --seed 1
      probekit tasks show upos.control --limit 500
    """


@tasks.command("list")
def list_cmd() -> None:
    """List every task: name, level, sources and how its labels are derived."""
    from probekit.data import list_tasks

    df = list_tasks()
    for row in df.itertuples():
        click.echo(f"{row.name:<12} {row.level:<10} {row.sources:<6} {row.description}")
    click.echo("\nEvery task except 'structural' also has a control task: NAME.control")


@tasks.command("show")
@click.argument("task")
@click.option("--source", type=click.Choice(["ud", "rt"]), default=None,
              help="ud: gold UD English EWT; rt: Rotten Tomatoes with spaCy parses (default: ud, or rt for "
                   "sentiment).")
@click.option("--ud-path", type=click.Path(), default=None,
              help="UD folder or .conllu file (default $PROBEKIT_UD_PATH, else the copy fetched by "
                   "'probekit data fetch ud_ewt').")
@click.option("--limit", type=int, default=None, help="Use only this many sentences (per UD file).")
@click.option("--seed", type=int, default=0, show_default=True)
def show_cmd(task: str, source: str | None, ud_path: str | None, limit: int | None, seed: int) -> None:
    """Build TASK on real data and print its class statistics per split."""
    import pandas as pd

    from probekit.data import build_task

    if source is None:
        source = "rt" if task.split(".")[0] == "sentiment" else "ud"
    try:
        t = build_task(task, source, path=ud_path, limit=limit, seed=seed)
    except (LookupError, FileNotFoundError, ValueError, ImportError) as exc:
        raise click.ClickException(str(exc.args[0]) if exc.args else str(exc)) from None
    click.echo(repr(t))
    click.echo(f"description: {t.description}")
    n_words = sum(len(w) for w in t.dataset.word_lists())
    click.echo(f"examples: {len(t.dataset)}  words: {n_words}  seed: {t.seed}")
    skipped = {k: v for k, v in t.meta.get("skipped", {}).items() if v}
    if skipped:
        click.echo("skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    for key in ("n_words", "frequency_ranks", "depth_range"):
        if key in t.meta:
            click.echo(f"{key}: {t.meta[key]}")
    with pd.option_context("display.max_rows", 200, "display.width", 160):
        click.echo(t.class_stats().to_string(index=False, float_format=lambda x: f"{x:.4f}"))
