"""One function per analysis that turns its results into tables and figures: probes and attention.

``probekit run`` stages and the ``probekit probe`` / ``attention`` commands
both call :func:`probe_outputs` (tidy probe rows, the per-layer summary,
expected layers, best layers, curves, ``summaries/probes.md``) and
:func:`attention_outputs` (head statistics, the special-token mass by layer,
grids, one example's heatmaps and rollout, heads as parsers), writing through
:class:`probekit.runfolder.Outputs`. So one analysis gives one answer,
whichever door it came in by, and ``probekit report`` reads either folder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from probekit.attention import AttentionSuite, special_mass
from probekit.model import Site
from probekit.plots import (
    attention_heatmap,
    layer_head_grid,
    pattern_frame,
    probe_curves,
    probe_heatmap,
    selectivity_curves,
)
from probekit.report import expected_layers, markdown_table, probe_summary
from probekit.results import Results
from probekit.runfolder import Outputs

__all__ = ["probe_outputs", "best_layers", "attention_outputs"]

logger = logging.getLogger(__name__)


def best_layers(summary: pd.DataFrame) -> pd.DataFrame:
    """The best layer of each (model, variant,) task and probe in a :func:`probekit.report.probe_summary` table.

    Examples
    --------
    >>> s = pd.DataFrame({"task": ["t", "t"], "probe": ["linear"] * 2, "layer": [1, 2], "accuracy": [0.6, 0.8]})
    >>> best_layers(s).values.tolist()
    [['t', 'linear', 2, 0.8]]
    """
    if summary.empty:
        return summary
    keys = [c for c in ("model", "variant", "task", "probe") if c in summary.columns]
    best = summary.loc[summary.groupby(keys, sort=False)["accuracy"].idxmax()]
    return best.reset_index(drop=True)


def probe_outputs(results: Results, out: Outputs, *, controls: bool = True) -> dict[str, pd.DataFrame]:
    """Tables ``probes`` (tidy rows), ``probe_summary``, ``expected_layer``, ``probe_best``, the probe figures
    and ``summaries/probes.md`` (the best layers).

    Returns the tables written, by name.
    """
    df = results.to_frame()
    summary = probe_summary(df)
    tables = {"probes": df, "probe_summary": summary, "expected_layer": expected_layers(df),
              "probe_best": best_layers(summary)}
    for name, table in tables.items():
        out.table(table, name)
    real = df[df["variant"].isna()]
    out.figure(lambda: probe_curves(df), "probes", "curves")
    out.figure(lambda: probe_heatmap(real), "probes", "heatmap")
    if controls:
        out.figure(lambda: selectivity_curves(real), "probes", "selectivity")
    out.summary("probes", "# Best layer of each task and probe\n\n" + markdown_table(tables["probe_best"]))
    return tables


def _mass_plot(mass: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for col in ("cls", "sep", "punct", "self"):
        if col in mass.columns:
            ax.plot(mass["layer"], mass[col], marker="o", label=f"[{col.upper()}]" if col in ("cls", "sep") else col)
    ax.set_xlabel("layer (block i's attention is layer i + 1)")
    ax.set_ylabel("mean attention mass")
    ax.set_xticks(mass["layer"])
    ax.legend(frameon=False)
    ax.set_title("attention mass by layer")
    fig.tight_layout()
    return fig


def heatmap_layers(suite: AttentionSuite, layers: Sequence[int] | None) -> list[int]:
    """The layers to draw (layer axis: block i's pattern is layer i + 1), checked against the stored ones.

    Default: the first, middle and last stored layers.

    Raises
    ------
    ValueError
        A layer has no stored attention pattern.
    """
    stored = [b + 1 for b in suite.blocks]
    if layers is None:
        return sorted({stored[0], stored[len(stored) // 2], stored[-1]})
    for lay in layers:
        if lay not in stored:
            raise ValueError(f"layer {lay} has no stored attention pattern; the stored layers are {stored} "
                             "(block i's pattern L{i}.attn.pattern is layer i + 1; layer 0, the embeddings, has none)")
    return list(dict.fromkeys(layers))


def attention_outputs(suite: AttentionSuite, out: Outputs, *, example: int = 0, layers: Sequence[int] | None = None,
                      gold: tuple[list, list] | None = None, progress: bool = False) -> dict[str, pd.DataFrame]:
    """Attention tables and figures of a store.

    Tables ``attention_heads`` (every head statistic) and ``special_mass``;
    figures ``attention__special_mass``, ``attention__grid_{sep,cls,entropy}``
    (layer x head), ``attention__heatmap_ex{I}_L{B}`` (example ``I``, block
    ``B``'s pattern, mean over heads, one per layer of ``layers``) and
    ``attention__rollout_ex{I}`` (when the store holds every block from 0).
    With ``gold`` (heads and relations of the store's sentences), also
    tables ``dependency_heads`` (every head as a parser) and
    ``dependency_best`` (best head per relation beside the fixed-offset
    baseline).

    Returns the tables written, by name.

    Raises
    ------
    ValueError
        ``example`` is outside the store, or a layer has no stored pattern.
    """
    import torch

    store = suite.store
    if not 0 <= example < store.n_examples:
        raise ValueError(f"example {example} is outside the store's {store.n_examples} examples")
    layers = heatmap_layers(suite, layers)
    sdf = suite.head_statistics(progress=progress).to_frame()
    mass = special_mass(sdf)
    tables = {"attention_heads": sdf, "special_mass": mass}
    out.table(sdf, "attention_heads")
    out.table(mass, "special_mass")
    out.figure(lambda: _mass_plot(mass), "attention", "special_mass")
    for metric in ("sep", "cls", "entropy"):
        grid = sdf[sdf["metric"] == metric]
        out.figure(lambda g=grid, m=metric: layer_head_grid(g, title=f"{m} by layer and head"), "attention",
                   f"grid_{metric}")
    tokens = suite.tokenizer.convert_ids_to_tokens(store.input_ids(example).tolist())
    for lay in layers:
        block = lay - 1
        p = torch.from_numpy(np.asarray(store[Site(block, "attn.pattern")].example(example), np.float32))
        out.figure(lambda p=p, lay=lay, block=block: attention_heatmap(
            pattern_frame(p, tokens, head="mean"),
            title=f"example {example}, layer {lay} (L{block}.attn.pattern), mean over heads"),
                   "attention", f"heatmap_ex{example}_L{block}")
    if suite.blocks == list(range(len(suite.blocks))):
        roll = suite.rollout(example)[-1]
        frame = pd.DataFrame(roll, index=tokens, columns=tokens)
        out.figure(lambda: attention_heatmap(
            frame, title=f"example {example}, attention rollout through layer {len(suite.blocks)}"),
                   "attention", f"rollout_ex{example}")
    else:
        logger.info("rollout skipped: it needs every block's pattern from block 0, the store has blocks %s",
                    suite.blocks)
    if gold is not None:
        results, best, _ = suite.dependency_heads(*gold, progress=progress)
        tables["dependency_heads"] = results.to_frame()
        tables["dependency_best"] = best
        out.table(tables["dependency_heads"], "dependency_heads")
        out.table(best, "dependency_best")
    return tables
