"""The report's sections as plain data (text, facts, tables, figures, HTML fragments).

The HTML and Markdown writers render the same sections, so both always show
the same numbers. A section whose inputs are absent carries only a note.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from probekit.report._format import Table, fmt_number, pretty_seconds
from probekit.report._run import RunFolder

logger = logging.getLogger(__name__)

__all__ = ["Section", "Block", "build_sections", "probe_summary", "expected_layers", "head_summary"]


@dataclass
class Block:
    """One piece of a section: ``kind`` is text (a list of sentences), facts, table, figure, html, code, bars
    or link."""

    kind: str
    data: object
    caption: str = ""
    source: str | None = None


@dataclass
class Section:
    """A titled list of blocks; ``note`` says why it is empty."""

    id: str
    title: str
    blocks: list = field(default_factory=list)
    note: str = ""
    derived: dict = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.blocks


# ------------------------------------------------------------------ derived tables
def probe_summary(probes: pd.DataFrame) -> pd.DataFrame:
    """Wide per-layer summary of tidy :class:`~probekit.probes.ProbeSuite` rows.

    Columns: ``model, variant, task, probe, layer, accuracy, ci_low, ci_high``
    (the mean over seeds of the per-seed accuracy and of its bootstrap
    interval), ``control`` (the control task's accuracy), ``selectivity``,
    ``majority`` and ``random_init`` (the ``random-init`` variant's accuracy
    at the same layer) where those rows exist.

    Examples
    --------
    >>> rows = pd.DataFrame({"model": "m", "variant": None, "task": ["t", "t", "t.control", "t"],
    ...                      "layer": [1, 1, 1, np.nan], "probe": ["linear"] * 3 + ["majority"],
    ...                      "seed": [0, 1, 0, np.nan], "metric": "accuracy", "value": [0.8, 0.9, 0.5, 0.5],
    ...                      "ci_low": [0.7, 0.8, 0.4, np.nan], "ci_high": [0.9, 1.0, 0.6, np.nan]})
    >>> probe_summary(rows)[["task", "layer", "accuracy", "control", "majority"]].round(2).values.tolist()
    [['t', 1, 0.85, 0.5, 0.5]]
    """
    need = {"task", "layer", "probe", "metric", "value"}
    if not need <= set(probes.columns):
        raise ValueError(f"tables/probes.csv lacks columns {sorted(need - set(probes.columns))} of a tidy "
                         "ProbeSuite table")
    df = probes.copy()
    for c in ("model", "variant", "ci_low", "ci_high"):
        if c not in df.columns:
            df[c] = np.nan
    df["variant"] = df["variant"].fillna("")
    df["model"] = df["model"].fillna("")
    df["task"] = df["task"].astype(str)
    is_ctrl = df["task"].str.endswith(".control")
    df["base_task"] = df["task"].str.replace(r"\.control$", "", regex=True)
    acc = df[(df["metric"] == "accuracy") & df["layer"].notna() & (df["probe"] != "majority")]
    keys = ["model", "variant", "base_task", "probe", "layer"]
    main = acc[~is_ctrl.loc[acc.index]].groupby(keys)[["value", "ci_low", "ci_high"]].mean()
    if main.empty:
        return pd.DataFrame(columns=["task", "probe", "layer", "accuracy", "ci_low", "ci_high"])
    out = main.rename(columns={"value": "accuracy"})
    ctrl = acc[is_ctrl.loc[acc.index]].groupby(keys)["value"].mean()
    if not ctrl.empty:
        out["control"] = ctrl
    sel = df[df["metric"] == "selectivity_mean"].groupby(keys)["value"].mean()
    if sel.empty:
        sel = df[df["metric"] == "selectivity"].groupby(keys)["value"].mean()
    if not sel.empty:
        out["selectivity"] = sel
    out = out.reset_index()
    maj = df[(df["probe"] == "majority") & (df["metric"] == "accuracy") & ~is_ctrl]
    if not maj.empty:
        m = maj.groupby(["model", "variant", "base_task"])["value"].mean().rename("majority").reset_index()
        out = out.merge(m, on=["model", "variant", "base_task"], how="left")
    rand = out[out["variant"] == "random-init"]
    if not rand.empty:
        r = rand[["model", "base_task", "probe", "layer", "accuracy"]].rename(columns={"accuracy": "random_init"})
        out = out[out["variant"] != "random-init"].merge(r, on=["model", "base_task", "probe", "layer"], how="left")
    out = out.rename(columns={"base_task": "task"})
    out["layer"] = out["layer"].astype(int)
    if (out["variant"] == "").all():
        out = out.drop(columns="variant")
    if out["model"].nunique() <= 1:
        out = out.drop(columns="model")
    return out.sort_values([c for c in ("model", "variant", "task", "probe", "layer") if c in out.columns],
                           ignore_index=True)


def expected_layers(probes: pd.DataFrame) -> pd.DataFrame:
    """``task, probe, expected_layer, center_of_gravity`` from the suite's tidy rows (empty if none)."""
    df = probes[probes["metric"].isin(["expected_layer", "center_of_gravity"])]
    if df.empty:
        return pd.DataFrame()
    keys = [c for c in ("model", "variant", "task", "probe") if c in df.columns and df[c].notna().any()]
    # pivot_table drops rows whose keys are missing: the real model's variant is empty, not absent
    df = df.assign(**{k: df[k].fillna("") for k in keys})
    return df.pivot_table(index=keys, columns="metric", values="value", aggfunc="mean").reset_index()


def head_summary(heads: pd.DataFrame) -> pd.DataFrame:
    """Per-layer mean over heads of every head statistic (``layer`` x ``metric``) of a tidy table."""
    need = {"layer", "metric", "value"}
    if not need <= set(heads.columns):
        raise ValueError(f"the head statistics table lacks columns {sorted(need - set(heads.columns))}")
    keys = [c for c in ("variant",) if c in heads.columns and heads[c].notna().any()] + ["layer"]
    wide = heads.pivot_table(index=keys, columns="metric", values="value", aggfunc="mean").reset_index()
    wide.columns.name = None
    wide["layer"] = wide["layer"].astype(int)
    return wide


# ------------------------------------------------------------------ highlights
def _probe_highlights(summ: pd.DataFrame) -> list[str]:
    if not {"task", "layer", "accuracy"} <= set(summ.columns):
        return []
    keys = [c for c in ("model", "variant", "task", "probe") if c in summ.columns]
    out = []
    for key, g in summ.groupby(keys, sort=False):
        g = g.dropna(subset=["accuracy"])
        if g.empty:
            continue
        best = g.loc[g["accuracy"].idxmax()]
        name = " / ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)) if str(k) not in ("", "nan"))
        text = f"{name}: best layer {int(best['layer'])}, accuracy {fmt_number(best['accuracy'])}"
        if pd.notna(best.get("ci_low")) and pd.notna(best.get("ci_high")):
            text += f" [{fmt_number(best['ci_low'])}, {fmt_number(best['ci_high'])}]"
        extras = [f"{label} {fmt_number(best[c])}" for c, label in (("majority", "majority baseline"),
                                                                    ("control", "control task"),
                                                                    ("selectivity", "selectivity"),
                                                                    ("random_init", "random weights"))
                  if c in best.index and pd.notna(best[c])]
        out.append(text + (f" ({', '.join(extras)})" if extras else "") + ".")
    return out[:6]


def _mass_highlights(mass: pd.DataFrame) -> list[str]:
    if "layer" not in mass.columns:
        return []
    out = []
    for col, label in (("cls", "[CLS]"), ("sep", "[SEP]"), ("punct", "punctuation")):
        if col in mass.columns and mass[col].notna().any():
            row = mass.loc[mass[col].idxmax()]
            out.append(f"{label} {fmt_number(row[col])} at layer {int(row['layer'])}")
    return [f"Largest mean attention mass: {'; '.join(out)}."] if out else []


def _variant_highlights(v: pd.DataFrame) -> list[str]:
    if "variant" not in v.columns or len(v) < 2:
        return []
    base = v.iloc[0]
    out = []
    for _, row in v.iloc[1:].iterrows():
        parts = []
        if "accuracy" in v.columns and pd.notna(row["accuracy"]) and pd.notna(base["accuracy"]):
            parts.append(f"accuracy {row['accuracy'] - base['accuracy']:+.3f}")
        for col, label in (("size_mb", "size"), ("latency_ms_b1", "batch-1 latency")):
            if col in v.columns and pd.notna(row[col]) and pd.notna(base[col]) and base[col] > 0:
                parts.append(f"{label} x{row[col] / base[col]:.2f}")
        if parts:
            out.append(f"{row['variant']} vs {base['variant']}: {', '.join(parts)}.")
    return out


# ------------------------------------------------------------------ helpers
def _figures(run: RunFolder, section: str, blocks: list) -> None:
    for f in run.figures.get(section, []):
        name = f.stem.split("__", 1)[1].replace("_", " ")
        blocks.append(Block("figure", f, caption=name, source=f"figures/{f.name}"))


def _src(name: str) -> str:
    return f"tables/{name}.csv"


def _absent(section: Section, what: str) -> Section:
    section.note = f"Not in this run: {what}."
    return section


# ------------------------------------------------------------------ sections
def _overview(run: RunFolder) -> Section:
    s = Section("overview", "Overview")
    r = run.run
    cfg = r.get("config") if isinstance(r.get("config"), dict) else {}
    facts = []

    def show(v) -> str:
        if isinstance(v, dict):
            return ", ".join(f"{k}=[{show(w)}]" if isinstance(w, (list, tuple, dict)) else f"{k}={w}"
                             for k, w in v.items() if w not in (None, ""))
        if isinstance(v, (list, tuple)):
            return ", ".join(map(str, v))
        return str(v)

    for label, value in (("run", r.get("name")), ("model", cfg.get("model")), ("data", cfg.get("data")),
                         ("probekit", r.get("probekit_version")), ("started", r.get("started")),
                         ("finished", r.get("finished")), ("seeds", r.get("seeds")),
                         ("machine", r.get("machine"))):
        if label == "finished" and not value and r.get("started"):
            value = "not recorded (the run was still going, or stopped early)"
        if value not in (None, "", {}, []):
            facts.append((label, show(value)))
    timings = r.get("timings") or {}
    if timings:
        facts.append(("total stage time", pretty_seconds(sum(float(v) for v in timings.values()))))
    if facts:
        s.blocks.append(Block("facts", facts))
    if timings:
        cached = r.get("cached") or {}
        total = sum(float(v) for v in timings.values()) or 1.0
        bars = [(str(k), float(v), float(v) / total, bool(cached.get(k))) for k, v in timings.items()]
        s.blocks.append(Block("bars", bars, caption="Stage timings (in stage order; cached stages were reused)"))
    versions = r.get("versions") or {}
    if versions:
        df = pd.DataFrame({"package": list(versions), "version": [str(v) for v in versions.values()]})
        s.blocks.append(Block("table", Table.build(df, "Versions", max_rows=60)))
    fps = r.get("fingerprints") or {}
    if fps:
        df = pd.DataFrame({"store": list(fps), "fingerprint": [str(v) for v in fps.values()]})
        s.blocks.append(Block("table", Table.build(df, "Activation store fingerprints", max_rows=60)))
    text = run.config_text
    if text is None and cfg:
        text = json.dumps(cfg, indent=2, default=str)
    if text:
        s.blocks.append(Block("code", text, caption="Experiment config (config.yaml)" if run.config_text
                              else "Experiment config (from run.json)"))
    if not s.blocks:
        return _absent(s, "run.json and config.yaml")
    return s


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
        src = _src("probe_summary") if run.table("probe_summary") is not None else _src("report_probe_summary")
        lines = _probe_highlights(summ)
        if lines:
            s.blocks.append(Block("text", lines))
        s.blocks.append(Block("table", Table.build(
            shown, "Probe accuracy by layer (0 = embeddings): mean over seeds, 95% bootstrap interval; control "
                   "task, selectivity (task - control) and baselines", source=src, max_rows=max_rows, note=note)))
    exp = run.table("expected_layer")
    if exp is None and tidy is not None:
        exp = expected_layers(tidy)
        if not exp.empty:
            s.derived["expected_layer"] = exp
    if exp is not None and not exp.empty:
        src = _src("expected_layer") if run.table("expected_layer") is not None else _src("report_expected_layer")
        s.blocks.append(Block("table", Table.build(
            exp, "Expected layer (Tenney et al. 2019) and centre of gravity of the gain over the majority baseline",
            source=src, max_rows=max_rows)))
    _figures(run, "probes", s.blocks)
    if tidy is not None:
        s.blocks.append(Block("link", _src("probes"), caption=f"All probe results, tidy ({len(tidy):,} rows)"))
    if not s.blocks:
        return _absent(s, "probe tables (tables/probes.csv, probe_summary.csv) or probe figures")
    return s


def _attention(run: RunFolder, max_rows: int) -> Section:
    s = Section("attention", "Attention")
    mass = run.table("special_mass")
    if mass is not None:
        lines = _mass_highlights(mass)
        if lines:
            s.blocks.append(Block("text", lines))
        s.blocks.append(Block("table", Table.build(
            mass, "Mean attention mass per layer on [CLS], [SEP], punctuation and the token itself",
            source=_src("special_mass"), max_rows=max_rows)))
    heads = run.table("attention_heads")
    if heads is not None and {"layer", "metric", "value"} <= set(heads.columns):
        summ = head_summary(heads)
        s.derived["attention_layers"] = summ
        s.blocks.append(Block("table", Table.build(
            summ, f"Head statistics, mean over the heads of each layer ({len(heads):,} per-head rows in the "
                  "full table)", source=_src("attention_heads"), max_rows=max_rows)))
        if "entropy" in set(heads["metric"]):
            ent = heads[heads["metric"] == "entropy"].nsmallest(5, "value")
            keep = [c for c in ("variant", "layer", "head", "value") if c in ent.columns and ent[c].notna().any()]
            s.blocks.append(Block("table", Table.build(
                ent[keep].rename(columns={"value": "entropy"}),
                "The five most focused heads (lowest mean attention entropy, nats)", max_rows=5)))
    _figures(run, "attention", s.blocks)
    if not s.blocks:
        return _absent(s, "head statistics (tables/attention_heads.csv, special_mass.csv) or attention figures")
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
            source=_src("attribution_agreement"), max_rows=max_rows)))
    _figures(run, "attributions", s.blocks)
    scores = run.table("attributions")
    if scores is not None:
        s.blocks.append(Block("link", _src("attributions"), caption=f"All attribution scores ({len(scores):,} rows)"))
    if not s.blocks:
        return _absent(s, "attribution snippets (attributions/*.html) or tables")
    return s


