"""Every figure a paper check attributes to its paper names where it is printed and in which version of the paper.

Each folder under ``papers/`` lists the figures it quotes in ``paper_figures.csv`` with a ``source``
(table, figure or section, and the proceedings or an arXiv id with its version); the reports and
``papers/README.md`` cite those sources, and nothing under ``papers/`` is quoted from memory.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

PAPERS = Path(__file__).resolve().parents[2] / "papers"
CHECKS = sorted(p.name for p in PAPERS.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
COLUMNS = ("paper", "source", "setting", "row", "metric", "value", "unit", "note")
#: where in the paper: a numbered table, figure or section
WHERE = re.compile(r"\b(Table|Figure|Section)s? \d")
#: which version: proceedings named by their ACL Anthology id or PMLR volume, or an arXiv id with its version
VERSION = re.compile(r"ACL Anthology [A-Z0-9][\w.\-]*\d|PMLR \d+|arXiv:\d{4}\.\d{4,5}v\d+")
#: phrases that mark a figure as unchecked
UNCHECKED = ("from memory", "as usually cited", "not re-checked", "as quoted in the issue")


def _figures(check: str) -> pd.DataFrame:
    return pd.read_csv(PAPERS / check / "paper_figures.csv", dtype=str, keep_default_na=False)


def _load(check: str):
    """The check's ``run.py`` as a module (it reads its paper figures on import)."""
    spec = importlib.util.spec_from_file_location(f"paper_check_{check}", PAPERS / check / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(PAPERS / check))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(PAPERS / check))
    return mod


def test_there_are_paper_checks():
    assert len(CHECKS) >= 10, CHECKS


@pytest.mark.parametrize("check", CHECKS)
def test_every_check_lists_the_figures_it_quotes(check):
    path = PAPERS / check / "paper_figures.csv"
    assert path.is_file(), f"{check} has no paper_figures.csv (the figures it quotes from its paper, with sources)"
    df = _figures(check)
    assert tuple(df.columns) == COLUMNS, f"{path}: columns {tuple(df.columns)}, expected {COLUMNS}"
    assert not df.duplicated(["row", "metric"]).any(), f"{path}: a (row, metric) key repeats"
    for i, r in df.iterrows():
        assert r["value"].strip(), f"{path} row {i}: no value"
        float(r["value"])  # a number, as printed
        assert r["paper"].strip() and r["setting"].strip(), f"{path} row {i}: no paper or setting"


@pytest.mark.parametrize("check", CHECKS)
def test_every_figure_names_its_table_or_figure_and_version(check):
    df = _figures(check)
    for i, r in df.iterrows():
        src = r["source"]
        assert src.strip(), f"{check}/paper_figures.csv row {i} ({r['row']}, {r['metric']}) has no source"
        assert src.startswith(r["paper"]), f"{check} row {i}: source {src!r} is not of {r['paper']!r}"
        assert WHERE.search(src), f"{check} row {i}: source {src!r} names no table, figure or section"
        assert VERSION.search(src), f"{check} row {i}: source {src!r} names no proceedings or arXiv version"


@pytest.mark.parametrize("check", CHECKS)
def test_reports_cite_the_sources_of_their_figures(check):
    md = (PAPERS / check / "results.md").read_text(encoding="utf-8")
    assert "paper_figures.csv" in md, f"{check}/results.md does not point to its paper_figures.csv"
    readme = (PAPERS / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if f"[`{check}/`]" in line)
    df = _figures(check)
    for src in dict.fromkeys(df["source"]):
        version = VERSION.search(src).group(0)
        assert version in md, f"{check}/results.md does not cite {version} ({src})"
        assert version in row, f"papers/README.md's row of {check} does not cite {version}"
    if df.empty:
        assert "no figures quoted" in row, f"papers/README.md's row of {check} should say it quotes no figures"


def test_nothing_under_papers_is_quoted_from_memory():
    hits = []
    for path in PAPERS.rglob("*"):
        if path.is_file() and path.suffix in (".md", ".py", ".csv", ".json"):
            text = path.read_text(encoding="utf-8").lower()
            hits += [f"{path.relative_to(PAPERS)}: {phrase!r}" for phrase in UNCHECKED if phrase in text]
    assert not hits, hits


# -------- the three figures that were misquoted, as the papers print them (and the sentences built on them)
def _value(check: str, row: str, metric: str) -> float:
    df = _figures(check)
    hit = df[(df["row"] == row) & (df["metric"] == metric)]
    assert len(hit) == 1, (check, row, metric)
    return float(hit["value"].iloc[0])


