"""The run-folder layout, its writer and its reader: every analysis folder probekit writes has this shape.

A run folder holds, each part optional::

    run.json                      what ran: config, versions, seeds, fingerprints, timings (RUN_JSON)
    config.yaml                   the experiment config as written (CONFIG_FILE)
    .stages/<stage>.json          each pipeline stage's key, state and outputs (stage_record_path)
    tables/<name>.csv             tidy and summary tables (table_path)
    figures/<section>__<name>.png figures, grouped by report section (figure_path)
    attributions/<name>.html      attribution snippets (attribution_path)
    summaries/<section>.md        short Markdown summaries for a terminal (summary_path)

:class:`Outputs` writes tables, figures, snippets and summaries in this
layout, recording what it wrote; :class:`RunFolder` reads a folder back.
The ``probekit run`` stages and the ``probekit probe``, ``attention``,
``attribute``, ``compare`` and ``amnesic`` commands write through the same
:class:`Outputs` and the same per-analysis functions, and ``probekit report``
renders any such folder.

Only outputs of the run's own config are read. In a pipeline run folder every
stage keeps a record (``.stages/<stage>.json``: its key, its state and the
files it wrote) and ``run.json`` names the key each stage has under the run's
config (``stage_keys``). A table, figure or attribution that a record lists is
*stale*, left out and named in :attr:`RunFolder.stale`, when that record's key
is not the config's (an edited config whose stage has not run again, e.g. a
run interrupted after ``probes.n_boot`` changed), when the stage was running
again and did not finish, or when the config no longer has the stage; so is a
file that an interrupted stage had already rewritten. Files no record lists
(written by a command) are read as they are.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from probekit.profiling import phase

logger = logging.getLogger(__name__)

__all__ = ["CONFIG_FILE", "Outputs", "RUN_JSON", "RunFolder", "RunFolderError", "SECTIONS", "TABLES",
           "attribution_path", "figure_path", "stage_record_path", "stale_outputs", "summary_path", "table_path"]

#: The run record and the config, at the top of the folder.
RUN_JSON = "run.json"
CONFIG_FILE = "config.yaml"

#: Figure sections, in report order (``figures/<section>__<name>.png``).
SECTIONS = ("probes", "attention", "attributions", "variants", "compare", "amnesic")

#: Tables the report reads from ``tables/`` when present.
TABLES = ("probes", "probe_summary", "expected_layer", "probe_best", "attention_heads", "special_mass",
          "dependency_heads", "dependency_best", "attributions", "attribution_scores", "attribution_agreement",
          "variants", "compare", "compare_diagonal", "compare_best", "probe_deltas", "attention_deltas", "amnesic",
          "amnesic_summary")


def table_path(name: str) -> str:
    """The folder-relative path of table ``name``: ``tables/<name>.csv``."""
    return f"tables/{name}.csv"


def figure_path(section: str, name: str) -> str:
    """The folder-relative path of a figure: ``figures/<section>__<name>.png`` (``section`` one of SECTIONS)."""
    if section not in SECTIONS:
        raise ValueError(f"figure section {section!r} is not one of {', '.join(SECTIONS)}")
    return f"figures/{section}__{name}.png"


def attribution_path(name: str) -> str:
    """The folder-relative path of an attribution snippet: ``attributions/<name>.html``."""
    return f"attributions/{name}.html"


def summary_path(section: str) -> str:
    """The folder-relative path of a section's Markdown summary: ``summaries/<section>.md``."""
    return f"summaries/{section}.md"


def stage_record_path(root: str | os.PathLike, stage: str) -> Path:
    """Where a pipeline stage keeps its record: ``<root>/.stages/<stage>.json``."""
    return Path(root) / ".stages" / f"{stage}.json"