def _variants(run: RunFolder, max_rows: int) -> Section:
    s = Section("variants", "Variants")
    v = run.table("variants")
    if v is not None:
        lines = _variant_highlights(v)
        if lines:
            s.blocks.append(Block("text", lines))
        s.blocks.append(Block("table", Table.build(
            v, "Variants: held-out accuracy, size and CPU latency (batch 1, ms) / throughput (batch 32, "
               "examples/s)", source=_src("variants"), max_rows=max_rows)))
    _figures(run, "variants", s.blocks)
    if not s.blocks:
        return _absent(s, "a variants table (tables/variants.csv) or variant figures")
    return s


def _layer_means(df: pd.DataFrame, measure_col: str) -> pd.DataFrame:
    keys = [c for c in ("variant",) if c in df.columns and df[c].notna().any()] + ["layer"]
    wide = df.pivot_table(index=keys, columns=measure_col, values="value", aggfunc="mean").reset_index()
    wide.columns.name = None
    wide["layer"] = wide["layer"].astype(int)
    return wide


def _comparison(run: RunFolder, max_rows: int) -> Section:
    s = Section("comparison", "Comparison")
    diag = run.table("compare_diagonal")
    if diag is not None and {"layer", "value"} <= set(diag.columns):
        col = "measure" if "measure" in diag.columns else "metric"
        wide = _layer_means(diag, col) if col in diag.columns else diag
        s.blocks.append(Block("table", Table.build(
            wide, "Layer-by-layer similarity to the base model (aligned layers)", source=_src("compare_diagonal"),
            max_rows=max_rows)))
    pdel = run.table("probe_deltas")
    if pdel is not None:
        s.blocks.append(Block("table", Table.build(pdel, "Probe accuracy deltas (variant - base)",
                                                   source=_src("probe_deltas"), max_rows=max_rows)))
    adel = run.table("attention_deltas")
    if adel is not None:
        if {"layer", "metric", "value"} <= set(adel.columns):
            s.blocks.append(Block("table", Table.build(
                _layer_means(adel, "metric"), f"Attention deltas per layer, mean over heads ({len(adel):,} per-head "
                                              "rows in the full table)", source=_src("attention_deltas"),
                max_rows=max_rows)))
        else:
            s.blocks.append(Block("table", Table.build(adel, "Attention deltas", source=_src("attention_deltas"),
                                                       max_rows=max_rows)))
    _figures(run, "compare", s.blocks)
    full = run.table("compare")
    if full is not None:
        s.blocks.append(Block("link", _src("compare"), caption=f"Full layer x layer matrices ({len(full):,} rows)"))
    if not s.blocks:
        return _absent(s, "comparison tables (tables/compare*.csv, probe_deltas.csv, attention_deltas.csv) or figures")
    return s


