# %% [markdown]
# # Extract once, analyse many
#
# Running a transformer is the expensive part of an interpretability study; fitting probes or computing
# similarities on its activations is cheap. probekit runs the model once per set of sentences, writes the
# activations to an **activation store** on disk, and every later analysis reads the store: a research script
# over cached activations needs no model at all.
#
# This tutorial extracts the residual stream of MiniLM-L6 for about 300 Rotten Tomatoes sentences, shows what a store
# holds, reuses it on a second call, derives task stores from it without a forward pass, and fits probes from it.

# %%
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import probekit
from probekit.data import build_task

work = Path(tempfile.mkdtemp(prefix="probekit-tutorial-"))
sentiment = build_task("sentiment", "rt", limit=300)  # Rotten Tomatoes sentences with the corpus's polarity
data = pd.DataFrame({"text": sentiment.dataset.texts, "label": [int(v == "pos") for v in sentiment.dataset.labels]})
data.head(3)

# %% [markdown]
# ## One extraction
#
# `probekit.extract` takes a model (or an alias), the data, the sites and an output folder. It keeps the token
# rows (every token's vector at every site, no padding stored) and, here, mean-pooled sentence rows too.

# %%
model = probekit.load_model("minilm-l6")
t0 = time.perf_counter()
store = probekit.extract(model, data, sites="resid", out=work / "rt", sentence_pooling=["mean"], progress=False)
first = time.perf_counter() - t0
print(f"extracted in {first:.1f} s: {store.n_examples} examples, sites {store.sites}")

# %% [markdown]
# The same call again finds a complete store whose fingerprint (weights, data, sites, tokenization, pooling,
# dtype, format version) matches, and returns it without running the model:

# %%
t0 = time.perf_counter()
again = probekit.extract(model, data, sites="resid", out=work / "rt", sentence_pooling=["mean"], progress=False)
print(f"second call: {time.perf_counter() - t0:.2f} s, same fingerprint: {again.fingerprint == store.fingerprint}")

# %% [markdown]
# ## What a store holds
#
# Reading needs no model: `ActivationStore.open` checks the manifest and maps the shards.

# %%
store = probekit.ActivationStore.open(work / "rt")
print(store["L3.resid"].example(0).shape, "token rows of example 0 at L3.resid")
print(store["L3.resid"].sentences("mean").shape, "sentence rows")
n_rows = sum(batch.x.shape[0] for batch in store["L3.resid"].iter_batches(256))
print(n_rows, "token rows streamed in bounded memory")
store.examples.head(3)

# %% [markdown]
# ## Many analyses from one store
#
# Sentiment probes at every layer from the sentence rows, without the model:

# %%
from probekit.probes import LinearProbe, bootstrap_ci, fit_batched

y = store.examples["label"].to_numpy()
test = np.random.default_rng(0).random(len(y)) < 0.3
sites = ["emb"] + [f"L{i}.resid" for i in range(6)]
Xs = [store[s].sentences("mean").astype(np.float32) for s in sites]
fitted = fit_batched(LinearProbe(random_state=0), [x[~test] for x in Xs], y[~test])
for site, x, (probe,) in zip(sites, Xs, fitted):
    ci = bootstrap_ci(y[test], probe.predict(x[test]), metric="accuracy", random_state=0)
    print(f"{site:9s} sentiment accuracy {ci.estimate:.3f} [{ci.low:.3f}, {ci.high:.3f}]")

# %% [markdown]
# ## Task stores derived, not re-extracted
#
# A word-level task (part of speech, with spaCy's silver labels) on the same sentences needs word rows: one
# vector per word, pooled from its subword tokens. `extract_tasks(..., sources=[store])` finds every task
# sentence in the token rows already on disk and pools them (`probekit.store.derive`): the model runs only over
# the task sentences no source holds (the sentiment task left out a few of the 300 sentences).

# %%
from probekit.probes import extract_tasks

upos = build_task("upos", "rt", limit=300)
held = set(store.examples["text"])
print(f"{sum(t in held for t in upos.dataset.texts)} of {len(upos.dataset)} task sentences are in the store")
(tasks, upos_store), = extract_tasks(model, [upos], work / "tasks", sources=[store], progress=False)
print(upos_store.path.name, upos_store.n_examples, "examples;",
      upos_store["L2.resid"].words(0, "mean").shape, "word rows of example 0 at L2.resid")

# %% [markdown]
# The derived store is fingerprinted by its sources, so it is reused like an extraction and refused if a source
# changes. From here the [probe table tutorial](probe_table.py) runs the full suite on such stores.

# %% [markdown]
# `work` was scratch space for this page; remove it (skip this cell to keep the stores and look around).

# %%
shutil.rmtree(work)
