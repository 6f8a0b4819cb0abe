"""The report's first section: what the run found, in sentences computed from its tables.

Best probe layers with their interval, baselines, selectivity and expected
layer; where attention goes; how far attribution methods agree; what each
variant changed (accuracy, size, latency, similarity to the base, probe and
attention deltas by layer). Layers are on the one layer axis of every
results table (0 = embeddings, block ``i`` = ``i + 1``).
"""

from __future__ import annotations

import pandas as pd

from probekit.report._blocks import Block, Section
from probekit.report._derived import expected_layers, probe_summary
from probekit.report._format import fmt_number
from probekit.runfolder import RunFolder

__all__ = ["findings_section", "probe_findings", "variant_warnings", "stale_lines"]


def _ci(row, lo: str = "ci_low", hi: str = "ci_high") -> str:
    if lo in row.index and hi in row.index and pd.notna(row[lo]) and pd.notna(row[hi]):
        return f" [{fmt_number(row[lo])}, {fmt_number(row[hi])}]"
    return ""


def _own_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The model's own rows (no variant)."""
    if "variant" not in df.columns:
        return df
    return df[df["variant"].isna() | (df["variant"].astype(str) == "")]


def probe_findings(summ: pd.DataFrame, expected: pd.DataFrame | None = None, *, limit: int = 6) -> list[str]:
    """One sentence per task and probe: best layer, accuracy and interval, baselines, selectivity, expected layer.

    Examples
    --------
    >>> summ = pd.DataFrame({"task": "upos", "probe": "linear", "layer": [0, 1, 2],
    ...                      "accuracy": [0.8, 0.9, 0.85], "ci_low": [0.78, 0.88, 0.83],
    ...                      "ci_high": [0.82, 0.92, 0.87], "majority": 0.2, "selectivity": [0.3, 0.2, 0.1]})
    >>> for part in probe_findings(summ)[0].split("; "):
    ...     print(part)
    upos / linear: best layer 1, accuracy 0.900 [0.880, 0.920] (majority baseline 0.200)
    selectivity 0.200 there, highest 0.300 at layer 0.
    """
    if not {"task", "layer", "accuracy"} <= set(summ.columns):
        return []
    df = _own_rows(summ)
    keys = [c for c in ("model", "task", "probe") if c in df.columns]
    exp = _own_rows(expected) if expected is not None and not expected.empty else None
    out = []
    for key, g in df.groupby(keys, sort=False):
        g = g.dropna(subset=["accuracy"])
        if g.empty:
            continue
        key = key if isinstance(key, tuple) else (key,)
        best = g.loc[g["accuracy"].idxmax()]
        name = " / ".join(str(k) for k in key if str(k) not in ("", "nan"))
        text = f"{name}: best layer {int(best['layer'])}, accuracy {fmt_number(best['accuracy'])}{_ci(best)}"
        extras = [f"{label} {fmt_number(best[c])}" for c, label in (("majority", "majority baseline"),
                                                                    ("random_init", "random weights"),
                                                                    ("control", "control task"))
                  if c in best.index and pd.notna(best[c])]
        text += f" ({', '.join(extras)})" if extras else ""
        if "selectivity" in g.columns and g["selectivity"].notna().any():
            top = g.loc[g["selectivity"].idxmax()]
            text += f"; selectivity {fmt_number(best['selectivity'])} there"
            if int(top["layer"]) != int(best["layer"]):
                text += f", highest {fmt_number(top['selectivity'])} at layer {int(top['layer'])}"
        if exp is not None and "expected_layer" in exp.columns:
            match = exp
            for col, val in zip(keys, key):
                if col in match.columns:
                    match = match[match[col].astype(str) == str(val)]
            if len(match) and pd.notna(match["expected_layer"].iloc[0]):
                text += f"; expected layer {match['expected_layer'].iloc[0]:.2f}"
        out.append(text + ".")
    return out[:limit]


def _attention_findings(mass: pd.DataFrame | None, heads: pd.DataFrame | None) -> list[str]:
    out = []
    if mass is not None and "layer" in mass.columns:
        parts = []
        for col, label in (("cls", "[CLS]"), ("sep", "[SEP]"), ("punct", "punctuation")):
            if col in mass.columns and mass[col].notna().any():
                row = mass.loc[mass[col].idxmax()]
                parts.append(f"{label} {fmt_number(row[col])} at layer {int(row['layer'])}")
        if parts:
            out.append(f"Largest mean attention mass: {'; '.join(parts)}.")
    if heads is not None and {"layer", "head", "metric", "value"} <= set(heads.columns):
        ent = _own_rows(heads)
        ent = ent[ent["metric"] == "entropy"]
        if len(ent):
            r = ent.loc[ent["value"].idxmin()]
            block = f" (block {int(r['block'])})" if "block" in r.index and pd.notna(r["block"]) else ""
            out.append(f"Most focused head: layer {int(r['layer'])}{block}, head {int(r['head'])}, mean attention "
                       f"entropy {fmt_number(r['value'])} nats.")
    return out


def _attribution_findings(agree: pd.DataFrame | None) -> list[str]:
    if agree is None or not {"a", "b", "spearman"} <= set(agree.columns):
        return []
    g = agree.groupby(["a", "b"], sort=False)["spearman"].agg(["mean", "count"]).reset_index()
    parts = [f"{r.a} vs {r.b} {fmt_number(r['mean'])}" + (f" ({int(r['count'])} sentences)"
                                                          if "example" in agree.columns else "")
             for _, r in g.iterrows()]
    return [f"Attribution methods, mean Spearman agreement: {'; '.join(parts)}."] if parts else []


