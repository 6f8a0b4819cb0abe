"""``probekit report``: the analysis report of a run folder (HTML, Markdown, tables, screenshot)."""

from __future__ import annotations

import click

from probekit.cli._main import main


@main.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--screenshot", is_flag=True, default=False,
              help="Also render the page in headless Chromium (needs chromium and chromedriver) and save "
                   "report.png.")
@click.option("--max-rows", default=25, show_default=True,
              help="Longest table shown in full; longer ones are summarised or cut, with a link to the CSV.")
@click.option("--title", default=None, help="Page title (default: 'probekit report: <run name>').")
def report_cmd(run_dir: str, screenshot: bool, max_rows: int, title: str | None) -> None:
    """Write RUN_DIR/report.html and report.md from a run folder.

    Reads run.json, config.yaml, tables/*.csv, figures/<section>__<name>.png
    and attributions/*.html (any may be absent: the report says which
    sections had no inputs) and writes a self-contained report.html (figures
    embedded, inline CSS, no script, opens offline), report.md (relative
    image links) and a Parquet copy of every table. Sections: Overview,
    Probes, Attention, Attributions, Variants, Comparison.

    \b
    Examples:
      probekit report runs/demo                 # runs/demo/report.html and report.md
      probekit report runs/demo --screenshot    # also runs/demo/report.png (headless Chromium)
    """
    from probekit.report import BrowserError, RunFolderError, write_report
    from probekit.report import screenshot as take_screenshot

    try:
        path = write_report(run_dir, max_rows=max_rows, title=title)
    except (FileNotFoundError, RunFolderError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path} and {path.with_name('report.md')}")
    if screenshot:
        try:
            check = take_screenshot(run_dir)
        except BrowserError as exc:
            raise click.ClickException(str(exc)) from exc
        bad = len(check.images) - check.rendered_images
        click.echo(f"wrote {check.screenshot} ({len(check.sections)} sections, {check.rendered_images} of "
                   f"{len(check.images)} images rendered, page {check.height} px tall)")
        if bad:
            raise click.ClickException(f"{bad} image(s) did not render in the browser")
