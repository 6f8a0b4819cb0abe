"""The report's sections as plain data (text, facts, tables, figures, HTML fragments).

:func:`build_sections` puts what the run found first (:mod:`._findings`),
then one section per part of the run, and how the run was made last
(:mod:`._provenance`, collapsed). The HTML and Markdown writers render the
same sections, so both always show the same numbers. A section whose inputs
are absent carries only a note.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from probekit.report._blocks import Block, Section, absent, figures, src
from probekit.report._derived import expected_layers, head_summary, layer_means, probe_summary
from probekit.report._findings import findings_section, variant_warnings
from probekit.report._format import Table, fmt_number
from probekit.report._provenance import provenance_section
from probekit.runfolder import RunFolder

logger = logging.getLogger(__name__)

__all__ = ["Section", "Block", "build_sections", "probe_summary", "expected_layers", "head_summary"]


# ------------------------------------------------------------------ sections
def _finish(run: RunFolder, s: Section, figures_of: str, missing: str, link: tuple[str, str] | None = None) -> Section:
    """Close section ``s``: the run's ``figures_of`` figures, then a link to the full table ``link = (name,
    caption)`` when the run holds it (``{n}``: its row count); a note naming the ``missing`` inputs if empty."""
    figures(run, figures_of, s.blocks)
    full = run.table(link[0]) if link is not None else None
    if full is not None:
        s.blocks.append(Block("link", src(link[0]), caption=link[1].replace("{n}", f"{len(full):,}")))
    return s if s.blocks else absent(s, missing)


def _tables(run: RunFolder, s: Section, max_rows: int, *specs: tuple) -> None:
    """Append a table block to ``s`` for each ``(name, caption, shape)`` whose table the run holds.

    ``shape`` (or ``None``) turns the table into what is shown; ``{n}`` in
    the caption stands for the full table's row count.
    """
    for name, caption, shape in specs:
        t = run.table(name)
        if t is not None:
            shown = shape(t) if shape is not None else t
            s.blocks.append(Block("table", Table.build(shown, caption.replace("{n}", f"{len(t):,}"), source=src(name),
                                                       max_rows=max_rows)))


def _stored_or_derived(run: RunFolder, s: Section, name: str, derived: str, tidy, derive) -> tuple:
    """``(table, source)``: the run's table ``name``, else ``derive(tidy)`` (kept in ``s.derived[derived]`` when not
    empty, written beside the run's tables as ``report_<derived>``); ``(None, None)`` without either."""
    stored = run.table(name)
    if stored is not None:
        return stored, src(name)
    if tidy is None:
        return None, None
    made = derive(tidy)
    if not made.empty:
        s.derived[derived] = made
    return made, src(f"report_{derived}")


def _probes(run: RunFolder, max_rows: int) -> Section:
    s = Section("probes", "Probes")
    tidy = run.table("probes")
    summ, where = _stored_or_derived(run, s, "probe_summary", "probe_summary", tidy, probe_summary)
    if summ is not None and not summ.empty:
        note = ""
        shown = summ
        if len(summ) > max_rows and {"task", "layer", "accuracy"} <= set(summ.columns):
            keys = [c for c in ("model", "variant", "task", "probe") if c in summ.columns]
            shown = summ.loc[summ.groupby(keys)["accuracy"].idxmax()].reset_index(drop=True)
            note = f"best layer per {', '.join(keys)} ({len(summ):,} rows in the full table)"
        s.blocks.append(Block("table", Table.build(
            shown, "Probe accuracy by layer (0 = embeddings): mean over seeds, 95% bootstrap interval; control "
                   "task, selectivity (task - control) and baselines", source=where, max_rows=max_rows, note=note)))
    exp, where = _stored_or_derived(run, s, "expected_layer", "expected_layer", tidy, expected_layers)
    if exp is not None and not exp.empty:
        s.blocks.append(Block("table", Table.build(
            exp, "Expected layer (Tenney et al. 2019) and centre of gravity of the gain over the majority baseline",
            source=where, max_rows=max_rows)))
    return _finish(run, s, "probes", "probe tables (tables/probes.csv, probe_summary.csv) or probe figures",
                   ("probes", "All probe results, tidy ({n} rows)"))


def _attention(run: RunFolder, max_rows: int) -> Section:
    s = Section("attention", "Attention")
    _tables(run, s, max_rows, ("special_mass", "Mean attention mass per layer on [CLS], [SEP], punctuation and the "
                                               "token itself", None))
    heads = run.table("attention_heads")
    if heads is not None and {"layer", "metric", "value"} <= set(heads.columns):
        summ = head_summary(heads)
        s.derived["attention_layers"] = summ
        s.blocks.append(Block("table", Table.build(
            summ, f"Head statistics, mean over the heads of each layer ({len(heads):,} per-head rows in the "
                  "full table)", source=src("attention_heads"), max_rows=max_rows)))
        if "entropy" in set(heads["metric"]):
            ent = heads[heads["metric"] == "entropy"].nsmallest(5, "value")
            keep = [c for c in ("variant", "layer", "head", "value") if c in ent.columns and ent[c].notna().any()]
            s.blocks.append(Block("table", Table.build(
                ent[keep].rename(columns={"value": "entropy"}),
                "The five most focused heads (lowest mean attention entropy, nats)", max_rows=5)))
    return _finish(run, s, "attention",
                   "head statistics (tables/attention_heads.csv, special_mass.csv) or attention figures")


