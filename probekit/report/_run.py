"""Read a run folder (``run.json``, ``config.yaml``, ``tables/``, ``figures/``, ``attributions/``).

The layout is shared with the pipeline that writes it; every part is
optional except that the folder must hold at least one of them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["RunFolder", "SECTIONS", "TABLES", "RunFolderError"]

#: Figure sections, in report order (``figures/<section>__<name>.png``).
SECTIONS = ("probes", "attention", "attributions", "variants", "compare", "amnesic")

#: Tables the report reads from ``tables/`` when present.
TABLES = ("probes", "probe_summary", "expected_layer", "attention_heads", "special_mass", "attributions",
          "attribution_agreement", "variants", "compare", "compare_diagonal", "probe_deltas", "attention_deltas",
          "amnesic")


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

    Examples
    --------
    >>> import tempfile
    >>> from probekit.pipeline import run_experiment
    >>> tiny = {"name": "tiny", "data": {"source": "rt", "sentences": 60},
    ...         "model": {"name": "tiny-bert", "config": {"model_type": "bert", "hidden_size": 32,
    ...                   "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}},
    ...         "probes": {"tasks": ["sentiment"], "n_boot": 50, "random_init": False},
    ...         "outputs": {"figures": False, "report": False}}
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
        run_json = path / "run.json"
        if run_json.is_file():
            try:
                out.run = json.loads(run_json.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise RunFolderError(f"{run_json} is not valid JSON: {exc}") from exc
            if not isinstance(out.run, dict):
                raise RunFolderError(f"{run_json} must hold a JSON object, not {type(out.run).__name__}")
        cfg = path / "config.yaml"
        if cfg.is_file():
            out.config_text = cfg.read_text(encoding="utf-8")
        tdir = path / "tables"
        if tdir.is_dir():
            for f in sorted(tdir.glob("*.csv")):
                if f.stem.startswith("report_"):  # summaries written by an earlier report, not run inputs
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
                section = f.name.split("__", 1)[0] if "__" in f.name else None
                if section in SECTIONS:
                    out.figures.setdefault(section, []).append(f)
                else:
                    out.unsorted_figures.append(f)
        adir = path / "attributions"
        if adir.is_dir():
            out.attributions = sorted(adir.glob("*.html"))
        if not (out.run or out.config_text or out.tables or out.figures or out.unsorted_figures
                or out.attributions):
            raise RunFolderError(f"{path} is not a run folder: it has no run.json, config.yaml, tables/*.csv, "
                                 "figures/*.png or attributions/*.html")
        return out

    def table(self, name: str) -> pd.DataFrame | None:
        """``tables/<name>.csv`` or None; an empty table counts as absent."""
        df = self.tables.get(name)
        return None if df is None or df.empty else df
