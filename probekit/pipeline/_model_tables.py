"""The tables and figures of the analyses that run the model: attribution and amnesic probing.

:func:`attribution_outputs` is called by the ``attribution`` stage and by
``probekit attribute``; :func:`amnesic_outputs` by ``probekit amnesic`` and
the ``amnesic`` stage. Both write through :class:`probekit.runfolder.Outputs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from probekit.attribution import agreement, agreement_results, attribution_results
from probekit.interventions import amnesic_table
from probekit.plots import amnesic_plot, attribution_html, attribution_png
from probekit.report import markdown_table
from probekit.results import Results
from probekit.runfolder import Outputs

__all__ = ["attribution_outputs", "amnesic_outputs"]


def _score_rows(by_method: Mapping[str, list]) -> list[dict]:
    rows = []
    for m, atts in by_method.items():
        for i, a in enumerate(atts):
            err = a.completeness_error
            for pos, (tok, s) in enumerate(zip(a.tokens, a.scores)):
                rows.append({"example": i, "method": m, "position": pos, "token": tok, "score": float(s),
                             "target": a.target, "f_input": a.f_input, "completeness_error": err, "delta": a.delta})
    return rows


def attribution_outputs(by_method: Mapping[str, list], out: Outputs, *, special_tokens: Sequence[str] = (),
                        label_names: Mapping[int, str] | None = None, gold: Sequence | None = None,
                        task: str = "attribution", model: str | None = None, variant: str | None = None,
                        split: str | None = None) -> dict[str, pd.DataFrame]:
    """Attribution snippets, figures and tables of the same examples attributed by one or more methods.

    Writes ``attributions/example_{k}.html`` and ``figures/attributions__example_{k}.png`` (every method side
    by side), ``tables/attributions.csv`` (tidy rows, see :func:`probekit.attribution.attribution_results`, and
    with two or more methods their agreement, see :func:`probekit.attribution.agreement_results`),
    ``tables/attribution_scores.csv`` (``example, method, position, token, score, target, f_input,
    completeness_error, delta``) and, with two or more methods, ``tables/attribution_agreement.csv`` (Spearman
    correlation of every pair of methods per example, over the tokens not in ``special_tokens``).

    Parameters
    ----------
    by_method : mapping method -> list of Attribution
        One attribution per example for each method, all over the same examples.
    out : Outputs
    special_tokens : sequence of str
        Tokens left out of the agreement (e.g. the tokenizer's ``all_special_tokens``).
    label_names : mapping class index -> name, optional
        Names of the predicted (and gold) classes in the titles.
    gold : sequence, optional
        The gold class of each example (shown in the titles).
    task, model, variant, split : str, optional
        Context columns of the tidy rows.

    Returns
    -------
    dict
        The tables written, by name.
    """
    methods = list(by_method)
    if not methods:
        raise ValueError("attribution_outputs needs at least one method")
    names = dict(label_names or {})
    first = by_method[methods[0]]
    for k, a in enumerate(first):
        scores = {m: np.asarray(by_method[m][k].scores, float) for m in methods}
        title = f"example {k}: predicted {names.get(a.target, a.target)}"
        if gold is not None:
            title += f", gold {names.get(int(gold[k]), gold[k])}"
        out.attribution(attribution_html(a.tokens, scores, title=title), f"example_{k}")
        out.figure(lambda t=a.tokens, s=scores, ti=title: attribution_png(t, s, title=ti), "attributions",
                   f"example_{k}")
    context = {"task": task, "model": model, "variant": variant, "split": split}
    tidy = attribution_results(by_method, **context)
    tables = {"attribution_scores": pd.DataFrame(_score_rows(by_method))}
    if len(methods) > 1:
        special = set(special_tokens)
        content = [np.array([t not in special for t in a.tokens]) for a in first]
        agree = agreement({m: [a.scores for a in atts] for m, atts in by_method.items()}, content=content)
        tables["attribution_agreement"] = agree
        tidy = tidy + agreement_results(agree, per_example=True, **context)
    tables = {"attributions": tidy.to_frame(), **tables}
    for name, table in tables.items():
        out.table(table, name)
    return tables


def amnesic_outputs(results: Results, out: Outputs) -> dict[str, pd.DataFrame]:
    """Tables ``amnesic`` (tidy rows of :func:`probekit.interventions.amnesic_probe`) and ``amnesic_summary``
    (one row per task and site: see :func:`probekit.interventions.amnesic_table`), the figure
    ``amnesic__by_layer`` and ``summaries/amnesic.md``.

    Returns the tables written, by name.
    """
    tidy = results.to_frame()
    table = amnesic_table(results)
    tables = {"amnesic": tidy, "amnesic_summary": table}
    for name, t in tables.items():
        out.table(t, name)
    out.figure(lambda: amnesic_plot(table), "amnesic", "by_layer")
    out.summary("amnesic", markdown_table(table, caption="Amnesic probing: the property erased at each site"))
    return tables