class Outputs:
    """Writes tables, figures, snippets and summaries under ``root`` in the run-folder layout, recording them.

    Parameters
    ----------
    root : path
        The run (or output) folder; ``tables/``, ``figures/``... are made in it as needed.
    figures : bool
        Draw figures (``False``: tables only).
    written : list of str, optional
        The list the folder-relative paths written are appended to (default: a new one).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> out = Outputs(tempfile.mkdtemp(), figures=False)
    >>> out.table(pd.DataFrame({"layer": [1, 2], "value": [0.5, 0.7]}), "demo")
    >>> out.summary("probes", "# best layers\\n")
    >>> out.written
    ['tables/demo.csv', 'summaries/probes.md']
    """

    def __init__(self, root: str | os.PathLike, *, figures: bool = True, written: list[str] | None = None):
        self.root = Path(root)
        self.figures = figures
        self.written: list[str] = [] if written is None else written

    def path(self, rel: str) -> Path:
        """``root / rel``, its folder made."""
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def _text(self, rel: str, text: str) -> None:
        p = self.path(rel)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(p)
        self.written.append(rel)

    def table(self, df: pd.DataFrame, name: str) -> None:
        """Write ``tables/<name>.csv`` (a results frame's ``extra`` mappings as JSON text)."""
        rel = table_path(name)
        with phase("tables"):
            if "extra" in df.columns:
                df = df.assign(extra=[v if v is None or isinstance(v, str) or v != v
                                      else json.dumps(v, sort_keys=True, default=str) for v in df["extra"]])
            df.to_csv(self.path(rel), index=False)
        self.written.append(rel)

    def figure(self, make: Callable, section: str, name: str) -> None:
        """Draw ``make()`` into ``figures/<section>__<name>.png``; a plot with nothing to draw is skipped."""
        if not self.figures:
            return
        rel = figure_path(section, name)
        with phase("figures"):
            import matplotlib.pyplot as plt

            try:
                fig = make()
            except ValueError as exc:
                logger.info("skipping figure %s: %s", rel, exc)
                return
            fig.savefig(self.path(rel), dpi=110)
            plt.close(fig)
        self.written.append(rel)

    def attribution(self, html: str, name: str) -> None:
        """Write the snippet ``attributions/<name>.html``."""
        self._text(attribution_path(name), html)

    def summary(self, section: str, text: str) -> None:
        """Write ``summaries/<section>.md``."""
        self._text(summary_path(section), text)


class RunFolderError(ValueError):
    """The folder is not a readable run folder (the message names the file and the problem)."""