def variant_warnings(v: pd.DataFrame | None) -> list[str]:
    """``"variant: message"`` for each training warning in a variants table's ``warnings`` column."""
    if v is None or "warnings" not in v.columns or "variant" not in v.columns:
        return []
    out = []
    for _, row in v.iterrows():
        text = row["warnings"]
        if isinstance(text, str) and text.strip():
            out += [f"{row['variant']}: {m}" for m in text.splitlines() if m.strip()]
    return out


def _variant_findings(v: pd.DataFrame | None) -> list[str]:
    warned = [f"Warning: {m}" for m in variant_warnings(v)]
    if v is None or "variant" not in v.columns or len(v) < 2:
        return warned
    base = v.iloc[0]
    out = warned
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


def _comparison_findings(diag, pdel, adel) -> list[str]:
    out = []
    if diag is not None and {"variant", "measure", "layer", "value"} <= set(diag.columns):
        measures = list(dict.fromkeys(diag["measure"].astype(str)))
        pick = "linear_cka" if "linear_cka" in measures else measures[0]
        d = diag[diag["measure"].astype(str) == pick]
        label = pick.split(":")[0].replace("_", " ")
        for short, name in (("cka", "CKA"), ("svcca", "SVCCA"), ("pwcca", "PWCCA")):
            label = label.replace(short, name)
        for name, g in d.groupby("variant", sort=False):
            low = g.loc[g["value"].idxmin()]
            out.append(f"{name}: {label} with the base {fmt_number(g['value'].min())}-"
                       f"{fmt_number(g['value'].max())} along the layer map (lowest at layer {int(low['layer'])}).")
    if pdel is not None and {"variant", "layer", "delta"} <= set(pdel.columns):
        for name, g in pdel.groupby("variant", sort=False):
            g = g.dropna(subset=["delta"])
            if g.empty:
                continue
            r = g.loc[g["delta"].abs().idxmax()]
            where = f"layer {int(r['layer'])}"
            if pd.notna(r["site_b"]) and r["site_b"] != r["site"]:
                where += f" ({r['site']} vs the variant's {r['site_b']})"
            text = f"{name}: largest probe accuracy change {fmt_number(r['delta'])}{_ci(r)} at {where} ({r['task']})"
            if g["ci_low"].notna().any():
                sig = int(((g["ci_low"] > 0) | (g["ci_high"] < 0)).sum())
                text += f"; {sig} of {len(g)} layer intervals exclude 0"
            out.append(text + ".")
    if adel is not None and {"variant", "layer", "metric", "value"} <= set(adel.columns):
        jsd = adel[adel["metric"] == "attention_jsd_bits"]
        for name, g in jsd.groupby("variant", sort=False):
            per = g.groupby("layer")["value"].mean()
            if len(per):
                out.append(f"{name}: attention changes most at layer {int(per.idxmax())} (mean Jensen-Shannon "
                           f"divergence {fmt_number(per.max())} bits over its heads; least {fmt_number(per.min())} "
                           f"at layer {int(per.idxmin())}).")
    return out


def findings_section(run: RunFolder) -> Section:
    """The opening section: one list of findings per part of the run that is present."""
    s = Section("findings", "Findings")
    tidy = run.table("probes")
    summ = run.table("probe_summary")
    if summ is None and tidy is not None:
        summ = probe_summary(tidy)
    exp = run.table("expected_layer")
    if exp is None and tidy is not None:
        exp = expected_layers(tidy)
    parts = (("Probes (layer 0 = embeddings, block i = layer i + 1)",
              probe_findings(summ, exp) if summ is not None else []),
             ("Attention", _attention_findings(run.table("special_mass"), run.table("attention_heads"))),
             ("Attributions", _attribution_findings(run.table("attribution_agreement"))),
             ("Variants", _variant_findings(run.table("variants"))),
             ("Comparison with the base model, by layer of the base",
              _comparison_findings(run.table("compare_diagonal"), run.table("probe_deltas"),
                                   run.table("attention_deltas"))))
    if run.stale:
        s.blocks.append(Block("text", stale_lines(run.stale), caption="Left out: results of other settings"))
    for caption, lines in parts:
        if lines:
            s.blocks.append(Block("text", lines, caption=caption))
    if not s.blocks:
        s.note = "No findings to report: the run has no result tables."
    return s


def stale_lines(stale: dict[str, str]) -> list[str]:
    """One sentence per reason: which files were left out of the report and why.

    Examples
    --------
    >>> stale_lines({"tables/probes.csv": "stage probes was run with other settings",
    ...              "figures/probes__curves.png": "stage probes was run with other settings"})[0][:60]
    'Not shown, as stage probes was run with other settings: tabl'
    """
    by_reason: dict[str, list[str]] = {}
    for rel, why in stale.items():
        by_reason.setdefault(why, []).append(rel)
    out = [f"Not shown, as {why}: {', '.join(files)}." for why, files in by_reason.items()]
    out.append("Run the config again (probekit run) to bring them up to date; the findings below use only the "
               "results of this config.")
    return out
