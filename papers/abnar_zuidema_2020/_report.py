"""results.csv, correlations.png and results.md of the Abnar & Zuidema check; the verdict comes from the numbers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from probekit import Results  # noqa: E402

SOURCES = ("raw", "rollout", "flow")
COLORS = {"raw": "C0", "rollout": "C1", "flow": "C2"}
TITLES = {"table1": "Table 1: agreement model vs blank-out",
          "table2": "Table 2: agreement model vs input gradients",
          "table3": "Table 3: sentiment model vs input gradients"}


def ours(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """``source, layer, value, ci_low, ci_high, sd, n`` of one table's correlation rows."""
    df = frame[(frame["task"] == table) & frame["metric"].astype(str).str.startswith("spearman:")].copy()
    df["source"] = df["metric"].str.split("~").str[1]
    df["layer"] = df["layer"].astype(int)
    df["sd"] = [e["sd"] for e in df["extra"]]
    df["n"] = [e["n"] for e in df["extra"]]
    return df[["source", "layer", "value", "ci_low", "ci_high", "sd", "n"]].set_index(["source", "layer"])


def _cell(r) -> str:
    return f"{r.value:.2f} ± {r.sd:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"


def _rows(df: pd.DataFrame, paper: dict) -> str:
    lines = []
    for s in SOURCES:
        for layer in sorted({lay for (src, lay) in paper if src == s}):
            p = paper[(s, layer)]
            mine = _cell(df.loc[(s, layer)]) if (s, layer) in df.index else "-"
            lines.append(f"| {s} | {layer} | {p[0]:.2f} ± {p[1]:.2f} | {mine} |")
    return "\n".join(lines)


def _every_layer(df: pd.DataFrame) -> str:
    lines = []
    for s in SOURCES:
        if (s, 1) in df.index:
            lines.append(f"| {s} | " + " | ".join(f"{df.loc[(s, lay)].value:.2f}" for lay in range(1, 7)) + " |")
    return "\n".join(lines)