def build_sections(run: RunFolder, *, max_rows: int = 25) -> list[Section]:
    """Overview, Probes, Attention, Attributions, Variants, Comparison (and other figures, if any)."""
    builders = ((_overview, "overview", "Overview"), (_probes, "probes", "Probes"),
                (_attention, "attention", "Attention"), (_attributions, "attributions", "Attributions"),
                (_variants, "variants", "Variants"), (_comparison, "comparison", "Comparison"))
    sections = []
    for fn, sid, title in builders:
        try:
            sections.append(fn(run) if fn is _overview else fn(run, max_rows))
        except (ValueError, KeyError, TypeError) as exc:  # a malformed input spoils its section, not the report
            logger.warning("%s section of %s could not be built: %s", title, run.path, exc)
            sections.append(Section(sid, title, note=f"This section could not be built from the run's files: "
                                                     f"{type(exc).__name__}: {exc}"))
    if run.unsorted_figures:
        other = Section("other", "Other figures")
        for f in run.unsorted_figures:
            other.blocks.append(Block("figure", f, caption=f.stem.replace("_", " "), source=f"figures/{f.name}"))
        sections.append(other)
    return sections


def fact_text(v) -> str:
    """A fact's value as text (numbers rounded)."""
    return fmt_number(v) if isinstance(v, (int, float, np.number)) else str(v)


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes."""
    return path.relative_to(root).as_posix()
