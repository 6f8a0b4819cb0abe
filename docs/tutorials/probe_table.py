# %% [markdown]
# # A layer-wise probe table with controls and baselines
#
# Does a layer of MiniLM-L6 encode part of speech, or sentence polarity, and is what a probe finds there more than
# what a probe could learn from any representation? This tutorial builds the table a probing paper reports:
# accuracy per layer with a 95% bootstrap interval, the control task of Hewitt & Liang (2019) and the selectivity
# it gives, the majority baseline, the embedding layer (layer 0), and the same model with random weights.
#
# Everything runs offline on the bundled model (`minilm-l6`) and Rotten Tomatoes sentences, labelled for part of
# speech by spaCy (silver labels) and for sentiment by the corpus itself.

# %%
import shutil
import tempfile
from pathlib import Path

import probekit
from probekit.data import build_task
from probekit.plots import probe_curves, selectivity_curves

# probekit.plots draws with the non-interactive Agg backend; show its figures in the notebook
# %matplotlib inline
from probekit.probes import LinearProbe, ProbeSuite, extract_tasks, random_init_copy
from probekit.report import probe_summary

work = Path(tempfile.mkdtemp(prefix="probekit-tutorial-"))
model = probekit.load_model("minilm-l6")
model.n_layers, model.sites()[:8]

# %% [markdown]
# ## Tasks
#
# A task is a dataset (sentences, words and labels, with train/dev/test splits) plus what is predicted and at which
# level. `upos` labels every word; `sentiment` labels the sentence. Both are built from the same 300 sentences.

# %%
upos = build_task("upos", "rt", limit=300)
sentiment = build_task("sentiment", "rt", limit=300)
upos.class_stats().head()

# %% [markdown]
# ## Extract once
#
# `extract_tasks` runs the model once over the task sentences and writes an activation store per group of tasks
# that share their sentences, with the pooled rows each task reads (word rows for `upos`, sentence rows for
# `sentiment`). The random-weights baseline is the same architecture with freshly drawn weights.

# %%
groups = extract_tasks(model, [upos, sentiment], work / "stores", progress=False)
random_model = random_init_copy(model, seed=0)
random_groups = extract_tasks(random_model, [upos, sentiment], work / "stores-random", progress=False)
[(sorted(t.name for t in tasks), store.path.name) for tasks, store in groups]

# %% [markdown]
# ## The suite
#
# One `ProbeSuite` per store: a linear probe at every layer, the control task beside each task, 200 bootstrap
# replicates (use 1,000 and several seeds for a paper). The stores are keyed by `(model, variant)` so the
# random-weights rows are labelled as such.
#
# By default linear probes stream from the store in bounded memory with minibatch Adam, which is what scales to
# a treebank; at this size the features fit in memory many times over, and full-batch L-BFGS on them
# (`stream=False`) is the quicker fit.

# %%
frames = []
probe = LinearProbe(solver="lbfgs", random_state=0)
for (tasks, store), (_, random_store) in zip(groups, random_groups):
    suite = ProbeSuite(tasks, {"linear": probe}, seeds=(0,), n_boot=200, stream=False)
    results = suite.run({"minilm-l6": store, ("minilm-l6", "random-weights"): random_store})
    frames.append(results.to_frame())

import pandas as pd

rows = pd.concat(frames, ignore_index=True)
rows[["model", "variant", "task", "layer", "site", "probe", "seed", "metric", "value", "ci_low", "ci_high"]].head()

# %% [markdown]
# Every number is a tidy row with the same columns (the `Results` schema), so the table a paper shows is a pivot.
# `probe_summary` gives accuracy per layer with its interval:

# %%
summary = probe_summary(rows)
summary[summary["variant"] != "random-weights"].round(3)

# %% [markdown]
# ## Curves: task, control and majority
#
# The solid line is the task, dashed its control task, grey the majority baseline; the random-weights model is a
# line of its own.

# %%
fig = probe_curves(rows, probe="linear")

# %% [markdown]
# Selectivity is task accuracy minus control accuracy: a probe that is accurate but just as accurate on the control
# task (random labels per word type) has memorised word identity rather than read structure.

# %%
fig = selectivity_curves(rows, probe="linear")

# %% [markdown]
# ## Reading the table
#
# - Layer 0 (`emb`) is the embedding-layer baseline: for part of speech it is already high, because word identity
#   predicts most tags; what the layers add is the gain above it.
# - The random-weights model keeps the tokenizer and architecture; where it approaches the trained model, the
#   probe is learning from the input, not from what pretraining put there.
# - The intervals are over test examples, so with 300 sentences they are wide: compare layers with the paired
#   tests in the rows (`delta_accuracy_vs_prev`, `mcnemar_p_vs_prev`) rather than by eye.

# %%
rows[rows["metric"].isin(["expected_layer", "center_of_gravity"])][["variant", "task", "metric", "value"]]

# %% [markdown]
# `work` was scratch space for this page; remove it (skip this cell to keep the stores and look around).

# %%
shutil.rmtree(work)