def _plot(frame: pd.DataFrame, paper: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
    for ax, table in zip(axes, ("table1", "table2", "table3")):
        df = ours(frame, table).reset_index()
        for s in SOURCES:
            d = df[df["source"] == s].sort_values("layer")
            ax.errorbar(d["layer"], d["value"], yerr=[d["value"] - d["ci_low"], d["ci_high"] - d["value"]],
                        marker="o", capsize=3, color=COLORS[s], label=f"{s} (ours)")
            pts = sorted((lay, v[0]) for (src, lay), v in paper[table].items() if src == s)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ls=":", marker="x", color=COLORS[s], alpha=0.8,
                    label=f"{s} (paper)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("layer")
        ax.set_title(TITLES[table], fontsize=9)
    axes[0].set_ylabel("Spearman (mean, 95% CI)")
    axes[2].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _trend(first: float, last: float) -> str:
    if last - first > 0.05:
        return "rises"
    return "falls" if last - first < -0.05 else "stays flat"


def _verdict(frame: pd.DataFrame, paper: dict, sent: dict, sv: dict, sv_accuracy: tuple[float, str]) -> list[str]:
    lines = ["## What holds and what does not", ""]
    t3 = ours(frame, "table3")
    v3 = {k: r.value for k, r in t3.iterrows()}
    cells = [v3[k] for k in paper["table3"]]
    near = [k for k in paper["table3"] if abs(v3[k] - paper["table3"][k][0]) <= 0.1]
    top = {lay: max(SOURCES, key=lambda s: v3[(s, lay)]) for lay in (1, 3, 5, 6)}
    lines.append(f"- Table 3 (sentiment, input gradients): the paper's correlations are all low (0.08-0.14); ours "
                 f"are low too, {min(cells):.2f} to {max(cells):.2f} at the same layers (within 0.1 of the paper's "
                 f"in {len(near)} of {len(cells)} cells). The highest of the three at layers 1, 3, 5, 6: "
                 f"{', '.join(top[lay] for lay in (1, 3, 5, 6))}.")
    better = [lay for lay in (3, 5, 6)
              if v3[("rollout", lay)] > v3[("raw", lay)] and v3[("flow", lay)] > v3[("raw", lay)]]
    lines.append("- The paper finds rollout and flow slightly above raw attention on the sentiment model; here both "
                 f"are above raw attention at layer(s) {', '.join(map(str, better)) or 'none'} of 3, 5, 6, so that "
                 f"part {'holds' if len(better) == 3 else 'does not hold' if not better else 'holds only partly'}.")
    for table, what in (("table1", "blank-out"), ("table2", "input gradients")):
        t = ours(frame, table)
        v = {k: r.value for k, r in t.iterrows()}
        low = {k: r.ci_low for k, r in t.iterrows()}
        hi = {k: r.ci_high for k, r in t.iterrows()}
        p = paper[table]
        beat = [lay for lay in range(2, 7) if min(low[("rollout", lay)], low[("flow", lay)]) > hi[("raw", lay)]]
        n = "Table 1" if table == "table1" else "Table 2"
        trend = {src: _trend(v[(src, 1)], v[(src, 6)]) for src in SOURCES}
        lines.append(f"- {n} (agreement model, {what}): rollout and flow above raw attention with separated "
                     f"intervals at layer(s) {', '.join(map(str, beat)) or 'none'} of 2-6 (paper: every layer 2-6). "
                     f"Raw attention {trend['raw']} from layer 1 to 6 "
                     f"({v[('raw', 1)]:.2f} to {v[('raw', 6)]:.2f}; paper {p[('raw', 1)][0]:.2f} to "
                     f"{p[('raw', 6)][0]:.2f}, lowest at layer 3); rollout {trend['rollout']} "
                     f"({v[('rollout', 1)]:.2f} to {v[('rollout', 6)]:.2f}; paper {p[('rollout', 1)][0]:.2f} to "
                     f"{p[('rollout', 6)][0]:.2f}, rising); flow {trend['flow']} "
                     f"({v[('flow', 1)]:.2f} to {v[('flow', 6)]:.2f}; paper {p[('flow', 1)][0]:.2f} to "
                     f"{p[('flow', 6)][0]:.2f}).")
        flow_vs = [lay for lay in range(2, 7) if v[("flow", lay)] > v[("rollout", lay)]]
        theirs = [lay for lay in range(2, 7) if p[("flow", lay)][0] > p[("rollout", lay)][0]]
        lines.append(f"  Flow above rollout at layer(s) {', '.join(map(str, flow_vs)) or 'none'} of 2-6 "
                     f"(paper: {', '.join(map(str, theirs)) or 'none'}).")
    acc = sv["accuracy"]
    by = ", ".join(f"{k}{'+' if k == 2 else ''} attractor(s): {v:.3f} (n={n})"
                   for k, (v, n) in sorted(sv["by_attractors"].items()))
    lines.append(f"- The agreement model reaches test accuracy {acc.estimate:.3f} (paper {sv_accuracy[0]:.2f} on "
                 f"Linzen et al.'s data, {sv_accuracy[1]}; always guessing the majority class, {sv['majority']:.3f} "
                 f"here); by attractors between subject and verb: {by}.")
    lines.append("- Over the sentence's tokens, rollout and flow through layer 1 rank the tokens as raw layer-1 "
                 "attention does (the residual identity only adds to the [CLS] column itself), so the three "
                 "layer-1 values are equal here; the paper reports 0.69 vs 0.32 there, so its layer-1 comparison "
                 "includes a token where they differ (we did not find which).")
    lines.append("- Caveats: our sentiment model is MiniLM-L6 (distilled for sentence embeddings, then fine-tuned "
                 "briefly), not DistilBERT, on Rotten Tomatoes sentences, not SST-2's test split. The agreement data "
                 "are silver (spaCy) parses of IMDB reviews, far fewer than Linzen et al.'s Wikipedia examples, with "
                 "WordPiece tokens instead of words; the encoder is a post-norm BERT block stack where the paper "
                 "used GPT-2 blocks without the causal mask. The released Table 3 script takes the logit at the index "
                 "of the test label; GLUE hides SST-2's test labels (TensorFlow Datasets stores them as -1, which "
                 "indexes the last class), so its gradients may be those of one fixed class; ours use the gold class.")
    return lines


def write_outputs(frame, out: Path, *, paper: dict, tables: dict, sent: dict, sv: dict, timings: dict, args,
                  sources: dict, sv_accuracy: tuple[float, str]) -> str:
    """Write results.csv, correlations.png and results.md; return the Markdown.

    ``sources`` maps each table to the source of its paper figures, ``sv_accuracy`` is the paper's
    agreement-model accuracy and its source (all from ``paper_figures.csv``).
    """
    Results(frame).to_csv(out / "results.csv")
    _plot(frame, paper, out / "correlations.png")
    t = {k: f"{v:.0f} s" for k, v in timings.items()}
    sa = sent["accuracy"]
    md = [
        "# Abnar & Zuidema 2020 check: attention rollout and flow, like with like",
        "",
        f"Measured by `papers/abnar_zuidema_2020/run.py` (nothing tuned to match the paper), {t['total']} on a "
        "shared 2-core CPU. Paper figures are mean ± sd over sentences from the paper's Tables 1-3 "
        "(`paper_figures.csv`, each with its source); ours are mean ± sd "
        "[95% bootstrap interval of the mean]. Layers 1-6: block l - 1's attention (raw) or the graph through it "
        "(rollout, flow), probekit's layer axis.",
        "",
        "## Sentiment: paper Table 3 (DistilBERT on SST-2) beside MiniLM-L6 on Rotten Tomatoes",
        "",
        f"**Classifier.** `minilm-l6` fine-tuned with `probekit.variants.finetune` on {sent.get('train_size', '?')} "
        f"sentences of the Rotten Tomatoes train split ({sent.get('seconds', float('nan')):.0f} s, reused when saved); "
        f"test accuracy **{sa.estimate:.3f}** [{sa.low:.3f}, "
        f"{sa.high:.3f}] on {sent['n_test']} sentences. **Scores** on the first {sent['n']} test sentences of at "
        f"most {args.max_tokens} word pieces (median {sent['median_tokens']}), all tokens: input gradient "
        "`|sum_d d logit(gold) / d e_d|` of the input word embeddings; relevance = the largest attention any position "
        "pays the token (rollout: the same on the rolled-out graph; flow: the largest normalised max-flow into any "
        f"position), as in the authors' script for this table. Flow took {sent['t_flow']:.0f} s.",
        "",
        f"Paper column: {sources['table3']}.",
        "",
        "| attention | layer | paper Table 3 | ours |",
        "|---|---|---|---|",
        _rows(ours(frame, "table3"), paper["table3"]),
        "",
        "Every layer (ours, mean):",
        "",
        "| source | L1 | L2 | L3 | L4 | L5 | L6 |",
        "|---|---|---|---|---|---|---|",
        _every_layer(ours(frame, "table3")),
        "",
        "## Subject-verb agreement: paper Tables 1 and 2 beside an encoder trained here",
        "",
        f"**Data.** {sv['n_data']:,} agreement examples from {sv['reviews']:,} IMDB reviews parsed by spaCy "
        f"(`_agreement.py`): {sv['n_train']:,} for training, {sv['n_test']:,} for test "
        f"({100 * sv['attractor_share']:.0f}% with an attractor). **Model.** A BERT encoder with 6 layers, 8 heads, "
        f"hidden 128, FFN 512, trained from scratch with `probekit.variants.finetune` ({sv.get('epochs', '?')} epochs, "
        f"lr {sv.get('lr', '?')}, batch {sv.get('batch_size', '?')}; {sv.get('seconds', float('nan')):.0f} s, reused "
        f"when saved); test accuracy **{sv['accuracy'].estimate:.3f}** [{sv['accuracy'].low:.3f}, "
        f"{sv['accuracy'].high:.3f}] (majority class {sv['majority']:.3f}). **Scores** on the first {sv['n']} test "
        "examples of at most "
        f"{args.max_tokens} word pieces (median {sv['median_tokens']}), over the sentence's tokens: blank-out = "
        "drop in the correct class's probability when the token alone is replaced by [UNK] "
        "(`Attributor(..., \"blank_out\", baseline=\"unk\")`); "
        "input gradients as above; relevance = the [CLS] row of raw attention (mean over heads), rollout and flow. "
        f"Flow took {sv['t_flow']:.0f} s.",
        "",
        "**Table 1: against blank-out**",
        "",
        f"Paper column: {sources['table1']}.",
        "",
        "| attention | layer | paper Table 1 | ours |",
        "|---|---|---|---|",
        _rows(ours(frame, "table1"), paper["table1"]),
        "",
        "**Table 2: against input gradients**",
        "",
        f"Paper column: {sources['table2']}.",
        "",
        "| attention | layer | paper Table 2 | ours |",
        "|---|---|---|---|",
        _rows(ours(frame, "table2"), paper["table2"]),
        "",
        "Figure: `correlations.png`; tidy rows: `results.csv` (task = the paper's table; `extra` holds sd and n).",
        f"This run's steps: {', '.join(f'{k} {v}' for k, v in t.items() if k != 'total')}.",
        "",
    ]
    md += _verdict(frame, paper, sent, sv, sv_accuracy)
    text = "\n".join(md) + "\n"
    (out / "results.md").write_text(text, encoding="utf-8")
    return text