_SCRIPT = re.compile(r"<script\b.*?</script\s*>|<link\b[^>]*>|\son\w+\s*=\s*(\"[^\"]*\"|'[^']*')",
                     re.IGNORECASE | re.DOTALL)


def _attributions(run: RunFolder, max_rows: int) -> Section:
    s = Section("attributions", "Attributions")
    for f in run.attributions:
        frag = _SCRIPT.sub("", f.read_text(encoding="utf-8"))
        s.blocks.append(Block("html", frag, caption=f.stem.replace("_", " "), source=f"attributions/{f.name}"))
    _tables(run, s, max_rows, ("attribution_agreement",
                               "Agreement between attribution methods (Spearman rank correlation)", None))
    return _finish(run, s, "attributions", "attribution snippets (attributions/*.html) or tables",
                   ("attributions", "All attribution scores ({n} rows)"))


def _variants(run: RunFolder, max_rows: int) -> Section:
    s = Section("variants", "Variants")
    v = run.table("variants")
    if v is not None:
        warned = variant_warnings(v)
        if warned:
            s.blocks.append(Block("text", warned, caption="Training warnings"))
        s.blocks.append(Block("table", Table.build(
            v.drop(columns=["warnings"], errors="ignore"),
            "Variants: held-out accuracy, size and CPU latency (batch 1, ms) / throughput (batch 32, "
            "examples/s)", source=src("variants"), max_rows=max_rows)))
    return _finish(run, s, "variants", "a variants table (tables/variants.csv) or variant figures")


def _comparison(run: RunFolder, max_rows: int) -> Section:
    s = Section("comparison", "Comparison")
    _tables(run, s, max_rows,
            ("compare_diagonal", "Layer-by-layer similarity to the base model (aligned layers)",
             lambda t: layer_means(t, "measure")),
            ("probe_deltas", "Probe accuracy deltas (variant - base)", None),
            ("compare_best", "Most similar layer of the base (A) for each layer of the variant (B); procrustes is a "
                             "distance", None),
            ("attention_deltas", "Attention deltas per layer, mean over heads ({n} per-head rows in the full table)",
             lambda t: layer_means(t, "metric")))
    return _finish(run, s, "compare",
                   "comparison tables (tables/compare*.csv, probe_deltas.csv, attention_deltas.csv) or figures",
                   ("compare", "Full layer x layer matrices ({n} rows)"))


def _amnesic(run: RunFolder, max_rows: int) -> Section:
    s = Section("amnesic", "Amnesic probing")
    tidy = run.table("amnesic")
    wide, where = _stored_or_derived(run, s, "amnesic_summary", "amnesic_table", tidy, _amnesic_table)
    if wide is not None:
        s.blocks.append(Block("table", Table.build(
            wide, "Amnesic probing (Elazar et al. 2021): the property erased at each layer; linear-probe accuracy "
                  "before, after and after a random erasure of the same rank (test rows); behaviour before, and "
                  "its change after erasure and after the random erasure (95% paired bootstrap over held-out "
                  "examples)", source=where, max_rows=max_rows)))
    return _finish(run, s, "amnesic", "amnesic probing results (tables/amnesic.csv) or figures",
                   ("amnesic", "All amnesic probing rows, tidy ({n} rows)"))


def _amnesic_table(tidy):
    from probekit.interventions import amnesic_table  # imported only when a run has amnesic rows

    return amnesic_table(tidy)


def build_sections(run: RunFolder, *, max_rows: int = 25) -> list[Section]:
    """Findings first, then Probes, Attention, Attributions, Variants, Comparison, Amnesic probing (when the run
    has it; and other figures), then
    Provenance (collapsed): what was found before how the run was made."""
    builders = ((_probes, "probes", "Probes"), (_attention, "attention", "Attention"),
                (_attributions, "attributions", "Attributions"), (_variants, "variants", "Variants"),
                (_comparison, "comparison", "Comparison"))

    def guarded(fn, sid: str, title: str) -> Section:
        try:
            return fn()
        except (ValueError, KeyError, TypeError) as exc:  # a malformed input spoils its section, not the report
            logger.warning("%s section of %s could not be built: %s", title, run.path, exc)
            return Section(sid, title, note=f"This section could not be built from the run's files: "
                                            f"{type(exc).__name__}: {exc}")

    sections = [guarded(lambda: findings_section(run), "findings", "Findings")]
    sections += [guarded(lambda fn=fn: fn(run, max_rows), sid, title) for fn, sid, title in builders]
    if run.table("amnesic") is not None or run.figures.get("amnesic"):  # only in runs that did amnesic probing
        sections.append(guarded(lambda: _amnesic(run, max_rows), "amnesic", "Amnesic probing"))
    if run.unsorted_figures:
        other = Section("other", "Other figures")
        for f in run.unsorted_figures:
            other.blocks.append(Block("figure", f, caption=f.stem.replace("_", " "), source=f"figures/{f.name}"))
        sections.append(other)
    sections.append(guarded(lambda: provenance_section(run), "provenance", "Provenance"))
    return sections


def fact_text(v) -> str:
    """A fact's value as text (numbers rounded)."""
    return fmt_number(v) if isinstance(v, (int, float, np.number)) else str(v)


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes."""
    return path.relative_to(root).as_posix()
