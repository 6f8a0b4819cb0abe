"""The tables and figures of a comparison of one model (A) with one or more others (B: its variants).

:func:`compare_outputs` is called by the ``compare`` stage of ``probekit run``
(the fine-tuned model against each variant) and by ``probekit compare A B``
(one pair), so both write the same files:

- ``tables/compare.csv``: every cell of every layer x layer matrix
  (``variant, measure, level, site, layer, site_b, layer_b, value``; ``site``
  of A, ``site_b`` of B);
- ``tables/compare_diagonal.csv``: the same columns along the layer map;
- ``tables/compare_best.csv``: for each site of B, its most similar site of A;
- ``tables/attention_deltas.csv``: per head, Jensen-Shannon divergence and
  correlation of the patterns (when both hold attention);
- ``tables/probe_deltas.csv``: per task and aligned layer, A's and B's probe
  accuracy and the paired delta with its interval (when probe deltas are given);
- figures ``compare__diagonal_<measure>``, ``compare__<measure>_<variant>``,
  ``compare__attention_jsd``, ``compare__probe_deltas``;
- ``summaries/compare.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

from probekit.model import site_layer
from probekit.plots import diagonal_curves, layer_head_grid, probe_delta_heatmap, similarity_heatmap
from probekit.report import markdown_table
from probekit.results import Results
from probekit.runfolder import Outputs

__all__ = ["compare_outputs", "probe_delta_table"]

_CELLS = ["variant", "measure", "level", "site", "layer", "site_b", "layer_b", "value"]
_ATTENTION = ("attention_jsd_bits", "attention_corr")


def _cells(name: str, cmp, diagonal: bool) -> list[dict]:
    rows = []
    for measure, m in cmp.matrices.items():
        pairs = cmp.layer_map.items() if diagonal else ((a, b) for a in m.index for b in m.columns)
        for a, b in pairs:
            rows.append({"variant": name, "measure": measure, "level": cmp.level, "site": a, "layer": site_layer(a),
                         "site_b": b, "layer_b": site_layer(b), "value": float(m.loc[a, b])})
    return rows


def _best(name: str, cmp) -> pd.DataFrame:
    parts = []
    for m in cmp.measures:
        b = cmp.best_matches(m)
        parts.append(b.assign(variant=name, measure=m)[["variant", "measure", "site", "best", "value", "margin",
                                                         "mapped", "correct"]]
                     .rename(columns={"site": "site_b", "best": "best_a", "mapped": "mapped_a"}))
    return pd.concat(parts, ignore_index=True)


def probe_delta_table(res: Results | pd.DataFrame, variant: str) -> pd.DataFrame:
    """One row per task and aligned layer of :func:`probekit.compare.probe_deltas` rows (from two suites).

    Columns ``variant, task, site, layer, site_b, accuracy_a, accuracy_b, delta, ci_low, ci_high``: A's and B's
    probe accuracy (seed means) and the paired delta B - A with its bootstrap interval.
    """
    res = res.to_frame() if isinstance(res, Results) else res
    keys = ["task", "site", "layer", "site_b"]
    wide = res.pivot_table(index=keys, columns="metric", values="value", aggfunc="first")
    ci = res[res["metric"] == "delta_accuracy_mean"].set_index(keys)[["ci_low", "ci_high"]]
    out = pd.DataFrame({"accuracy_a": wide["accuracy_a"], "accuracy_b": wide["accuracy_b"],
                        "delta": wide["delta_accuracy_mean"]}).join(ci).reset_index()
    out.insert(0, "variant", variant)
    return out.sort_values(["task", "layer"], ignore_index=True)


def _matrix_plot(cmp, measure: str, name: str):
    frame = cmp.matrices[measure]
    vmax = max(1.0, float(frame.values.max())) if measure == "procrustes" else 1.0
    return similarity_heatmap(frame, title=f"{measure} ({cmp.level} level): A rows, {name} columns", vmax=vmax)


def _summary(comparisons: Mapping, tables: dict[str, pd.DataFrame]) -> str:
    first = next(iter(comparisons.values()))
    lines = [f"# Comparison: {first.model or 'A'} (A) vs {', '.join(comparisons)} (B)", ""]
    for name, cmp in comparisons.items():
        lines += [f"- {name}: level {cmp.level}; rows per measure "
                  + ", ".join(f"{m} {n:,}" for m, n in cmp.rows_used.items())
                  + "; layer map " + ", ".join(f"{a} -> {b}" for a, b in cmp.layer_map.items())]
    diag = tables["compare_diagonal"].pivot_table(index=["variant", "site", "layer", "site_b"], columns="measure",
                                                  values="value", sort=False).reset_index()
    diag.columns.name = None
    lines += ["", markdown_table(diag, caption="Aligned layers")]
    lines += [markdown_table(tables["compare_best"].drop(columns=["variant"] if len(comparisons) == 1 else []),
                             caption="Most similar layer of A for each layer of B (procrustes is a distance: "
                                     "smallest wins; every other measure: largest)")]
    att = tables.get("attention_deltas")
    if att is not None and len(att):
        per_layer = att.pivot_table(index=["variant", "layer"], columns="metric", values="value",
                                    aggfunc="mean").reset_index()
        per_layer.columns.name = None
        lines += [markdown_table(per_layer, caption="Attention deltas (mean over heads)")]
    pdel = tables.get("probe_deltas")
    if pdel is not None and len(pdel):
        lines += [markdown_table(pdel, caption="Probe deltas (B - A, seed mean, paired bootstrap over test "
                                               "examples)")]
    return "\n".join(lines)


def compare_outputs(comparisons: Mapping, out: Outputs, *,
                    probe_deltas: Mapping[str, Results] | None = None) -> dict[str, pd.DataFrame]:
    """Write the comparison tables, figures and summary (see the module docstring).

    Parameters
    ----------
    comparisons : mapping name -> Comparison
        :func:`probekit.compare.compare` of A (the same store each time) with each B, by B's name.
    out : Outputs
    probe_deltas : mapping name -> Results, optional
        :func:`probekit.compare.probe_deltas` of A's and each B's probe suites.

    Returns
    -------
    dict
        The tables written, by name.
    """
    if not comparisons:
        raise ValueError("compare_outputs needs at least one comparison")
    tables = {"compare": pd.DataFrame([r for n, c in comparisons.items() for r in _cells(n, c, False)],
                                      columns=_CELLS),
              "compare_diagonal": pd.DataFrame([r for n, c in comparisons.items() for r in _cells(n, c, True)],
                                               columns=_CELLS),
              "compare_best": pd.concat([_best(n, c) for n, c in comparisons.items()], ignore_index=True)}
    att = [c.results.to_frame().assign(variant=n) for n, c in comparisons.items()]
    att = pd.concat([a[a["metric"].isin(_ATTENTION)] for a in att], ignore_index=True)
    if len(att):
        tables["attention_deltas"] = att
    if probe_deltas:
        tables["probe_deltas"] = pd.concat([probe_delta_table(r, n) for n, r in probe_deltas.items()],
                                           ignore_index=True)
    for name, table in tables.items():
        out.table(table, name)
    tidy = pd.concat([c.results.to_frame().assign(variant=n, model=None) for n, c in comparisons.items()],
                     ignore_index=True)
    for m in dict.fromkeys(m for c in comparisons.values() for m in c.measures):
        out.figure(lambda m=m: diagonal_curves(tidy, measure=m, title=f"{m.replace('_', ' ')} of aligned layers "
                                                                         "(A vs each B)"), "compare", f"diagonal_{m}")
    for name, cmp in comparisons.items():
        for m in cmp.measures:
            out.figure(lambda c=cmp, m=m, n=name: _matrix_plot(c, m, n), "compare",
                       f"{m}_{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}")
    if len(att):
        jsd = att[att["metric"] == "attention_jsd_bits"].groupby(["layer", "head"], as_index=False)["value"].mean()
        out.figure(lambda: layer_head_grid(jsd, title="attention JSD (bits) of B vs A, mean over B", fmt=".2f"),
                   "compare", "attention_jsd")
    if probe_deltas:
        pd_tidy = pd.concat([r.to_frame().assign(variant=n, model=None) for n, r in probe_deltas.items()],
                            ignore_index=True)
        out.figure(lambda: probe_delta_heatmap(pd_tidy), "compare", "probe_deltas")
    out.summary("compare", _summary(comparisons, tables))
    return tables