@dataclass
class RunFolder:
    """The parts of a run folder that exist.

    Attributes
    ----------
    path : Path
    run : dict
        ``run.json`` (empty when absent).
    config_text : str or None
        ``config.yaml`` as written.
    tables : dict
        Table name (file stem) -> DataFrame, for every ``tables/*.csv``.
    figures : dict
        Section -> list of PNG paths, sorted by name.
    unsorted_figures : list of Path
        PNGs whose name does not start with a known ``<section>__``.
    attributions : list of Path
        ``attributions/*.html`` fragments.
    stale : dict
        Path relative to the folder -> why it was left out (see the module
        docstring): outputs of a stage whose settings are not the config's.

    Examples
    --------
    >>> import tempfile
    >>> from probekit.pipeline import TINY_CONFIG as tiny, run_experiment
    >>> folder = tempfile.mkdtemp() + "/tiny"
    >>> _ = run_experiment(tiny, folder, progress=False)
    >>> run = RunFolder.read(folder)
    >>> sorted(run.tables)[:2], run.run.get("name")
    (['expected_layer', 'probe_best'], 'tiny')
    """

    path: Path
    run: dict = field(default_factory=dict)
    config_text: str | None = None
    tables: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    unsorted_figures: list = field(default_factory=list)
    attributions: list = field(default_factory=list)
    stale: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path) -> RunFolder:
        """Read every part present in ``path``.

        Raises
        ------
        FileNotFoundError
            ``path`` does not exist or is not a folder.
        RunFolderError
            ``run.json`` or a table cannot be parsed, or the folder holds no
            run part at all.
        """
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"run folder {path} does not exist (or is not a folder)")
        out = cls(path=path)
        run_json = path / RUN_JSON
        if run_json.is_file():
            try:
                out.run = json.loads(run_json.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise RunFolderError(f"{run_json} is not valid JSON: {exc}") from exc
            if not isinstance(out.run, dict):
                raise RunFolderError(f"{run_json} must hold a JSON object, not {type(out.run).__name__}")
        cfg = path / CONFIG_FILE
        if cfg.is_file():
            out.config_text = cfg.read_text(encoding="utf-8")
        out.stale = stale_outputs(path, out.run)
        tdir = path / "tables"
        if tdir.is_dir():
            for f in sorted(tdir.glob("*.csv")):
                if f.stem.startswith("report_"):  # summaries written by an earlier report, not run inputs
                    continue
                if f"tables/{f.name}" in out.stale:
                    continue
                try:
                    out.tables[f.stem] = pd.read_csv(f)
                except pd.errors.EmptyDataError:
                    logger.warning("table %s is empty; skipped", f)
                except (pd.errors.ParserError, UnicodeDecodeError) as exc:
                    raise RunFolderError(f"table {f} cannot be read as CSV: {exc}") from exc
        fdir = path / "figures"
        if fdir.is_dir():
            for f in sorted(fdir.glob("*.png")):
                if f"figures/{f.name}" in out.stale:
                    continue
                section = f.name.split("__", 1)[0] if "__" in f.name else None
                if section in SECTIONS:
                    out.figures.setdefault(section, []).append(f)
                else:
                    out.unsorted_figures.append(f)
        adir = path / "attributions"
        if adir.is_dir():
            out.attributions = sorted(f for f in adir.glob("*.html") if f"attributions/{f.name}" not in out.stale)
        if not (out.run or out.config_text or out.tables or out.figures or out.unsorted_figures
                or out.attributions or out.stale):
            raise RunFolderError(f"{path} is not a run folder: it has no run.json, config.yaml, tables/*.csv, "
                                 "figures/*.png or attributions/*.html")
        return out

    def table(self, name: str) -> pd.DataFrame | None:
        """``tables/<name>.csv`` or None; an empty table counts as absent."""
        df = self.tables.get(name)
        return None if df is None or df.empty else df


#: The parts of a run folder whose files the report reads (the ones that can be stale).
_REPORTED = ("tables", "figures", "attributions")


def _records(path: Path) -> dict[str, dict]:
    out = {}
    sdir = stage_record_path(path, "x").parent
    if sdir.is_dir():
        for f in sorted(sdir.glob("*.json")):
            try:
                rec = json.loads(f.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                rec = {"state": "unreadable"}
            out[f.stem] = rec if isinstance(rec, dict) else {"state": "unreadable"}
    return out


def stale_outputs(path: str | os.PathLike, run: dict) -> dict[str, str]:
    """Files of the run folder that do not belong to its config: relative path -> why.

    Parameters
    ----------
    path : path
        The run folder.
    run : dict
        Its ``run.json`` (without it nothing can be checked, and nothing is stale).

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / ".stages").mkdir()
    >>> _ = (d / ".stages" / "probes.json").write_text(json.dumps({"key": "old", "outputs": ["tables/probes.csv"]}))
    >>> stale_outputs(d, {"stage_keys": {"probes": "new"}})["tables/probes.csv"][:40]
    'stage probes was run with other settings'
    >>> stale_outputs(d, {"stage_keys": {"probes": "old"}})
    {}
    """
    path = Path(path)
    if not run:
        return {}
    records = _records(path)
    if not records:
        return {}
    expected = run.get("stage_keys")
    if not isinstance(expected, dict):  # a run folder written before stage_keys: the stages it recorded
        stages = run.get("stages") if isinstance(run.get("stages"), dict) else {}
        expected = {n: s.get("key") for n, s in stages.items() if isinstance(s, dict)}
    out: dict[str, str] = {}
    for name, rec in records.items():
        state = rec.get("state", "done")
        if state == "running":
            why = (f"stage {name} was running again with this config's settings when the run stopped; it did not "
                   "finish")
        elif state != "done":
            why = f"the record of stage {name} (.stages/{name}.json) cannot be read"
        elif name not in expected:
            why = f"stage {name} is not part of this run's config"
        elif expected[name] is None:
            why = (f"stage {name} comes after a stage that has not run with this config's settings yet, so its "
                   "results may be of other settings")
        elif expected[name] != rec.get("key"):
            why = (f"stage {name} was run with other settings than this config's (config.yaml); the run stopped "
                   "before running it again")
        else:
            continue
        for rel in rec.get("outputs", []) or []:
            if isinstance(rel, str) and rel.split("/", 1)[0] in _REPORTED:
                out[rel] = why
        since = rec.get("since")
        if state == "running" and isinstance(since, (int, float)):
            for part in _REPORTED:  # what the interrupted stage had already rewritten
                d = path / part
                if d.is_dir():
                    for f in d.iterdir():
                        rel = f"{part}/{f.name}"
                        if f.is_file() and rel not in out and f.stat().st_mtime >= since \
                                and not f.name.startswith("report_"):
                            out[rel] = why
    return dict(sorted(out.items()))
