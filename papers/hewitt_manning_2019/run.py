"""Paper check: Hewitt & Manning 2019, "A Structural Probe for Finding Syntax in Word Representations".

Measures on gold UD English EWT trees with MiniLM-L6, nothing tuned to match the paper:

- per layer (embeddings + 6 layers): a distance probe (UUAS, distance
  Spearman DSpr.) and a depth probe (root accuracy, depth Spearman NSpr.);
- a rank curve: UUAS (and DSpr.) of distance probes of rank 1, 2, 4, ..., 128
  at the layer with the best UUAS;
- beside the paper's Table 1 (read from ``paper_figures.csv`` with its source);
- the linear-structure baseline of the paper: a left-to-right chain (distance
  ``|i - j|``, depth = position), which needs no representation at all.

UUAS and root accuracy skip punctuation words (gold UPOS ``PUNCT``) as in the
paper; DSpr./NSpr. are Spearman correlations averaged per sentence length and
macro-averaged over lengths 5-50 (probekit's tree metrics). Training on the
train file (optionally a seeded sample of sentences), evaluation on the second
the whole dev file (set up by ``papers/_ud.py``).

Writes ``results.md``, ``results.csv`` (tidy rows), ``by_layer.png`` and
``rank_curve.png`` next to this file. The activation store goes to
``runs/papers/ud_ewt_<model>_train<N>_seed<S>`` (``papers/_ud.py``) (git-ignored; shared with
``papers/voita_titov_2020/run.py`` for the same sample) and is reused.

Usage::

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python papers/hewitt_manning_2019/run.py
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python papers/hewitt_manning_2019/run.py --train-sentences 0
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
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import probekit  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _figures import figure, paper_figures, source  # noqa: E402
from _ud import UD_PATH_HELP, add_output_args, store_for, ud_task  # noqa: E402

from probekit.probes import (  # noqa: E402
    DepthProbe,
    DistanceProbe,
    depth_spearman,
    distance_spearman,
    root_accuracy,
    task_inputs,  # noqa: E402
    uuas,
)
from probekit.results import Results  # noqa: E402

#: The paper's Table 1 (PTB WSJ, Stanford Dependencies), read from ``paper_figures.csv``: UUAS %, DSpr.,
#: root %, NSpr. of BERT-base layer 7 (the paper's model closest to MiniLM-L6 in size) and BERT-large layer 16
FIGURES = paper_figures(HERE)
PAPER_ROWS = ("BERT-base layer 7", "BERT-large layer 16")
PAPER_METRICS = ("uuas", "distance_spearman", "root_accuracy", "depth_spearman")


def paper(row: str) -> tuple[float, float, float, float]:
    """UUAS %, DSpr., root accuracy % and NSpr. of the paper's ``row``."""
    return tuple(figure(FIGURES, row, m) for m in PAPER_METRICS)