def test_hewitt_liang_table_1_default_and_designed_probes():
    published = {"default linear": (97.2, 71.2, 26.0), "default MLP-1": (97.3, 92.8, 4.5),
                 "default MLP-2": (97.3, 93.2, 4.2), "designed MLP-1": (97.2, 80.6, 16.6),
                 "designed MLP-2": (97.2, 81.7, 15.4)}
    for row, values in published.items():
        got = tuple(_value("hewitt_liang_2019", row, m) for m in ("accuracy", "control_accuracy", "selectivity"))
        assert got == values, (row, got)
    md = (PAPERS / "hewitt_liang_2019" / "results.md").read_text(encoding="utf-8")
    # the gap against the default probes, and our MLPs against the designed ones
    assert "+21.5 / +21.8" in md and "16.6 / 15.4" in md
    assert "+20.8" not in md and "71.7" not in md


def test_hewitt_manning_table_1_rows():
    assert [_value("hewitt_manning_2019", "BERT-base layer 7", m) for m in
            ("uuas", "distance_spearman", "root_accuracy", "depth_spearman")] == [79.8, 0.85, 88.0, 0.87]
    assert [_value("hewitt_manning_2019", "BERT-large layer 16", m) for m in
            ("uuas", "distance_spearman", "root_accuracy", "depth_spearman")] == [81.7, 0.87, 90.1, 0.89]
    md = (PAPERS / "hewitt_manning_2019" / "results.md").read_text(encoding="utf-8")
    assert "| paper: BERT-base layer 7 (PTB) | 79.8 | 0.85 | 88.0 | 0.87 |" in md
    assert "| paper: BERT-large layer 16 (PTB) | 81.7 | 0.87 | 90.1 | 0.89 |" in md
    assert "~89" not in md and "82.5" not in md


def test_voita_titov_table_1_online_code_row():
    task, ctl = "ELMo layer 1, part-of-speech", "ELMo layer 1, control task"
    check = "voita_titov_2020"
    assert (_value(check, task, "accuracy"), _value(check, ctl, "accuracy")) == (97.5, 91.9)
    assert (_value(check, task, "codelength"), _value(check, ctl, "codelength")) == (96, 515)
    assert (_value(check, task, "compression"), _value(check, ctl, "compression")) == (53.06, 9.89)
    md = (PAPERS / check / "results.md").read_text(encoding="utf-8")
    assert "is 5.36 (515 / 96 kbits)" in md and "(paper, ELMo layer 1: 3.02)" not in md
    readme = (PAPERS / "README.md").read_text(encoding="utf-8")
    assert "paper 3.0x" not in readme and "5.4x" in readme


@pytest.mark.parametrize("check", ["hewitt_liang_2019", "hewitt_manning_2019", "voita_titov_2020", "tenney_2019",
                                   "clark_2019", "kornblith_2019", "abnar_zuidema_2020"])
def test_run_scripts_take_their_paper_figures_from_the_csv(check):
    """Each run.py reads ``paper_figures.csv``: change a figure there and the script's figure changes."""
    text = (PAPERS / check / "run.py").read_text(encoding="utf-8")
    assert "paper_figures(HERE)" in text, f"{check}/run.py does not read paper_figures.csv"
    mod = _load(check)
    df = _figures(check)
    assert len(mod.FIGURES) == len(df)
    assert mod.FIGURES["value"].astype(float).tolist() == df["value"].astype(float).tolist()


@pytest.mark.slow
@pytest.mark.parametrize("check", ["hewitt_liang_2019", "hewitt_manning_2019", "voita_titov_2020"])
def test_committed_report_is_what_run_writes_from_the_csvs(check, tmp_path):
    """``run.py --report-only`` rebuilds ``results.md`` from ``results.csv`` and ``paper_figures.csv`` alone
    (nothing fitted): the committed report must be exactly that, so its paper figures and the sentences
    comparing with them cannot drift from the CSVs."""
    import subprocess

    from tests.data.conftest import require_ud_full

    ud = require_ud_full()
    for name in ("results.csv", "results.md"):
        (tmp_path / name).write_bytes((PAPERS / check / name).read_bytes())
    proc = subprocess.run([sys.executable, str(PAPERS / check / "run.py"), "--report-only", "--out", str(tmp_path),
                           "--ud-path", str(ud)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "results.md").read_text(encoding="utf-8") == \
        (PAPERS / check / "results.md").read_text(encoding="utf-8")
