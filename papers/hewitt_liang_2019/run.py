"""Paper check: Hewitt & Liang 2019, "Designing and Interpreting Probes with Control Tasks", with MiniLM-L6.

UPOS on gold UD English EWT (train file for training, the whole dev file
for test), at every layer of MiniLM-L6 (the embeddings, layer 0, and the 6
transformer layers): accuracy of a linear probe and of MLP probes with one
and two hidden layers, the accuracy of the same probe on the control task
(every word type gets one label drawn from the UPOS distribution), and
selectivity = accuracy - control accuracy. Intervals are 95% percentile
bootstraps over test words (selectivity: task and control correctness
resampled jointly, word by word). Nothing is tuned to match the paper.

The paper's figures (its Table 1: the default probes and the MLPs designed
with control tasks) are read from ``paper_figures.csv`` beside this file,
each with its source.

Writes ``results.md``, ``results.csv`` (the suite's tidy rows plus the
selectivity intervals) and ``accuracy_by_layer.png`` next to this file. The
activation store goes to ``runs/papers/`` (git-ignored) and is reused on a
re-run; ``--report-only`` rewrites the report and plot from an earlier
run's ``results.csv`` without fitting anything.

Usage::

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python papers/hewitt_liang_2019/run.py
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python papers/hewitt_liang_2019/run.py --train-sentences 0   # all
    python papers/hewitt_liang_2019/run.py --report-only   # report of the results.csv already there
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _figures import figure, paper_figures, source  # noqa: E402
from _ud import UD_PATH_HELP, add_output_args, store_for, ud_task, words_by_split  # noqa: E402

import probekit  # noqa: E402
from probekit.probes import LinearProbe, MLPProbe, ProbeSuite, paired_bootstrap  # noqa: E402

PROBE_NAMES = {"linear": "linear", "mlp1": "MLP-1", "mlp2": "MLP-2"}
#: The paper's Table 1 (ELMo layer 1, PTB POS), read from ``paper_figures.csv``
FIGURES = paper_figures(HERE)
#: Its two groups of rows: the probes with default hyperparameters (MLPs with 1,000 hidden units, no dropout)
#: and the MLPs designed with control tasks (rank 10; the paper gives no linear probe in that group)
PAPER_ROWS = {"default": {p: f"default {n}" for p, n in PROBE_NAMES.items()},
              "designed": {p: f"designed {n}" for p, n in PROBE_NAMES.items() if p != "linear"}}
METRICS = ("accuracy", "control_accuracy", "selectivity")


def paper(group: str, probe: str) -> tuple[float, float, float]:
    """Accuracy, control accuracy and selectivity (in %) of ``probe`` in the paper's ``group`` of rows."""
    return tuple(figure(FIGURES, PAPER_ROWS[group][probe], m) for m in METRICS)


def probes(hidden: int) -> dict:
    """The three probes, default settings apart from the hidden width."""
    return {"linear": LinearProbe(random_state=0),
            "mlp1": MLPProbe(hidden_layer_sizes=(hidden,), random_state=0),
            "mlp2": MLPProbe(hidden_layer_sizes=(hidden, hidden), random_state=0)}