def chain_baseline(gold_dist, gold_depth, keep) -> dict[str, float]:
    """The paper's linear-structure baseline: a left-to-right chain (distance ``|i - j|``, depth = position)."""
    chain = [np.abs(np.subtract.outer(np.arange(len(d)), np.arange(len(d)))).astype(float) for d in gold_depth]
    pos = [np.arange(len(d), dtype=float) for d in gold_depth]
    return {"uuas": uuas(chain, gold_dist, keep), "distance_spearman": distance_spearman(chain, gold_dist),
            "root_accuracy": root_accuracy(pos, gold_depth, keep), "depth_spearman": depth_spearman(pos, gold_depth)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ud-path", default=None, help=UD_PATH_HELP)
    ap.add_argument("--train-sentences", type=int, default=1500,
                    help="Seeded sample of train sentences for training (0: all 12,544; default 1500)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sentence sample and of the probes")
    ap.add_argument("--rank", type=int, default=128, help="probe rank of the per-layer sweep")
    ap.add_argument("--ranks", default="1,2,4,8,16,32,64,128", help="ranks of the rank curve (comma-separated)")
    ap.add_argument("--max-iter", type=int, default=10, help="maximum training epochs of each probe")
    add_output_args(ap, HERE)
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild results.md and the plots from an existing results.csv in --out (no fitting)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        ranks = sorted({int(r) for r in args.ranks.split(",") if r.strip()})
    except ValueError:
        ap.error(f"--ranks must be comma-separated integers, got {args.ranks!r}")
    if not ranks or min(ranks) < 1 or args.rank < 1:
        ap.error("ranks must be positive integers")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        _rebuild(args, out)
        return

    t0 = time.time()
    task = ud_task("structural", args.ud_path, train_sentences=args.train_sentences or None, seed=args.seed)
    upos = ud_task("upos", args.ud_path, train_sentences=args.train_sentences or None, seed=args.seed)
    if upos.dataset.word_lists() != task.dataset.word_lists():
        raise RuntimeError("the UPOS and structural tasks hold different sentences; cannot mark punctuation")
    model = probekit.load_model(args.model)
    store = store_for(model, task, args.store_root, progress=False)
    inp = task_inputs(store, task)
    tr, te = np.flatnonzero(inp.train), np.flatnonzero(inp.test)
    dist = [np.asarray(lab["distance"], dtype=np.float32) for lab in inp.y]
    depth = [np.asarray(lab["depth"], dtype=np.float32) for lab in inp.y]
    keep = [np.array([u != "PUNCT" for u in labs]) for labs in upos.dataset.labels]
    g_dist, g_depth, g_keep = [dist[i] for i in te], [depth[i] for i in te], [keep[i] for i in te]
    print(f"{len(tr)} training and {len(te)} test sentences; extract/reuse {time.time() - t0:.0f} s")

    rows: list[dict] = []
    base = {"model": args.model, "variant": None, "task": "structural", "head": None, "split": inp.test_split,
            "ci_low": np.nan, "ci_high": np.nan}

    def add(li, probe, metric, value, seed=args.seed):
        rows.append({**base, "layer": None if li is None else inp.layers[li],
                     "site": None if li is None else str(inp.sites[li]), "probe": probe, "seed": seed,
                     "metric": metric, "value": float(value)})

    for metric, v in chain_baseline(g_dist, g_depth, g_keep).items():
        add(None, "linear_chain", metric, v, seed=None)

    def fit_distance(li, rank):
        Xs = inp.X[li]
        p = DistanceProbe(rank=rank, max_iter=args.max_iter, random_state=args.seed)
        p.fit([Xs[i] for i in tr], [dist[i] for i in tr])
        pred = p.predict([Xs[i] for i in te])
        return {"uuas": uuas(pred, g_dist, g_keep), "distance_spearman": distance_spearman(pred, g_dist)}

    per_layer = {}
    for li, Xs in enumerate(inp.X):
        ev = fit_distance(li, args.rank)
        per_layer[li] = ev
        for metric, v in ev.items():
            add(li, f"distance_rank{args.rank}", metric, v)
        p = DepthProbe(rank=args.rank, max_iter=args.max_iter, random_state=args.seed)
        p.fit([Xs[i] for i in tr], [depth[i] for i in tr])
        pred = p.predict([Xs[i] for i in te])
        add(li, f"depth_rank{args.rank}", "root_accuracy", root_accuracy(pred, g_depth, g_keep))
        add(li, f"depth_rank{args.rank}", "depth_spearman", depth_spearman(pred, g_depth))
        Results(rows).to_csv(out / "results.csv")  # partial results survive an interrupted run
        print(f"layer {inp.layers[li]}: UUAS {ev['uuas']:.3f} at {time.time() - t0:.0f} s")

    best_li = max(per_layer, key=lambda li: per_layer[li]["uuas"])
    for r in ranks:
        ev = per_layer[best_li] if r == args.rank else fit_distance(best_li, r)
        for metric, v in ev.items():
            add(best_li, f"distance_rank{r}", f"rank_curve_{metric}", v)
        Results(rows).to_csv(out / "results.csv")
        print(f"rank {r}: UUAS {ev['uuas']:.3f} at {time.time() - t0:.0f} s")
    t_total = time.time() - t0

    res = Results(rows)
    res.to_csv(out / "results.csv")
    frame = res.to_frame()
    _plots(frame, args, inp.layers[best_li], out, len(tr))
    md = _report(frame, args, task.meta["train_sample"], inp.layers[best_li], len(te), t_total, _shards(store))
    (out / "results.md").write_text(md + "\n")
    print(md)


def _rebuild(args, out: Path) -> None:
    """``--report-only``: the report and plots of an earlier run, from its ``results.csv`` and ``results.md``."""
    import re

    if not (out / "results.csv").exists():
        raise FileNotFoundError(f"--report-only needs {out / 'results.csv'} from an earlier run")
    frame = pd.read_csv(out / "results.csv")
    if "rank_curve_uuas" not in set(frame["metric"]):
        raise ValueError(f"{out / 'results.csv'} is from an unfinished run (no rank curve); "
                         "rerun without --report-only")
    old = (out / "results.md").read_text() if (out / "results.md").exists() else ""
    took = re.search(r"This run took (\d+) s on a 2-core CPU \(([^)]*)\)", old)
    t, shards = (float(took.group(1)), took.group(2)) if took else (float("nan"), "store: unknown")
    task = ud_task("structural", args.ud_path, train_sentences=args.train_sentences or None, seed=args.seed)
    n_te = sum(sp != "train" for sp in task.dataset.splits)
    best = int(frame.loc[frame["metric"] == "rank_curve_uuas", "layer"].iloc[0])
    n_tr = task.meta["train_sample"]["n_kept"]
    _plots(frame, args, best, out, n_tr)
    (out / "results.md").write_text(_report(frame, args, task.meta["train_sample"], best, n_te, t, shards) + "\n")
    print((out / "results.md").read_text())


def _layer_table(frame: pd.DataFrame) -> pd.DataFrame:
    f = frame[frame["layer"].notna() & ~frame["metric"].str.startswith("rank_curve")]
    return f.pivot_table(index="layer", columns="metric", values="value")


def _plots(frame: pd.DataFrame, args, best_layer: int, out: Path, n_train: int) -> None:
    wide = _layer_table(frame)
    chain = frame[frame["probe"] == "linear_chain"].set_index("metric")["value"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for metric, label in (("uuas", "UUAS"), ("root_accuracy", "root accuracy")):
        line = axes[0].plot(wide.index, wide[metric], "o-", label=label)[0]
        axes[0].axhline(chain[metric], color=line.get_color(), ls=":", lw=0.9, label=f"{label}, chain baseline")
    for metric, label in (("distance_spearman", "DSpr."), ("depth_spearman", "NSpr.")):
        line = axes[1].plot(wide.index, wide[metric], "o-", label=label)[0]
        axes[1].axhline(chain[metric], color=line.get_color(), ls=":", lw=0.9, label=f"{label}, chain baseline")
    for ax in axes:
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_xticks(wide.index)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    fig.suptitle(f"{args.model}: structural probes (rank {args.rank}) on UD EWT, {n_train} training sentences",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "by_layer.png", dpi=120)
    plt.close(fig)

    curve = frame[frame["metric"] == "rank_curve_uuas"].copy()
    curve["rank"] = curve["probe"].str.replace("distance_rank", "").astype(int)
    curve = curve.sort_values("rank")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(curve["rank"], curve["value"], "o-", label=f"layer {best_layer}")
    ax.axhline(chain["uuas"], color="grey", ls=":", lw=0.9, label="chain baseline")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("probe rank")
    ax.set_ylabel("UUAS")
    ax.set_title(f"{args.model}: UUAS by distance-probe rank", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "rank_curve.png", dpi=120)
    plt.close(fig)


def _shards(store) -> str:
    st = store.manifest.get("stats", {})
    return f"store: {st.get('shards_computed', 0)} shards extracted, {st.get('shards_reused', 0)} reused"


def _report(frame: pd.DataFrame, args, ts: dict, best_layer: int, n_te: int, t: float, shards: str) -> str:
    wide = _layer_table(frame)
    chain = frame[frame["probe"] == "linear_chain"].set_index("metric")["value"]
    rows = [f"| {int(layer)} | {100 * r.uuas:.1f} | {r.distance_spearman:.2f} | {100 * r.root_accuracy:.1f} | "
            f"{r.depth_spearman:.2f} |" for layer, r in wide.iterrows()]
    rows.append(f"| linear chain baseline | {100 * chain['uuas']:.1f} | {chain['distance_spearman']:.2f} | "
                f"{100 * chain['root_accuracy']:.1f} | {chain['depth_spearman']:.2f} |")
    for name in PAPER_ROWS:
        u, ds, ra, ns = paper(name)
        rows.append(f"| paper: {name} (PTB) | {u:.1f} | {ds:.2f} | {ra:.1f} | {ns:.2f} |")
    curve = frame[frame["metric"].str.startswith("rank_curve")].copy()
    curve["rank"] = curve["probe"].str.replace("distance_rank", "").astype(int)
    cw = curve.pivot_table(index="rank", columns="metric", values="value")
    crow = [f"| {int(r)} | {100 * v.rank_curve_uuas:.1f} | {v.rank_curve_distance_spearman:.2f} |"
            for r, v in cw.iterrows()]
    sample = (f"all {ts['n_kept']} training sentences" if ts["n_kept"] == ts["n_train_file"] else
              f"{ts['n_kept']} training sentences sampled without replacement (seed {ts['seed']}) from the "
              f"{ts['n_train_file']:,} of the train file, to fit the time budget of a 2-core CPU")
    head = TEMPLATE.format(model=args.model, sample=sample, n_te=n_te, t=t, shards=shards, rank=args.rank,
                           max_iter=args.max_iter, table="\n".join(rows), best=best_layer, curve="\n".join(crow),
                           note=source(FIGURES))
    return head + "\n\n" + _verdict(wide, chain, cw, best_layer)


def _verdict(wide: pd.DataFrame, chain: pd.Series, cw: pd.DataFrame, best_layer: int) -> str:
    """Sentences stating what matches and what does not, computed from the numbers (no hand edits)."""
    b = wide.loc[best_layer]
    u_paper, ds_paper, ra_paper, ns_paper = paper("BERT-base layer 7")
    lines = ["## What matches and what does not", ""]
    lines.append(f"- Best distance-probe layer: {best_layer} of 6, UUAS {100 * b.uuas:.1f} (BERT-base layer 7 of 12: "
                 f"{u_paper:.1f}; {100 * b.uuas - u_paper:+.1f} points), DSpr. {b.distance_spearman:.2f} "
                 f"(paper {ds_paper:.2f}). "
                 + ("As in the paper, the best layer is in the middle of the network." if 0 < best_layer <
                    int(wide.index.max()) else "Unlike the paper, the best layer is not in the middle of the network."))
    rb = int(wide["root_accuracy"].idxmax())
    lines.append(f"- Depth probe: best root accuracy {100 * wide['root_accuracy'].max():.1f} at layer {rb} (BERT-base "
                 f"layer 7: {ra_paper:.1f}; {100 * wide['root_accuracy'].max() - ra_paper:+.1f} points), best NSpr. "
                 f"{wide['depth_spearman'].max():.2f} at layer {int(wide['depth_spearman'].idxmax())} (paper "
                 f"{ns_paper:.2f}).")
    gain = 100 * (wide["uuas"] - chain["uuas"])
    below = [str(int(la)) for la in gain.index[gain <= 0]]
    lines.append(f"- Left-to-right chain baseline: UUAS {100 * chain['uuas']:.1f}; the margin of the layers is "
                 f"{gain.min():+.1f} to {gain.max():+.1f} points; "
                 + (f"layer(s) {', '.join(below)} do not beat it (not investigated here; MiniLM-L6's top layers "
                    "are tuned for sentence embeddings)" if below else "every layer beats it")
                 + f"; the embedding layer (0) gets {100 * wide.loc[0, 'uuas']:.1f}.")
    u = cw["rank_curve_uuas"]
    top = u.max()
    sat = int(u.index[np.argmax(u.to_numpy() >= top - 0.01)])
    lines.append(f"- Rank curve at layer {best_layer}: UUAS {100 * u.iloc[0]:.1f} at rank {int(u.index[0])}, "
                 f"within 1 point of its maximum ({100 * top:.1f}) from rank {sat} on (the paper's rank curve is not "
                 "quoted here as a number).")
    lines.append("- Setting: the paper's BERT-base row is the one compared (BERT-large's layer 16 is in the table "
                 "for reference); both share the metrics (UUAS and root accuracy without punctuation, DSpr./NSpr. "
                 "over lengths 5-50) and the probes (distance and depth probes trained with an L1 loss); model, data "
                 "and amount of training data differ (below).")
    lines.append("- Caveats: different model (MiniLM-L6, 6 layers, 384-d, sentence-embedding fine-tuned), "
                 "different data and scheme (UD EWT web text, UD trees vs PTB WSJ with Stanford Dependencies; "
                 "UD attaches function words as dependents, so gold distances differ), less training data, and "
                 "words split into word pieces are the mean of their pieces (the paper averages pieces too).")
    return "\n".join(lines)


TEMPLATE = """# Hewitt & Manning 2019 check: {model} on UD English EWT

Measured by `papers/hewitt_manning_2019/run.py`: {sample}; evaluated on {n_te} held-out
sentences (the whole dev file). This run took {t:.0f} s on a 2-core CPU ({shards}). Probes: probekit `DistanceProbe` /
`DepthProbe`, rank {rank}, L1 loss, Adam, at most {max_iter} epochs with early stopping. Nothing tuned.
UUAS and root accuracy exclude punctuation; DSpr./NSpr. macro-average lengths 5-50.
Plots: `by_layer.png`, `rank_curve.png`.

## Per layer

| layer | UUAS % | DSpr. | root % | NSpr. |
|---|---|---|---|---|
{table}

Paper rows: {note} (PTB WSJ, Stanford Dependencies; `paper_figures.csv`).

## Rank curve (distance probe at layer {best})

| rank | UUAS % | DSpr. |
|---|---|---|
{curve}"""


if __name__ == "__main__":
    main()
