# %% [markdown]
# # Compressed variants, compared layer by layer
#
# Pruning and quantization change a model's accuracy a little and its internals more or less: which layers move?
# probekit makes each compressed model a **variant** (the model plus a frozen recipe and a layer map back to its
# parent), extracts it like any model, and compares it with its parent layer by layer (linear CKA, Procrustes),
# on the parent's layer axis.
#
# Sizes here are small so the page builds in about a minute on two CPU cores: a sentiment classifier fine-tuned
# on 400 Rotten Tomatoes sentences for two epochs, then magnitude-pruned, head-pruned and int8-quantized.

# %%
import shutil
import tempfile
from pathlib import Path

import pandas as pd

import probekit
from probekit.compare import compare
from probekit.plots import diagonal_curves, similarity_heatmap

# probekit.plots draws with the non-interactive Agg backend; show its figures in the notebook
# %matplotlib inline
from probekit.variants import evaluate, finetune, magnitude_prune, prune_heads, quantize, rotten_tomatoes_splits

work = Path(tempfile.mkdtemp(prefix="probekit-tutorial-"))
splits = rotten_tomatoes_splits(seed=0)
train = splits["train"].sample(400, random_state=0)
test = splits["test"].sample(100, random_state=0)

# %% [markdown]
# ## The parent: a fine-tuned classifier

# %%
base = probekit.load_model("minilm-l6", head="sequence-classification", num_labels=2)
ft = finetune(base, train, epochs=2, lr=1e-4, batch_size=16, max_length=48, early_stopping=None,
              out=work / "finetuned", progress=False)
ft.recipe

# %% [markdown]
# ## Three variants
#
# Each call returns a `ModelVariant` whose recipe enters the fingerprint of every store extracted from it.

# %%
variants = {
    "finetuned": ft,
    "magnitude50": magnitude_prune(ft, sparsity=0.5),
    "heads25": prune_heads(ft, fraction=0.25, importance="magnitude"),
    "int8": quantize(ft, method="dynamic-int8"),
}
table = pd.DataFrame([{"variant": name, **evaluate(v, test, max_length=48)} for name, v in variants.items()])
table[["variant", "accuracy", "macro_f1"]].round(3)

# %% [markdown]
# ## Extract each on the same sentences
#
# The sentence-mean of the residual stream at every layer, for the 100 test sentences. The stores record each
# variant's recipe and layer map.

# %%
sites = ["emb"] + [f"L{i}.resid" for i in range(6)]
stores = {name: probekit.extract(v, test[["text", "label"]], sites=sites, out=work / f"store-{name}", tokens=False,
                                 sentence_pooling=["mean"], progress=False)
          for name, v in variants.items()}

# %% [markdown]
# ## Compare with the parent
#
# `compare` streams layer x layer similarity matrices over the two stores; the layer map pairs each layer of the
# variant with the parent's layer it descends from (all of them here: pruning and quantization keep the depth).

# %%
comparisons = {name: compare(stores["finetuned"], stores[name], progress=False)
               for name in ("magnitude50", "heads25", "int8")}
fig = similarity_heatmap(comparisons["magnitude50"].matrices["linear_cka"],
                         title="linear CKA, finetuned vs magnitude50")

# %% [markdown]
# The diagonal (each layer against its counterpart) for every variant at once: the closer to 1, the less the
# compression changed that layer's representation. Dynamic int8 stays close everywhere; pruning half the weights
# moves the later layers most.

# %%
frames = []
for name, comp in comparisons.items():
    frame = comp.to_frame()
    frame["variant"] = name
    frames.append(frame)
rows = pd.concat(frames, ignore_index=True)
fig = diagonal_curves(rows, measure="linear_cka", title="linear CKA of aligned layers, against the fine-tuned parent")

# %%
diag = rows[(rows["site"] == rows["site_b"]) & rows["metric"].astype(str).str.startswith("linear_cka")]
diag.pivot_table(index="layer", columns="variant", values="value").round(3)

# %% [markdown]
# `work` was scratch space for this page; remove it (skip this cell to keep the stores and look around).

# %%
shutil.rmtree(work)