def selectivity_ci(suite: ProbeSuite, model: str, task: str, site: str, probe: str, seed: int, n_boot: int):
    """Selectivity and its paired bootstrap interval: test words resampled once for task and control."""
    key = (model, None)
    y, y_c = suite.truth_[key + (task,)], suite.truth_[key + (task + ".control",)]
    ok = (suite.predictions_[key + (task, site, probe, seed)] == y).astype(np.int8)
    ok_c = (suite.predictions_[key + (task + ".control", site, probe, seed)] == y_c).astype(np.int8)
    return paired_bootstrap(np.ones_like(ok), ok, ok_c, n_boot=n_boot, random_state=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ud-path", default=None, help=UD_PATH_HELP)
    ap.add_argument("--train-sentences", type=int, default=1500,
                    help="Seeded sample of train sentences in the store (0: all 12,544; default 1500)")
    ap.add_argument("--fit-sentences", type=int, default=0,
                    help="Of those, the seeded subset the probes are trained on (default 0: all)")
    ap.add_argument("--hidden", type=int, default=64, help="Hidden width of the MLP probes (default 64)")
    ap.add_argument("--seed", type=int, default=0, help="Seed of the train sample, the control task and the probes")
    ap.add_argument("--n-boot", type=int, default=1000)
    add_output_args(ap, HERE, threads=True)
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild results.md and the plot from an existing results.csv in --out (no fitting)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        _rebuild(args, out)
        return

    t0 = time.time()
    task = ud_task("upos", args.ud_path, train_sentences=args.train_sentences or None,
                   fit_sentences=args.fit_sentences or None, seed=args.seed)
    model = probekit.load_model(args.model)
    store = store_for(model, task, args.store_root)
    t_extract = time.time() - t0
    print(f"store {store.path}: {store.n_examples} sentences in {t_extract:.0f} s", flush=True)

    suite = ProbeSuite(task, probes(args.hidden), seeds=(args.seed,), controls=True, control_seed=args.seed,
                       n_boot=args.n_boot)
    res = suite.run({args.model: store}).to_frame()
    t_probe = time.time() - t0 - t_extract
    print(f"probes done in {t_probe:.0f} s", flush=True)

    sites = res.loc[res["metric"] == "accuracy"].dropna(subset=["layer"]).drop_duplicates("layer")
    sites = dict(zip(sites["layer"].astype(int), sites["site"]))
    extra = []
    for pname in PROBE_NAMES:
        for layer, site in sites.items():
            pb = selectivity_ci(suite, args.model, "upos", site, pname, args.seed, args.n_boot)
            extra.append({"model": args.model, "variant": None, "task": "upos", "layer": layer, "site": site,
                          "head": None, "probe": pname, "seed": args.seed, "split": "test",
                          "metric": "selectivity_paired", "value": pb.difference, "ci_low": pb.low,
                          "ci_high": pb.high})
    res = pd.concat([res, pd.DataFrame(extra)], ignore_index=True)
    res.to_csv(out / "results.csv", index=False)
    report(res, task, args, out, time.time() - t0, t_extract, _shards(store))
    print((out / "results.md").read_text())


def report(res: pd.DataFrame, task, args, out: Path, t_total: float, t_extract: float, shards: str) -> None:
    """Write ``accuracy_by_layer.png`` and ``results.md`` from the tidy rows of a run."""
    table = _table(res)
    _plot(table, res, args.model, out / "accuracy_by_layer.png")
    n_words = words_by_split(task)
    ts = task.meta["train_sample"]
    major = res[(res["probe"] == "majority") & (res["task"] == "upos") & (res["metric"] == "accuracy")]["value"]
    md = TEMPLATE.format(
        model=args.model, n_train=ts["n_fit"], n_store=ts["n_kept"], n_file=ts["n_train_file"], seed=ts["seed"],
        w_train=n_words["train"], w_test=n_words["test"],
        n_test=sum(1 for s in task.dataset.splits if s == "test"), hidden=args.hidden, t=t_total,
        t_extract=t_extract, shards=shards, paper_rows=_paper_rows(table), layer_rows=_layer_rows(table),
        majority=100 * float(major.iloc[0]), n_boot=args.n_boot, paper_source=source(FIGURES))
    (out / "results.md").write_text(md + "\n\n" + _verdict(table, ts, seen_type_share(task)) + "\n")


def _rebuild(args, out: Path) -> None:
    """``--report-only``: the report and plot of an earlier run, from its ``results.csv`` (and the timing line of
    its ``results.md``); the task is rebuilt from the treebank for the word counts, nothing is fitted."""
    if not (out / "results.csv").exists():
        raise FileNotFoundError(f"--report-only needs {out / 'results.csv'} from an earlier run")
    res = pd.read_csv(out / "results.csv")
    if "selectivity_paired" not in set(res["metric"]):
        raise ValueError(f"{out / 'results.csv'} is not a finished run of this check (no selectivity rows)")
    old = (out / "results.md").read_text() if (out / "results.md").exists() else ""
    took = re.search(r"This run took (\d+) s on a 2-core CPU \((\d+) s loading and\s+extraction; ([^)]*)\)", old)
    t, t_extract, shards = ((float(took.group(1)), float(took.group(2)), took.group(3)) if took
                            else (float("nan"), float("nan"), "store: unknown"))
    task = ud_task("upos", args.ud_path, train_sentences=args.train_sentences or None,
                   fit_sentences=args.fit_sentences or None, seed=args.seed)
    report(res, task, args, out, t, t_extract, shards)


def _shards(store) -> str:
    st = store.manifest.get("stats", {})
    return f"store: {st.get('shards_computed', 0)} shards extracted, {st.get('shards_reused', 0)} reused"


def _table(res: pd.DataFrame) -> pd.DataFrame:
    """One row per (probe, layer): accuracy, control accuracy, selectivity, each with its interval (in %)."""
    rows = []
    per_layer = res[res["layer"].notna() & res["seed"].notna()]
    for (pname, layer), g in per_layer.groupby(["probe", "layer"]):
        acc, ctl = _pick(g, "upos", "accuracy"), _pick(g, "upos.control", "accuracy")
        sel = _pick(g, "upos", "selectivity_paired")
        rows.append({"probe": pname, "layer": int(layer), "acc": acc[0], "acc_lo": acc[1], "acc_hi": acc[2],
                     "ctl": ctl[0], "ctl_lo": ctl[1], "ctl_hi": ctl[2], "sel": sel[0], "sel_lo": sel[1],
                     "sel_hi": sel[2]})
    return pd.DataFrame(rows).sort_values(["probe", "layer"]).reset_index(drop=True)


def _pick(g: pd.DataFrame, task: str, metric: str) -> tuple[float, float, float]:
    r = g[(g["task"] == task) & (g["metric"] == metric)].iloc[0]
    return 100 * r["value"], 100 * r["ci_low"], 100 * r["ci_high"]


def _ci(v, lo, hi) -> str:
    return f"{v:.1f} [{lo:.1f}, {hi:.1f}]"


GROUP_LABELS = {"default": "default (MLPs: 1,000 units, no dropout)",
                "designed": "designed with control tasks (rank 10)"}


def _paper_rows(table: pd.DataFrame) -> str:
    out = []
    for group, probes in PAPER_ROWS.items():
        for pname in probes:
            p_acc, p_ctl, p_sel = paper(group, pname)
            r = table[(table["probe"] == pname) & (table["layer"] == 1)].iloc[0]
            out.append(f"| {PROBE_NAMES[pname]} | {GROUP_LABELS[group]} | {p_acc:.1f} | "
                       f"{_ci(r.acc, r.acc_lo, r.acc_hi)} | {p_ctl:.1f} | {_ci(r.ctl, r.ctl_lo, r.ctl_hi)} | "
                       f"{p_sel:.1f} | {_ci(r.sel, r.sel_lo, r.sel_hi)} |")
    return "\n".join(out)


def _layer_rows(table: pd.DataFrame) -> str:
    return "\n".join(f"| {PROBE_NAMES[r.probe]} | {r.layer} | {_ci(r.acc, r.acc_lo, r.acc_hi)} | "
                     f"{_ci(r.ctl, r.ctl_lo, r.ctl_hi)} | {_ci(r.sel, r.sel_lo, r.sel_hi)} |"
                     for r in table.itertuples())


def _plot(table: pd.DataFrame, res: pd.DataFrame, model: str, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    colors = dict(zip(PROBE_NAMES, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for pname, label in PROBE_NAMES.items():
        t = table[table["probe"] == pname]
        c = colors[pname]
        axes[0].plot(t["layer"], t["acc"], "-o", ms=3, color=c, label=f"{label} UPOS")
        axes[0].fill_between(t["layer"], t["acc_lo"], t["acc_hi"], color=c, alpha=0.2, lw=0)
        axes[0].plot(t["layer"], t["ctl"], "--s", ms=3, color=c, label=f"{label} control")
        axes[0].fill_between(t["layer"], t["ctl_lo"], t["ctl_hi"], color=c, alpha=0.2, lw=0)
        axes[1].plot(t["layer"], t["sel"], "-o", ms=3, color=c, label=label)
        axes[1].fill_between(t["layer"], t["sel_lo"], t["sel_hi"], color=c, alpha=0.2, lw=0)
    major = res[(res["probe"] == "majority") & (res["task"] == "upos") & (res["metric"] == "accuracy")]["value"]
    axes[0].axhline(100 * float(major.iloc[0]), color="grey", ls=":", lw=1, label="majority")
    axes[0].set(xlabel="layer (0 = embeddings)", ylabel="accuracy (%)", title=f"{model}: UPOS and control task")
    axes[1].set(xlabel="layer (0 = embeddings)", ylabel="selectivity (points)", title="selectivity = UPOS - control")
    axes[0].legend(fontsize=6, ncol=2)
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def seen_type_share(task) -> float:
    """Share of test tokens whose word type (exact form) occurs among the training words."""
    ds = task.dataset
    seen = {w for ws, sp in zip(ds.words, ds.splits) if sp == "train" for w in ws}
    test = [w for ws, sp in zip(ds.words, ds.splits) if sp == "test" for w in ws]
    return sum(w in seen for w in test) / len(test)


def _verdict(table: pd.DataFrame, ts: dict, seen: float) -> str:
    """Sentences on what matches and what does not, computed from the numbers (no hand edits)."""
    lines = ["## What matches and what does not", ""]
    by = {p: table[table["probe"] == p].set_index("layer") for p in PROBE_NAMES}
    lin, m1, m2 = by["linear"], by["mlp1"], by["mlp2"]
    gap_acc = max(abs(m1["acc"] - lin["acc"]).max(), abs(m2["acc"] - lin["acc"]).max())
    sel_drop = pd.concat([lin["sel"] - m1["sel"], lin["sel"] - m2["sel"]])
    lower_everywhere = bool((sel_drop > 0).all())
    sig = bool(((lin["sel_lo"] > m1["sel_hi"]) & (lin["sel_lo"] > m2["sel_hi"])).all())
    l1 = {p: by[p].loc[1] for p in PROBE_NAMES}
    mlps = ("mlp1", "mlp2")
    dflt = {p: paper("default", p) for p in PROBE_NAMES}
    dsgn = {p: paper("designed", p) for p in mlps}

    def both(values, fmt="{:.1f}") -> str:
        return " / ".join(fmt.format(v) for v in values)

    lines.append(f"- Accuracy: at every layer the MLP probes are within {gap_acc:.1f} points of the linear probe "
                 f"(layer 1: linear {l1['linear'].acc:.1f}, MLP-1 {l1['mlp1'].acc:.1f}, MLP-2 {l1['mlp2'].acc:.1f}; "
                 f"paper, default probes {both(dflt[p][0] for p in PROBE_NAMES)}, MLPs designed with control tasks "
                 f"{both(dsgn[p][0] for p in mlps)}).")
    verdict = ("holds in direction at every layer (intervals separated)" if lower_everywhere and sig else
               "holds in direction only (the intervals overlap at some layer)" if lower_everywhere else
               "does not hold at every layer")
    ours_gap = [l1["linear"].sel - l1[p].sel for p in mlps]
    paper_gap = [dflt["linear"][2] - dflt[p][2] for p in mlps]
    ratio = max(o / g for o, g in zip(ours_gap, paper_gap))
    size = "far smaller than" if ratio < 1 / 3 else "about half" if ratio < 2 / 3 else "comparable to"
    lines.append(f"- Selectivity: the paper's finding (MLPs as accurate as the linear probe, and less selective) "
                 f"{verdict} here: linear minus MLP selectivity ranges {sel_drop.min():+.1f} to "
                 f"{sel_drop.max():+.1f} points over layers and the two MLPs (layer 1: {both(ours_gap, '{:+.1f}')}).")
    lines.append(f"- Against the paper's default probes (MLPs with 1,000 hidden units and no dropout; linear minus "
                 f"MLP selectivity {both(paper_gap, '{:+.1f}')} at ELMo layer 1) the gap at layer 1 is {size} the "
                 f"paper's; those MLPs are barely selective (selectivity {both(dflt[p][2] for p in mlps)}), ours "
                 f"are not ({both(l1[p].sel for p in mlps)}).")
    diff = [l1[p].sel - dsgn[p][2] for p in mlps]
    close = ("about the paper's" if max(map(abs, diff)) <= 2 else "close to the paper's" if max(map(abs, diff)) <= 5
             else "unlike the paper's")
    lines.append(f"- Against the paper's MLPs designed with control tasks (rank 10: selectivity "
                 f"{both(dsgn[p][2] for p in mlps)}, control accuracy {both(dsgn[p][1] for p in mlps)}) our MLPs' "
                 f"selectivity at layer 1 is {close} ({both(diff, '{:+.1f}')} points). That row is the setting that "
                 "matches in probe size: this library's MLPs (64 hidden units, dropout 0.1, weight decay, early "
                 "stopping) are constrained, as those are, not wide and unregularised like the default ones. Model "
                 "(MiniLM-L6 vs ELMo) and data (UD EWT UPOS, 17 tags, a train sample vs PTB, 45 tags, the whole "
                 "train set) differ from both rows; the metric (accuracy, and selectivity against a word-type "
                 "control task) is the same. So \"the gap is smaller than the paper's\" holds against the default "
                 "row only.")
    lines.append(f"- Control accuracy at layer 1: linear {l1['linear'].ctl:.1f}, MLP-1 {l1['mlp1'].ctl:.1f}, "
                 f"MLP-2 {l1['mlp2'].ctl:.1f} (paper, default probes {both(dflt[p][1] for p in PROBE_NAMES)}). "
                 "Control accuracy is bounded by how many "
                 "test tokens have a word type seen in training (an unseen type's control label cannot be "
                 "predicted except by chance), so it depends on the training sample "
                 f"({ts['n_fit']} of {ts['n_train_file']} train sentences here, the whole PTB train set in the "
                 f"paper): here {100 * seen:.1f}% of test tokens have a type seen in training. With fewer "
                 "training words there is less for an MLP to memorise, so the selectivity gap depends on the "
                 "sample; a run on all train sentences (`--train-sentences 0`) is the proper test of the finding.")
    best = {p: int(by[p]["sel"].idxmax()) for p in PROBE_NAMES}
    lines.append("- Most selective layer: " + ", ".join(f"{PROBE_NAMES[p]} layer {best[p]} "
                                                        f"({by[p].loc[best[p]].sel:.1f})" for p in PROBE_NAMES)
                 + "; the paper found ELMo's layer 1 more accurate but less selective than layer 2 for linear "
                 "probes (not compared here: different model).")
    lines.append("- Caveats: different model (MiniLM-L6, 384-d, uncased WordPiece with word vectors averaged over "
                 "their pieces, vs ELMo's 1024-d character-based layers), different data and tag set (UD EWT "
                 "UPOS, 17 tags, vs PTB's 45 tags), default probe settings of this library (Adam, early "
                 "stopping on a 10% validation split, L2 1e-4 for the MLPs, C=1 for the linear probe; one seed) "
                 "rather than the paper's, so exact agreement is not expected.")
    return "\n".join(lines)


TEMPLATE = """# Hewitt & Liang 2019 check: {model}, UPOS on UD English EWT

Measured by `papers/hewitt_liang_2019/run.py`: probes trained on a seeded sample of {n_train} of the
{n_file} UD EWT train sentences (seed {seed}; {w_train} words), tested on all {n_test} dev sentences ({w_test}
words). The sample is small because probe training on this shared 2-core CPU was far too slow for more
within the time available (the store holds {n_store} train sentences; `--fit-sentences 0 --train-sentences 0`
uses all 12,544, about 205k words). Word vectors are the mean of a
word's pieces, float16 in the store. Probes: linear (multinomial logistic regression), MLP-1 and MLP-2
({hidden} hidden units per layer, ReLU, dropout 0.1), one seed, this library's default training settings.
Control task: each word type (case-sensitive form) gets one UPOS label drawn from the empirical
UPOS distribution (seed {seed}). Majority-class accuracy: {majority:.1f}. 95% bootstrap intervals over
test words ({n_boot} replicates). This run took {t:.0f} s on a 2-core CPU ({t_extract:.0f} s loading and
extraction; {shards}). Nothing tuned.

## Beside the paper (ELMo layer 1 on PTB; ours MiniLM-L6 layer 1)

Accuracy and selectivity in %, our 95% intervals in brackets. Paper figures: {paper_source}
(`paper_figures.csv`): its probes with default hyperparameters, and its MLPs designed with control tasks (it
gives no linear probe in that group). Ours are the same probes in both groups.

| probe | paper row | paper acc. | ours acc. | paper control | ours control | paper select. | ours select. |
|---|---|---|---|---|---|---|---|
{paper_rows}

## Every layer (0 = embeddings)

Plot: `accuracy_by_layer.png` (left: UPOS solid, control dashed; right: selectivity).

| probe | layer | accuracy | control accuracy | selectivity |
|---|---|---|---|---|
{layer_rows}"""


if __name__ == "__main__":
    main()
