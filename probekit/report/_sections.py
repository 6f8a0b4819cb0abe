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
def _probes(run: RunFolder, max_rows: int) -> Section:
    s = Section("probes", "Probes")
    tidy = run.table("probes")
    summ = run.table("probe_summary")
    if summ is None and tidy is not None:
        summ = probe_summary(tidy)
        s.derived["probe_summary"] = summ
    if summ is not None and not summ.empty:
        note = ""
        shown = summ
        if len(summ) > max_rows and {"task", "layer", "accuracy"} <= set(summ.columns):
            keys = [c for c in ("model", "variant", "task", "probe") if c in summ.columns]
            shown = summ.loc[summ.groupby(keys)["accuracy"].idxmax()].reset_index(drop=True)
            note = f"best layer per {', '.join(keys)} ({len(summ):,} rows in the full table)"
        where = src("probe_summary") if run.table("probe_summary") is not None else src("report_probe_summary")
        s.blocks.append(Block("table", Table.build(
            shown, "Probe accuracy by layer (0 = embeddings): mean over seeds, 95% bootstrap interval; control "
                   "task, selectivity (task - control) and baselines", source=where, max_rows=max_rows, note=note)))
    exp = run.table("expected_layer")
    if exp is None and tidy is not None:
        exp = expected_layers(tidy)
        if not exp.empty:
            s.derived["expected_layer"] = exp
    if exp is not None and not exp.empty:
        where = src("expected_layer") if run.table("expected_layer") is not None else src("report_expected_layer")
        s.blocks.append(Block("table", Table.build(
            exp, "Expected layer (Tenney et al. 2019) and centre of gravity of the gain over the majority baseline",
            source=where, max_rows=max_rows)))
    figures(run, "probes", s.blocks)
    if tidy is not None:
        s.blocks.append(Block("link", src("probes"), caption=f"All probe results, tidy ({len(tidy):,} rows)"))
    if not s.blocks:
        return absent(s, "probe tables (tables/probes.csv, probe_summary.csv) or probe figures")
    return s


def _attention(run: RunFolder, max_rows: int) -> Section:
    s = Section("attention", "Attention")
    mass = run.table("special_mass")
    if mass is not None:
        s.blocks.append(Block("table", Table.build(
            mass, "Mean attention mass per layer on [CLS], [SEP], punctuation and the token itself",
            source=src("special_mass"), max_rows=max_rows)))
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
    figures(run, "attention", s.blocks)
    if not s.blocks:
        return absent(s, "head statistics (tables/attention_heads.csv, special_mass.csv) or attention figures")
    return s


_SCRIPT = re.compile(r"<script\b.*?</script\s*>|<link\b[^>]*>|\son\w+\s*=\s*(\"[^\"]*\"|'[^']*')",
                     re.IGNORECASE | re.DOTALL)


def _attributions(run: RunFolder, max_rows: int) -> Section:
    s = Section("attributions", "Attributions")
    for f in run.attributions:
        frag = _SCRIPT.sub("", f.read_text(encoding="utf-8"))
        s.blocks.append(Block("html", frag, caption=f.stem.replace("_", " "), source=f"attributions/{f.name}"))
    agree = run.table("attribution_agreement")
    if agree is not None:
        s.blocks.append(Block("table", Table.build(
            agree, "Agreement between attribution methods (Spearman rank correlation)",
            source=src("attribution_agreement"), max_rows=max_rows)))
    figures(run, "attributions", s.blocks)
    scores = run.table("attributions")
    if scores is not None:
        s.blocks.append(Block("link", src("attributions"), caption=f"All attribution scores ({len(scores):,} rows)"))
    if not s.blocks:
        return absent(s, "attribution snippets (attributions/*.html) or tables")
    return s


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
    figures(run, "variants", s.blocks)
    if not s.blocks:
        return absent(s, "a variants table (tables/variants.csv) or variant figures")
    return s


def _comparison(run: RunFolder, max_rows: int) -> Section:
    s = Section("comparison", "Comparison")
    diag = run.table("compare_diagonal")
    if diag is not None:
        wide = layer_means(diag, "measure")
        s.blocks.append(Block("table", Table.build(
            wide, "Layer-by-layer similarity to the base model (aligned layers)", source=src("compare_diagonal"),
            max_rows=max_rows)))
    pdel = run.table("probe_deltas")
    if pdel is not None:
        s.blocks.append(Block("table", Table.build(pdel, "Probe accuracy deltas (variant - base)",
                                                   source=src("probe_deltas"), max_rows=max_rows)))
    best = run.table("compare_best")
    if best is not None:
        s.blocks.append(Block("table", Table.build(
            best, "Most similar layer of the base (A) for each layer of the variant (B); procrustes is a distance",
            source=src("compare_best"), max_rows=max_rows)))
    adel = run.table("attention_deltas")
    if adel is not None:
        s.blocks.append(Block("table", Table.build(
            layer_means(adel, "metric"), f"Attention deltas per layer, mean over heads ({len(adel):,} per-head "
                                          "rows in the full table)", source=src("attention_deltas"),
            max_rows=max_rows)))
    figures(run, "compare", s.blocks)
    full = run.table("compare")
    if full is not None:
        s.blocks.append(Block("link", src("compare"), caption=f"Full layer x layer matrices ({len(full):,} rows)"))
    if not s.blocks:
        return absent(s, "comparison tables (tables/compare*.csv, probe_deltas.csv, attention_deltas.csv) or figures")
    return s


def _amnesic(run: RunFolder, max_rows: int) -> Section:
    s = Section("amnesic", "Amnesic probing")
    tidy = run.table("amnesic")
    wide = run.table("amnesic_summary")
    if wide is None and tidy is not None:
        from probekit.interventions import amnesic_table

        wide = amnesic_table(tidy)
        s.derived["amnesic_table"] = wide
    if wide is not None:
        where = src("amnesic_summary") if run.table("amnesic_summary") is not None else src("report_amnesic_table")
        s.blocks.append(Block("table", Table.build(
            wide, "Amnesic probing (Elazar et al. 2021): the property erased at each layer; linear-probe accuracy "
                  "before, after and after a random erasure of the same rank (test rows); behaviour before, and "
                  "its change after erasure and after the random erasure (95% paired bootstrap over held-out "
                  "examples)", source=where, max_rows=max_rows)))
    figures(run, "amnesic", s.blocks)
    if tidy is not None:
        s.blocks.append(Block("link", src("amnesic"), caption=f"All amnesic probing rows, tidy ({len(tidy):,} rows)"))
    if not s.blocks:
        return absent(s, "amnesic probing results (tables/amnesic.csv) or figures")
    return s


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
