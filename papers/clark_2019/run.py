"""Paper check: Clark et al. 2019, "What Does BERT Look At?" on UD English EWT dev with MiniLM-L6.

Measures, with nothing tuned to match the paper:

(a) the mean share of attention on [CLS], [SEP] and punctuation per layer
    (paper Section 3.2 and Figure 2, BERT-base on Wikipedia);
(b) each head as a dependency parser: best-head accuracy per relation (both
    directions, dep->head and head->dep, best taken per relation as
    ``AttentionSuite.dependency_heads`` does) beside the best fixed-offset
    baseline (paper Table 1 / Section 4.2, BERT-base on the WSJ with
    Stanford Dependencies).

The paper's figures are read from ``paper_figures.csv`` beside this file,
each with its source.

Writes ``results.md``, ``results.csv`` (best head and baseline for every
relation), ``special_mass.csv`` and ``special_mass.png`` next to this file.
The activation store goes to ``runs/clark_2019_store`` (git-ignored) and is
reused on a re-run.

Usage::

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python papers/clark_2019/run.py            # all 2,001 dev sentences
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python papers/clark_2019/run.py --limit 500
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import probekit  # noqa: E402
from probekit.attention import AttentionSuite  # noqa: E402
from probekit.data import read_conllu, ud_files  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
from _figures import figure, paper_figures, source  # noqa: E402

#: The paper's figures (``paper_figures.csv``): BERT-base best-head accuracy per relation (Table 1), and the
#: share of attention on [SEP] in layers 6-10 (Section 3.2: "over half"; Figure 2 plots it per head)
FIGURES = paper_figures(HERE)
#: the paper's Stanford Dependencies label -> the UD label scored here (a choice of this check)
SD_TO_UD = {"det": "det", "dobj": "obj", "poss": "nmod:poss", "auxpass": "aux:pass"}
PAPER = [(sd, ud, figure(FIGURES, sd, "best_head_accuracy")) for sd, ud in SD_TO_UD.items()]
SEP_ROW = "[SEP] in layers 6-10"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ud-path", default=None,
                    help="UD English EWT folder or the dev .conllu file; default $PROBEKIT_UD_PATH, else the copy "
                         "fetched by 'probekit data fetch ud_ewt'")
    ap.add_argument("--limit", type=int, default=None, help="Use the first N dev sentences (default: all)")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--store", default=str(ROOT / "runs" / "clark_2019_store"))
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    dev = ud_files(args.ud_path)["dev"]
    sents = read_conllu(dev, limit=args.limit)
    words = [list(s.words) for s in sents]
    model = probekit.load_model(args.model)
    sites = [f"L{i}.attn.pattern" for i in range(model.n_layers)]
    store = probekit.extract(model, words, sites, args.store, dtype="float16", progress=True)
    t_extract = time.time() - t0
    print(f"extracted {store.n_examples} sentences, {store.manifest['n_tokens']} tokens in {t_extract:.0f} s")

    suite = AttentionSuite(store, model.tokenizer)
    stats = suite.head_statistics()
    mass = suite.special_mass_by_layer(stats)
    mass.to_csv(out / "special_mass.csv", index=False)
    stats.to_frame().to_csv(out / "head_statistics.csv", index=False)

    _, best, _ = suite.dependency_heads([s.heads for s in sents], [s.deprels for s in sents])
    best = best.rename(columns={"accuracy": "best_head_accuracy"})
    best.to_csv(out / "results.csv", index=False)
    t_total = time.time() - t0
    print(f"done in {t_total:.0f} s")

    # -------- plot (a)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for col, label in (("cls", "[CLS]"), ("sep", "[SEP]"), ("punct", "punctuation")):
        ax.plot(mass["layer"], mass[col], marker="o", label=label)
    ax.set_xlabel("layer")
    ax.set_ylabel("mean attention")
    ax.set_title(f"{args.model}: attention to special tokens (UD EWT dev, n={store.n_examples})", fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "special_mass.png", dpi=120)
    plt.close(fig)

    # -------- report
    rows = []
    for sd, ud, paper in PAPER:
        r = best[best["relation"] == ud]
        if r.empty:
            rows.append(f"| {sd} | {ud} | {paper:.1f} | - | - | - | - | 0 |")
            continue
        r = r.iloc[0]
        where = f"L{int(r.layer)}-H{int(r['head']) + 1} {r.direction}"
        rows.append(f"| {sd} | {ud} | {paper:.1f} | {100 * r.best_head_accuracy:.1f} | {where}"
                    f" | {100 * r.baseline_accuracy:.1f} | {int(r.baseline_offset):+d} | {int(r.n)} |")
    mass_rows = [f"| {int(m.layer)} | {m.cls:.3f} | {m.sep:.3f} | {m.punct:.3f} |" for m in mass.itertuples()]
    top = best.sort_values("n", ascending=False).head(15)
    other_rows = [f"| {r.relation} | {100 * r.best_head_accuracy:.1f} | L{int(r.layer)}-H{int(r.head) + 1} "
                  f"{r.direction} | {100 * r.baseline_accuracy:.1f} | {int(r.n)} |" for r in top.itertuples()]
    md = RESULTS_TEMPLATE.format(
        shards=_shards(store), n=store.n_examples, tokens=store.manifest["n_tokens"], model=args.model, t=t_total,
        limit="all" if args.limit is None else f"first {args.limit}",
        dep_rows="\n".join(rows), mass_rows="\n".join(mass_rows), other_rows="\n".join(other_rows),
        table_source=source(FIGURES, "det"), sep_source=source(FIGURES, SEP_ROW))
    (out / "results.md").write_text(md + "\n\n" + _verdict(best, mass) + "\n")
    print((out / "results.md").read_text())


def _shards(store) -> str:
    st = store.manifest.get("stats", {})
    return f"store: {st.get('shards_computed', 0)} shards extracted, {st.get('shards_reused', 0)} reused"


def _verdict(best: pd.DataFrame, mass: pd.DataFrame) -> str:
    """Sentences stating what matches and what does not, computed from the numbers (no hand edits)."""
    lines = ["## What matches and what does not", ""]
    for sd, ud, paper in PAPER:
        r = best[best["relation"] == ud]
        if r.empty:
            lines.append(f"- {sd} ({ud}): no arcs of this relation in the sentences used.")
            continue
        r = r.iloc[0]
        ours, base = 100 * r.best_head_accuracy, 100 * r.baseline_accuracy
        beats = "beats" if ours > base else "does not beat"
        lines.append(f"- {sd} ({ud}): best head {ours:.1f} vs paper {paper:.1f} ({ours - paper:+.1f} points); "
                     f"it {beats} our fixed-offset baseline ({base:.1f}) by {ours - base:+.1f} points."
                     + (" The paper's poss accuracy counts attention to the possessive 's as correct (its "
                        "Section 4.2: its head marks 's as the dependent); UD nmod:poss arcs, scored here, count "
                        "only the possessor itself (UD attaches 's to the possessor as case), so ours is the "
                        "stricter score and the gap overstates the difference." if sd == "poss" else ""))
    peak = mass.loc[mass["sep"].idxmax()]
    sep_share = figure(FIGURES, SEP_ROW, "attention_share_lower_bound")
    lines.append(f"- [SEP] mass peaks at layer {int(peak.layer)} of 6 ({peak.sep:.2f}); the paper reports over "
                 f"{sep_share:.1f} of BERT-base's attention on [SEP] in its layers 6-10 of 12 (Section 3.2; Figure 2 "
                 "plots it per head, with no table of values), so this row is a qualitative comparison only.")
    sink = "cls" if mass["cls"].max() > mass["sep"].max() else "sep"
    top = mass.loc[mass[sink].idxmax()]
    if sink == "cls":
        lines.append(f"- The paper's [SEP] attention sink is not reproduced: here the largest sink is [CLS] "
                     f"({top.cls:.2f} of all attention at layer {int(top.layer)}), while [SEP] stays at "
                     f"{mass['sep'].min():.2f}-{mass['sep'].max():.2f} in every layer.")
    else:
        lines.append(f"- As in the paper, [SEP] is the largest sink ({top.sep:.2f} at layer {int(top.layer)}).")
    first = mass.iloc[0]
    lines.append(f"- [CLS] mass is {first.cls:.2f} in layer 1 and {mass['cls'].iloc[-1]:.2f} in layer 6; "
                 f"punctuation mass ranges {mass['punct'].min():.2f}-{mass['punct'].max():.2f}.")
    lines.append("- Caveats: a different model (MiniLM-L6, 6 layers x 12 heads, distilled and fine-tuned for "
                 "sentence embeddings, not BERT-base), different data (UD EWT web text vs WSJ) and a different "
                 "annotation scheme (UD vs Stanford Dependencies: the four relations compared attach the same way "
                 "in both, but prepositions head their objects in SD and are case dependents in UD), so "
                 "exact agreement is not expected. Words split into word pieces are scored with word-level "
                 "attention (pieces summed as keys, averaged as queries, as in the paper).")
    return "\n".join(lines)


RESULTS_TEMPLATE = """# Clark et al. 2019 check: {model} on UD English EWT dev

