"""``probekit sites``: inspect a model's site vocabulary."""

from __future__ import annotations

import click

from probekit.cli._main import main


@main.command("sites")
@click.argument("model", default="minilm-l6")
@click.option("--component", "-c", multiple=True, help="Only these components (e.g. -c resid -c attn.pattern).")
def sites(model: str, component: tuple[str, ...]) -> None:
    """List every site of MODEL (an alias, a folder or a hub name).

    \b
    Example:
      probekit sites minilm-l6 -c resid
    """
    from probekit.variants import load_model

    hooked = load_model(model)
    click.echo(repr(hooked))
    for s in hooked.sites(component or None):
        click.echo(str(s))
