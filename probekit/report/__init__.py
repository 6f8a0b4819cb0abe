"""The analysis report of a run folder: one self-contained HTML page, Markdown and tables.

:func:`write_report` reads a run folder (``run.json``, ``config.yaml``,
``tables/*.csv``, ``figures/<section>__<name>.png``, ``attributions/*.html``)
and writes ``report.html`` (figures embedded as data URIs, inline CSS, no
script, nothing fetched from the network), ``report.md`` (relative image
links) and a Parquet copy of every table. Sections: Findings (what the run
found: best layers, selectivity, variant deltas), Probes, Attention,
Attributions, Variants, Comparison, and last Provenance (run facts, when it
finished, timings, versions, store fingerprints, config; collapsed, one
click away); a section whose inputs are absent says so in one line.

The run-folder layout, its writer and its reader live in :mod:`probekit.runfolder`. One line per file:

- ``_blocks``: The report's building blocks: sections of text, facts, tables, figures and HTML fragments, as plain
  data.
- ``_browser``: Open a report in headless Chromium through chromedriver: check what rendered and save a screenshot.
- ``_derived``: Tables the report derives from a run's tidy tables (summaries by layer; the layer axis of results
  tables).
- ``_findings``: The report's first section: what the run found, in sentences computed from its tables.
- ``_format``: Readable tables: rounded numbers, intervals as ``0.91 [0.89, 0.93]``, long tables cut with a note.
- ``_provenance``: The report's last section: how the run was made (facts, stage timings, versions, store
  fingerprints, config).
- ``_render``: Render sections as one self-contained HTML page and as Markdown.
- ``_sections``: The report's sections as plain data (text, facts, tables, figures, HTML fragments).

Examples
--------
A report of a tiny pipeline run:

>>> import tempfile
>>> from probekit.pipeline import TINY_CONFIG as tiny, run_experiment
>>> run = tempfile.mkdtemp() + "/tiny"
>>> _ = run_experiment(tiny, run, progress=False)
>>> from probekit.report import write_report
>>> path = write_report(run)
>>> path.name, sorted(p.name for p in path.parent.glob("report.*"))
('report.html', ['report.html', 'report.md'])
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from probekit.report._browser import BrowserError, PageCheck, find_chromium, render_in_browser
from probekit.report._format import Table, fmt_number, format_frame, merge_intervals
from probekit.report._render import markdown_table, render_html, render_markdown
from probekit.report._sections import Section, build_sections, expected_layers, head_summary, probe_summary
from probekit.runfolder import SECTIONS, TABLES, RunFolder, RunFolderError
from probekit.version import __version__

logger = logging.getLogger(__name__)

__all__ = [
    "BrowserError", "PageCheck", "RunFolder", "RunFolderError", "SECTIONS", "Section", "TABLES", "Table",
    "build_sections", "expected_layers", "find_chromium", "fmt_number", "format_frame", "head_summary",
    "markdown_table",
    "merge_intervals", "probe_summary", "render_in_browser", "screenshot", "write_report",
]


def _write_parquet(df: pd.DataFrame, path: Path) -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        logger.warning("pyarrow is not installed: no Parquet copy of %s", path.with_suffix(".csv").name)
        return False
    out = df.copy()
    for c in out.columns:  # mixed object columns (e.g. ints and None) -> strings, so Arrow accepts them
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    tmp = path.with_name(path.name + ".tmp")
    out.to_parquet(tmp, index=False)
    tmp.replace(path)
    return True


def write_report(run_dir: str | Path, *, max_rows: int = 25, title: str | None = None) -> Path:
    """Write ``report.html``, ``report.md`` and Parquet copies of the tables into ``run_dir``.

    Parameters
    ----------
    run_dir : path
        A run folder (see the module docstring); any part may be absent, the
        report leaves out what is missing with a note.
    max_rows : int
        Longest table shown in full; longer ones are summarised or cut, with a
        link to the CSV.
    title : str, optional
        Default: ``probekit report: <run name>``.

    Returns
    -------
    Path
        The ``report.html`` written.

    Raises
    ------
    FileNotFoundError
        ``run_dir`` does not exist.
    RunFolderError
        ``run.json`` or a table cannot be parsed, or the folder holds no run part at all.

    Examples
    --------
    >>> import tempfile
    >>> from probekit.pipeline import TINY_CONFIG as tiny, run_experiment
    >>> run = tempfile.mkdtemp() + "/tiny"
    >>> _ = run_experiment(tiny, run, progress=False)
    >>> html = write_report(run, title="tiny sentiment probes")
    >>> "tiny sentiment probes" in html.read_text(encoding="utf-8")
    True
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    run = RunFolder.read(run_dir)
    root = run.path
    sections = build_sections(run, max_rows=max_rows)
    tdir = root / "tables"
    for name, df in run.tables.items():
        _write_parquet(df, tdir / f"{name}.parquet")
    for s in sections:
        for name, df in s.derived.items():
            tdir.mkdir(exist_ok=True)
            df.to_csv(tdir / f"report_{name}.csv", index=False)
            _write_parquet(df, tdir / f"report_{name}.parquet")
    name = run.run.get("name") or root.resolve().name
    title = title or f"probekit report: {name}"
    present = [s.title for s in sections if not s.empty]
    model = (run.run.get("config") or {}).get("model") if isinstance(run.run.get("config"), dict) else None
    finished = run.run.get("finished")
    when = f"finished {finished}" if finished else ("not finished" if run.run.get("started") else None)
    stale = f"{len(run.stale)} outputs of other settings left out" if run.stale else None
    subtitle = " · ".join(str(x) for x in (model if isinstance(model, str) else None, when,
                                            f"{len(present)} of {len(sections)} sections", stale) if x)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    footer = f"written by probekit {__version__} on {stamp} from {root.resolve()}"
    html_text = render_html(sections, title=title, subtitle=subtitle, footer=footer)
    md_text = render_markdown(sections, title=title, subtitle=subtitle)
    out = root / "report.html"
    for path, text in ((out, html_text), (root / "report.md", md_text)):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    logger.info("wrote %s and report.md (%s)", out, ", ".join(present) or "no section has inputs")
    return out


def screenshot(run_dir: str | Path, *, width: int = 1280) -> PageCheck:
    """Render ``run_dir/report.html`` in headless Chromium and save ``run_dir/report.png``.

    Raises
    ------
    FileNotFoundError
        No ``report.html`` (run :func:`write_report` first).
    BrowserError
        Chromium or chromedriver missing or failing.
    """
    root = Path(run_dir)
    return render_in_browser(root / "report.html", root / "report.png", width=width)