Measured by `papers/clark_2019/run.py` on {limit} dev sentences ({n} sentences, {tokens} word-piece tokens,
all 6 layers' attention patterns stored in float16). This run took {t:.0f} s on a 2-core CPU ({shards}).
Nothing tuned.

## Heads as dependency parsers (best head per relation, both directions)

Accuracy in %; "best head" is the (layer, head, direction) with the highest accuracy on these sentences
(selected and scored on the same data, as in the paper). Baseline: best fixed offset `head = i + k`,
k in -5..5 excluding 0. Layers and heads 1-based.

| paper (SD) | UD relation | paper BERT-base | ours best head | layer-head, direction | ours offset | offset | n |
|---|---|---|---|---|---|---|---|
{dep_rows}

Paper column: {table_source} (`paper_figures.csv`). Its poss figure counts attention to the possessive 's as
correct; the nmod:poss arcs here do not.

The 15 most frequent relations, for context:

| UD relation | best head | layer-head, direction | fixed offset | n |
|---|---|---|---|---|
{other_rows}

## Share of attention on special tokens per layer (paper Section 3.2 and Figure 2)

Mean over heads, over all real query tokens of all sentences. Plot: `special_mass.png`. The paper's
figure: {sep_source}.

| layer | [CLS] | [SEP] | punctuation |
|---|---|---|---|
{mass_rows}"""


if __name__ == "__main__":
    main()
