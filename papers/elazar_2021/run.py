"""Paper check: Elazar et al. 2021, "Amnesic Probing: Behavioral Explanation with Amnesic Counterfactuals".

Amnesic probing removes a property from a layer and asks whether the model's
behaviour suffers more than when a random subspace of the same dimension is
removed. Two settings, both with :func:`probekit.interventions.amnesic_probe`:

- **Language model** (`smollm2-135m`, SmolLM2-135M-Instruct, a 30-layer Llama
  decoder): UPOS and dependency labels (gold UD English EWT); the eraser and the
  probe train on a seeded sample of train sentences, the probe is scored on the
  dev file; the behaviour is next-token loss and accuracy on held-out dev
  sentences, with the eraser applied at that layer to every token.
- **Sentiment classifier** (MiniLM-L6 fine-tuned on Rotten Tomatoes with
  ``probekit.variants.finetune``, cached under ``runs/papers/``): the sentence
  label erased at each layer; behaviour = test accuracy.

The eraser is LEACE by default (``--method inlp`` for INLP, the paper's
eraser). Intervals: 95% paired bootstrap over held-out examples (behaviour)
and over test rows (probe). Writes ``results.md``, ``results.csv`` and
``amnesic.png`` next to this file.

Usage::

    PROBEKIT_UD_PATH=... HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python papers/elazar_2021/run.py
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _ud import UD_PATH_HELP, ud_task  # noqa: E402

import probekit  # noqa: E402
from probekit.data import ProbingDataset, Task  # noqa: E402
from probekit.interventions import ClassifierBehaviour, NextTokenBehaviour, amnesic_probe, amnesic_table  # noqa: E402
from probekit.plots import amnesic_plot  # noqa: E402
from probekit.probes import extract_task  # noqa: E402

ROOT = HERE.parents[1]


def lm_part(args, out_rows: list) -> dict:
    lm = probekit.load_model("smollm2-135m", head="causal-lm")
    sites = [f"L{i}.resid" for i in args.lm_layers]
    info = {}
    for name in args.lm_tasks:
        task = ud_task(name, args.ud_path, train_sentences=args.train_sentences, seed=args.seed)
        ds = task.dataset
        # the store holds the train sample and the first --test-sentences dev sentences (probe test rows)
        test_idx = [i for i, s in enumerate(ds.splits) if s == "test"][: args.test_sentences]
        keep = [i for i, s in enumerate(ds.splits) if s != "test"] + test_idx
        task = replace(task, dataset=ds.subset(keep))
        # word-level UD tasks share their sentences, so one store (keyed by the words) serves them all
        store = extract_task(lm, task, Path(args.store_root) / f"elazar_ud_smollm2_{args.train_sentences}_"
                             f"{args.test_sentences}_seed{args.seed}", sites, dtype="float32", progress=False)
        held = [" ".join(w) for w, s in zip(task.dataset.word_lists(), task.dataset.splits) if s == "test"]
        held = held[: args.lm_texts]
        t0 = time.time()
        res = amnesic_probe(lm, store, task, NextTokenBehaviour(held, batch_size=8), method=args.method,
                            seed=args.seed, n_boot=args.n_boot)
        info[name] = {"n_train_words": int(sum(len(x) for x, s in zip(task.dataset.labels, task.dataset.splits)
                                               if s == "train")),
                      "n_test_words": int(sum(len(x) for x, s in zip(task.dataset.labels, task.dataset.splits)
                                              if s == "test")),
                      "n_held_out_texts": len(held), "seconds": round(time.time() - t0, 1)}
        print(f"{name}: {info[name]}", flush=True)
        out_rows.append(res.to_frame().assign(setting="lm"))
    return info


def sentiment_classifier(folder: Path, args):
    from probekit.variants import finetune, rotten_tomatoes_splits

    if (folder / "recipe.json").is_file():
        return probekit.load_model(str(folder))
    train = rotten_tomatoes_splits(seed=0)["train"].sample(args.ft_size, random_state=args.seed)
    v = finetune("minilm-l6", train.reset_index(drop=True), epochs=2, lr=1e-4, batch_size=32, max_length=48,
                 seed=args.seed, out=folder, progress=False)
    return v.model


def classifier_part(args, out_rows: list) -> dict:
    from probekit.variants import evaluate, rotten_tomatoes_splits

    model = sentiment_classifier(Path(args.store_root) / f"elazar_minilm_rt_{args.ft_size}_seed{args.seed}", args)
    splits = rotten_tomatoes_splits(seed=0)
    train = splits["validation"]  # not seen in fine-tuning: eraser and probe train here
    test = splits["test"]
    words = [t.split() for t in train["text"]] + [t.split() for t in test["text"]]
    labels = [str(v) for v in train["label"]] + [str(v) for v in test["label"]]
    ds = ProbingDataset.from_lists(words, labels, splits=["train"] * len(train) + ["test"] * len(test))
    task = Task("sentiment", "sentence", ds, ("0", "1"), args.seed, "Rotten Tomatoes polarity", "rt")
    store = extract_task(model, task, Path(args.store_root) / f"elazar_sentiment_minilm_rt_seed{args.seed}",
                         progress=False)
    beh = ClassifierBehaviour(list(test["text"]), list(test["label"]))
    res = amnesic_probe(model, store, task, beh, method=args.method, seed=args.seed, n_boot=args.n_boot,
                        n_random=3)
    out_rows.append(res.to_frame().assign(setting="classifier"))
    return {"test_accuracy": evaluate(model, test)["accuracy"], "n_train": len(train), "n_test": len(test)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ud-path", default=None, help=UD_PATH_HELP)
    ap.add_argument("--train-sentences", type=int, default=400, help="seeded sample of UD train sentences")
    ap.add_argument("--test-sentences", type=int, default=300, help="dev sentences for the probe's test rows")
    ap.add_argument("--lm-texts", type=int, default=100, help="held-out dev sentences for next-token behaviour")
    ap.add_argument("--lm-layers", type=int, nargs="+", default=[0, 6, 12, 18, 24, 29])
    ap.add_argument("--lm-tasks", nargs="+", default=["upos", "deprel"])
    ap.add_argument("--ft-size", type=int, default=1000, help="RT sentences the classifier is fine-tuned on")
    ap.add_argument("--method", default="leace", choices=["leace", "inlp"])
    ap.add_argument("--skip", nargs="*", default=[], choices=["lm", "classifier"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--store-root", default=str(ROOT / "runs" / "papers"))
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out = Path(args.out)
    t0 = time.time()
    rows: list = []
    info: dict = {}
    if "classifier" not in args.skip:
        info["classifier"] = classifier_part(args, rows)
    if "lm" not in args.skip:
        info["lm"] = lm_part(args, rows)
    df = pd.concat(rows, ignore_index=True)
    df.to_csv(out / "results.csv", index=False)
    info["seconds"] = round(time.time() - t0, 1)
    info["args"] = {k: v for k, v in vars(args).items() if k not in ("ud_path", "store_root", "out")}
    (out / "run_info.json").write_text(json.dumps(info, indent=1, default=str) + "\n")
    res = probekit.Results(df.drop(columns=["setting"]))
    table = amnesic_table(res)
    amnesic_plot(table).savefig(out / "amnesic.png", dpi=120)
    print(table.to_string())
    print(json.dumps(info, indent=1, default=str))


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
