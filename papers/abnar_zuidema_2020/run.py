"""Paper check: Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers", like with like.

The paper has two settings, and each is compared with its own counterpart here (nothing tuned to match):

1. **Sentiment (paper Table 3).** DistilBERT fine-tuned on SST-2; Spearman correlation between the
   attention-based relevance of each token (raw attention, rollout, flow at layers 1, 3, 5, 6) and its
   input-gradient importance, on 100 test sentences. Here: MiniLM-L6 (6 layers, like DistilBERT)
   fine-tuned on a seeded sample of the Rotten Tomatoes train split (the source of SST-2's sentences),
   saved under ``runs/papers/abnar_zuidema_2020/model`` and reused; the first ``--n`` test sentences.
   Relevance and gradients follow the authors' released script for that table: for each token the
   largest attention any position pays it (flow: the largest normalised flow into any position), and
   ``|sum over the hidden dimension of d logit(gold class) / d input embedding|``; all tokens, [CLS] and
   [SEP] included.
2. **Subject-verb agreement (paper Tables 1 and 2).** A 6-layer encoder (8 heads, hidden 128) trained
   from scratch to predict a verb's number from the sentence before it (Linzen et al. 2016); blank-out
   (each token replaced by UNK, drop in the correct class's probability; Table 1) and input gradients
   (Table 2) against the [CLS] row of raw attention, rollout and flow at layers 1-6, on 2000 test
   examples. Here: the same architecture sizes (a BERT encoder), trained with ``probekit.variants.finetune``
   on agreement examples built offline from IMDB reviews with spaCy's silver parses (``_agreement.py``);
   correlations over the sentence's tokens ([CLS] and [SEP] left out: blank-out cannot score them).

Layers are the paper's (1-6) and probekit's layer axis: layer ``l`` is block ``l - 1``'s attention, or the
graph through it. Correlations: mean and standard deviation over sentences (the paper's "mean +/- sd") and a
percentile bootstrap 95% interval of the mean.

Writes ``results.md``, ``results.csv`` (tidy ``probekit.Results``: accuracies and one row per table, layer
and source with ``extra = {"sd", "n"}``) and ``correlations.png`` next to this file.

Usage::

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python papers/abnar_zuidema_2020/run.py
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python papers/abnar_zuidema_2020/run.py --sv-reviews 4000
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import probekit
from probekit import Results
from probekit.attribution import Attributor, agreement, agreement_results
from probekit.probes import bootstrap_ci
from probekit.variants import finetune, predict_logits, rotten_tomatoes_splits

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _agreement import build_agreement_data, labelled, split  # noqa: E402
from _figures import figure, paper_figures  # noqa: E402
from _figures import source as figure_source  # noqa: E402
from _report import write_outputs  # noqa: E402
from _scores import input_gradients, relevance  # noqa: E402

SOURCES = ("raw", "rollout", "flow")

#: The paper's Tables 1-3 (``paper_figures.csv``, each figure with its source): mean Spearman correlation and its
#: sd over test examples, keyed (source, layer 1-6). Table 1: the verb-number model (6 layers, trained from
#: scratch on subject-verb agreement) against blank-out; Table 2: the same model against input gradients;
#: Table 3: DistilBERT fine-tuned on SST-2 against input gradients (layers 1, 3, 5, 6).
FIGURES = paper_figures(HERE)


def _paper_table(name: str) -> dict[tuple[str, int], tuple[float, float]]:
    rows = FIGURES[FIGURES["row"].str.startswith(name + " ") & (FIGURES["metric"] == "spearman_mean")]
    out = {}
    for key in rows["row"]:
        _, src, layer = key.split(" ")
        out[(src, int(layer[1:]))] = (figure(FIGURES, key, "spearman_mean"), figure(FIGURES, key, "spearman_sd"))
    return out


PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE3 = (_paper_table(t) for t in ("table1", "table2", "table3"))
#: test examples per table (captions) and the agreement model's accuracy (Section 2)
PAPER_N = {t: int(figure(FIGURES, f"{t} test set", "examples")) for t in ("table1", "table2", "table3")}
PAPER_SV_ACCURACY = figure(FIGURES, "agreement model", "accuracy")
PAPER = {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2, "table3": PAPER_TABLE3}
#: what each table compares (the ``task`` of its rows in results.csv)
TABLES = {"table1": ("agreement", "blank_out"), "table2": ("agreement", "input_gradient"),
          "table3": ("sentiment", "input_gradient")}


# ---------------------------------------------------------------------------------------------- models
def sentiment_classifier(folder: Path, args) -> tuple:
    """MiniLM-L6 fine-tuned on Rotten Tomatoes: loaded from ``folder`` when saved there, else trained and saved."""
    info_path = folder / "training_data.json"
    if (folder / "recipe.json").is_file():
        return probekit.load_model(str(folder)), json.loads(info_path.read_text()) if info_path.is_file() else {}
    train = rotten_tomatoes_splits(seed=0)["train"]
    train = train.sample(min(args.train_size, len(train)), random_state=args.seed).reset_index(drop=True)
    t0 = time.time()
    v = finetune("minilm-l6", train, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_length=64,
                 seed=args.seed, out=folder, progress=False)
    info = {"train_size": len(train), "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
            "seconds": round(time.time() - t0, 1)}
    info_path.write_text(json.dumps(info, indent=1))
    return v.model, info


def agreement_model(folder: Path, splits: dict, args) -> tuple:
    """The 6-layer, 8-head, hidden-128 encoder trained from scratch on verb number (reused from ``folder``)."""
    import transformers

    info_path = folder / "training_data.json"
    if (folder / "recipe.json").is_file():
        return probekit.load_model(str(folder)), json.loads(info_path.read_text()) if info_path.is_file() else {}
    config = transformers.BertConfig(vocab_size=30522, hidden_size=128, num_hidden_layers=6, num_attention_heads=8,
                                     intermediate_size=512, max_position_embeddings=128)
    base = probekit.load_model(config, head="sequence-classification", num_labels=2, seed=args.seed,
                               name="sv-encoder")
    t0 = time.time()
    v = finetune(base, labelled(splits["train"]), eval_data=labelled(splits["validation"]), epochs=args.sv_epochs,
                 lr=args.sv_lr, batch_size=128, max_length=128, warmup_ratio=0.06, early_stopping=None,
                 seed=args.seed, out=folder, progress=False)
    info = {"train": len(splits["train"]), "validation": len(splits["validation"]), "epochs": args.sv_epochs,
            "lr": args.sv_lr, "batch_size": 128, "seconds": round(time.time() - t0, 1),
            "validation_accuracy": v.report.get("eval", {}).get("accuracy")}
    info_path.write_text(json.dumps(info, indent=1))
    return v.model, info


# ---------------------------------------------------------------------------------------------- scoring
def attention_relevance(model, texts: list[str], *, read: str, n_flow: int, flow_max_tokens: int) -> tuple:
    """Per sentence ``{source: [layers, T]}`` (flow for the first ``n_flow`` short enough) and the flow seconds."""
    sites = [f"L{i}.attn.pattern" for i in range(model.n_layers)]
    cache = model.run_with_cache(texts, sites, batch_size=16)
    per_block = [cache.examples(s) for s in sites]
    out, t_flow, n_done = [], 0.0, 0
    for k in range(len(texts)):
        patterns = [per_block[b][k].float() for b in range(model.n_layers)]
        do_flow = n_done < n_flow and patterns[0].shape[-1] <= flow_max_tokens
        t0 = time.time()
        out.append(relevance(patterns, read=read, flow=do_flow, flow_max_tokens=flow_max_tokens))
        if do_flow:
            t_flow += time.time() - t0
            n_done += 1
    return out, t_flow


def correlations(importance: list[np.ndarray], rel: list[dict], content, against: str, n_layers: int) -> pd.DataFrame:
    """Per sentence, layer (1-based, the layer axis) and source: Spearman of ``against`` with the relevance."""
    tables = []
    for layer in range(1, n_layers + 1):
        for source in SOURCES:
            idx = [i for i, r in enumerate(rel) if source in r]
            if not idx:
                continue
            t = agreement({against: [importance[i] for i in idx], source: [rel[i][source][layer - 1] for i in idx]},
                          content=None if content is None else [content[i] for i in idx])
            t["example"] = [idx[e] for e in t["example"]]
            t["layer"] = layer
            tables.append(t)
    return pd.concat(tables, ignore_index=True)


def summarise(table: pd.DataFrame, task: str, ctx: dict, n_boot: int, seed: int) -> pd.DataFrame:
    """Mean with a bootstrap interval per layer and source (agreement_results), ``extra`` = sd and n."""
    frame = agreement_results(table, task=task, n_boot=n_boot, seed=seed, **ctx).to_frame()
    sd = table.groupby(["layer", "a", "b"])["spearman"].agg(lambda x: float(np.nanstd(x)))
    n = table.groupby(["layer", "a", "b"])["spearman"].agg(lambda x: int(np.isfinite(x).sum()))
    keys = [(int(r.layer), *r.metric.split(":", 1)[1].split("~")) for r in frame.itertuples()]
    frame["extra"] = [{"sd": sd[k], "n": int(n[k])} for k in keys]
    return frame


# ---------------------------------------------------------------------------------------------- settings
def run_sentiment(args, timings: dict) -> tuple[pd.DataFrame, dict]:
    t0 = time.time()
    model, info = sentiment_classifier(Path(args.model_dir), args)
    timings["sentiment_model"] = time.time() - t0
    test = rotten_tomatoes_splits(seed=0)["test"]
    pred = predict_logits(model, test["text"]).argmax(-1).numpy()
    acc = bootstrap_ci(test["label"].to_numpy(), pred, n_boot=args.n_boot, random_state=args.seed)
    lengths = [len(ids) for ids in model.tokenizer(list(test["text"]))["input_ids"]]
    keep = [i for i, n in enumerate(lengths) if n <= args.max_tokens][: args.n]
    texts, gold = [test["text"].iloc[i] for i in keep], [int(test["label"].iloc[i]) for i in keep]
    t1 = time.time()
    grads = input_gradients(model, texts, gold)
    rel, t_flow = attention_relevance(model, texts, read="max", n_flow=len(texts), flow_max_tokens=args.max_tokens)
    timings["sentiment_scores"] = time.time() - t1
    table = correlations(grads, rel, None, "input_gradient", model.n_layers)
    ctx = {"model": "minilm-l6-rt", "variant": "finetune", "split": "test"}
    acc_row = Results([{**ctx, "task": "sentiment", "seed": args.seed, "metric": "accuracy", "value": acc.estimate,
                        "ci_low": acc.low, "ci_high": acc.high, "extra": {"n": len(test)}}]).to_frame()
    frame = pd.concat([acc_row, summarise(table, "table3", ctx, args.n_boot, args.seed)], ignore_index=True)
    meta = {**info, "accuracy": acc, "n": len(texts), "n_test": len(test), "t_flow": t_flow,
            "median_tokens": int(np.median([lengths[i] for i in keep]))}
    return frame, meta


def run_agreement(args, timings: dict) -> tuple[pd.DataFrame, dict]:
    cache = Path(args.sv_dir)
    t0 = time.time()
    data = build_agreement_data(cache, reviews=args.sv_reviews, seed=args.seed)
    timings["agreement_data"] = time.time() - t0
    splits = split(data, n_test=args.sv_test, n_val=args.sv_val)
    t0 = time.time()
    model, info = agreement_model(cache / f"model_imdb{args.sv_reviews}", splits, args)
    timings["agreement_model"] = time.time() - t0
    test = splits["test"]
    y = (test["label"] == "plural").to_numpy().astype(int)
    pred = predict_logits(model, test["text"]).argmax(-1).numpy()
    acc = bootstrap_ci(y, pred, n_boot=args.n_boot, random_state=args.seed)
    by_attr = {int(k): (float(np.mean(pred[g.index] == y[g.index])), len(g))
               for k, g in test.groupby(test["attractors"].clip(upper=2))}
    lengths = [len(ids) for ids in model.tokenizer(list(test["text"]))["input_ids"]]
    keep = [i for i, n in enumerate(lengths) if n <= args.max_tokens][: args.sv_n]
    texts, gold = [test["text"].iloc[i] for i in keep], [int(y[i]) for i in keep]
    t1 = time.time()
    blank = [None] * len(texts)
    for label in (0, 1):  # blank-out of the correct class's probability: one call per gold class
        idx = [i for i, g in enumerate(gold) if g == label]
        for i, a in zip(idx, Attributor(model, "blank_out").attribute([texts[i] for i in idx], target=label,
                                                                      baseline="unk")):
            blank[i] = a
    grads = input_gradients(model, texts, gold)
    rel, t_flow = attention_relevance(model, texts, read="cls", n_flow=args.sv_n, flow_max_tokens=args.max_tokens)
    timings["agreement_scores"] = time.time() - t1
    special = set(model.tokenizer.all_special_tokens)
    content = [np.array([t not in special for t in a.tokens]) for a in blank]
    ctx = {"model": "sv-encoder", "variant": "scratch", "split": "test"}
    acc_rows = [{**ctx, "task": "agreement", "seed": args.seed, "metric": "accuracy", "value": acc.estimate,
                 "ci_low": acc.low, "ci_high": acc.high, "extra": {"n": len(test)}}]
    acc_rows += [{**ctx, "task": f"agreement:attractors={k}{'+' if k == 2 else ''}", "metric": "accuracy",
                  "value": v, "extra": {"n": n}} for k, (v, n) in by_attr.items()]
    frame = pd.concat([Results(acc_rows).to_frame(),
                       summarise(correlations([a.scores for a in blank], rel, content, "blank_out", model.n_layers),
                                 "table1", ctx, args.n_boot, args.seed),
                       summarise(correlations(grads, rel, content, "input_gradient", model.n_layers),
                                 "table2", ctx, args.n_boot, args.seed)], ignore_index=True)
    meta = {**info, "accuracy": acc, "by_attractors": by_attr, "n": len(texts), "n_data": len(data),
            "n_train": len(splits["train"]), "n_test": len(test), "t_flow": t_flow, "reviews": args.sv_reviews,
            "median_tokens": int(np.median([lengths[i] for i in keep])),
            "attractor_share": float((test["attractors"] > 0).mean()), "majority": float(max(y.mean(), 1 - y.mean()))}
    return frame, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=PAPER_N["table3"],
                    help=f"Sentiment test sentences (the paper: {PAPER_N['table3']}, Table 3)")
    ap.add_argument("--max-tokens", type=int, default=30, help="Longest sentence, in word pieces with [CLS]/[SEP]")
    ap.add_argument("--train-size", type=int, default=2000, help="Sentiment fine-tuning sentences (seeded sample)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--sv-reviews", type=int, default=10000, help="IMDB reviews parsed for agreement examples")
    ap.add_argument("--sv-test", type=int, default=3000, help="Agreement test examples")
    ap.add_argument("--sv-val", type=int, default=1000, help="Agreement validation examples")
    ap.add_argument("--sv-n", type=int, default=PAPER_N["table1"],
                    help=f"Agreement test examples scored (the paper: {PAPER_N['table1']}, Tables 1-2)")
    ap.add_argument("--sv-epochs", type=float, default=4.0)
    ap.add_argument("--sv-lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1: on a shared 2-core machine more threads stall each other)")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--model-dir", default=str(ROOT / "runs" / "papers" / "abnar_zuidema_2020" / "model"))
    ap.add_argument("--sv-dir", default=str(ROOT / "runs" / "papers" / "abnar_zuidema_2020" / "agreement"))
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0, timings = time.time(), {}
    sent, sent_meta = run_sentiment(args, timings)
    print(f"sentiment: test accuracy {sent_meta['accuracy'].estimate:.3f}; {sent_meta['n']} sentences scored")
    sv, sv_meta = run_agreement(args, timings)
    print(f"agreement: {sv_meta['n_data']} examples, test accuracy {sv_meta['accuracy'].estimate:.3f}")
    timings["total"] = time.time() - t0
    frame = pd.concat([sent, sv], ignore_index=True)
    md = write_outputs(frame, out, paper=PAPER, tables=TABLES, sent=sent_meta, sv=sv_meta, timings=timings, args=args,
                       sources={t: figure_source(FIGURES, f"{t} raw L1") for t in TABLES},
                       sv_accuracy=(PAPER_SV_ACCURACY, figure_source(FIGURES, "agreement model")))
    print(md)


if __name__ == "__main__":
    main()
