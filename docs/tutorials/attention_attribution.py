# %% [markdown]
# # Attention and attribution
#
# Two views of what a model attends to and relies on. **Attention statistics** summarise every head over a data
# set (how much mass goes to `[CLS]`, `[SEP]`, punctuation, the previous or next token; entropy; distance), read
# from patterns stored once. **Attribution** asks which input tokens a prediction depends on, by gradients
# (captum's integrated gradients, saliency, ...), here for a sentiment probe read from a layer of the frozen
# model, and how much two methods agree.

# %%
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

import probekit
from probekit.attention import AttentionSuite
from probekit.attribution import Attributor, agreement
from probekit.data import load_movie_reviews
from probekit.plots import attention_heatmap, attribution_png, layer_head_grid, pattern_frame

# probekit.plots draws with the non-interactive Agg backend; show its figures in the notebook
# %matplotlib inline

work = Path(tempfile.mkdtemp(prefix="probekit-tutorial-"))
model = probekit.load_model("minilm-l6")
data = load_movie_reviews("rotten_tomatoes").sample(n=200, random_state=0)[["text", "label"]]

# %% [markdown]
# ## Head statistics over a data set
#
# Attention patterns are sites like any other (`L{i}.attn.pattern`); probekit switches the model to eager
# attention for the extraction only, since the default kernel returns no weights.

# %%
sites = [f"L{i}.attn.pattern" for i in range(model.n_layers)] + ["L5.resid"]
store = probekit.extract(model, data, sites=sites, out=work / "attn", sentence_pooling=["mean"], progress=False)
suite = AttentionSuite(store, model.tokenizer)
stats = suite.head_statistics(progress=False).to_frame()
stats.head()

# %% [markdown]
# Mass on `[SEP]` per head: in BERT-like models many heads in the middle layers park their attention on the
# separator (Clark et al. 2019). Layers are on the one layer axis: block `i`'s pattern is layer `i + 1`.

# %%
fig = layer_head_grid(stats[stats["metric"] == "sep"], title="attention mass on [SEP]")

# %%
from probekit.attention import special_mass

special_mass(stats).round(3)

# %% [markdown]
# One sentence's pattern, averaged over the heads of block 2:

# %%
i = int(np.argmin(np.abs(store.examples["text"].str.split().str.len() - 12)))
tokens = model.tokenizer.convert_ids_to_tokens(store.input_ids(i).tolist())
pattern = torch.from_numpy(np.asarray(store["L2.attn.pattern"].example(i), np.float32))
fig = attention_heatmap(pattern_frame(pattern, tokens, head="mean"),
                        title=f"block 2, mean of heads: {data.iloc[i].text}")

# %% [markdown]
# Attention rollout (Abnar & Zuidema 2020) composes the patterns through the residual connections; its last
# layer, row `[CLS]`, says which tokens feed the first position:

# %%
roll = suite.rollout(i)
dict(zip(tokens, np.round(roll[-1][0], 3)))

# %% [markdown]
# ## Attribution of a probe's prediction
#
# A sentiment probe on the sentence-mean of `L5.resid`, fitted from the store (scikit-learn's logistic
# regression here; any probe works), then written as a torch function of the site's activations, so gradients
# flow from its prediction back to the input tokens through the frozen model.

# %%
X = store["L5.resid"].sentences("mean").astype(np.float32)
y = store.examples["label"].to_numpy()
clf = LogisticRegression(max_iter=2000).fit(X[:150], y[:150])
print(f"probe accuracy on 50 held-out sentences: {clf.score(X[150:], y[150:]):.2f}")
W = torch.tensor(clf.coef_, dtype=torch.float32)
b = torch.tensor(clf.intercept_, dtype=torch.float32)


def sentiment_probe(acts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Logits [B, 2] from L5.resid activations [B, T, d]: mean over real tokens, then the linear map."""
    m = mask.unsqueeze(-1).to(acts.dtype)
    pooled = (acts * m).sum(1) / m.sum(1)
    z = pooled @ W.T + b  # one logit (positive vs negative)
    return torch.cat([-z / 2, z / 2], dim=-1)


texts = list(data["text"].iloc[150:154])
by_method = {m: Attributor(model, m, probe=sentiment_probe, probe_site="L5.resid").attribute(texts, n_steps=32)
             for m in ("integrated_gradients", "saliency")}
first = by_method["integrated_gradients"][0]
print("tokens:", first.tokens)
print("completeness delta of integrated gradients:", [round(float(a.delta), 4) for a in
                                                      by_method["integrated_gradients"] if a.delta is not None])

# %%
fig = attribution_png(first.tokens, {m: atts[0].scores for m, atts in by_method.items()},
                      title=f"predicted class {first.target}: {texts[0]}")

# %% [markdown]
# How far do the two methods agree? Spearman correlation per sentence over the content tokens:

# %%
content = [np.array([t not in ("[CLS]", "[SEP]") for t in a.tokens]) for a in by_method["saliency"]]
agreement({m: [a.scores for a in atts] for m, atts in by_method.items()}, content=content)

# %% [markdown]
# `work` was scratch space for this page; remove it (skip this cell to keep the stores and look around).

# %%
shutil.rmtree(work)
