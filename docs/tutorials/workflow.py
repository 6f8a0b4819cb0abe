# %% [markdown]
# # From a model to a deployed quantized one, step by step
#
# The whole workflow on one page: load a pretrained encoder, look at what its layers hold, fine-tune it for a
# task, compress it, check that the compressed model still behaves and where it changed, save it with its
# recipe, and export a quantized model that runs without PyTorch (ONNX Runtime). Each step is one probekit call;
# sizes are small so the page builds in a minute or two on two CPU cores.

# %%
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import probekit
from probekit.compare import compare
from probekit.probes import LinearProbe, fit_batched
from probekit.variants import evaluate, export, finetune, quantize, rotten_tomatoes_splits

work = Path(tempfile.mkdtemp(prefix="probekit-tutorial-"))
splits = rotten_tomatoes_splits(seed=0)
train, test = splits["train"].sample(320, random_state=0), splits["test"].sample(100, random_state=0)

# %% [markdown]
# ## 1. Load
#
# `load_model` takes an alias of a bundled model, a local Hugging Face folder, a hub name, a config or a built
# model; here the bundled all-MiniLM-L6-v2 with a fresh two-class head.

# %%
base = probekit.load_model("minilm-l6", head="sequence-classification", num_labels=2)
print(base.name, base.n_layers, "blocks;", len(base.sites()), "sites, e.g.", base.sites()[:4])

# %% [markdown]
# ## 2. Look before training
#
# Is sentiment linearly readable from the pretrained layers? Extract the sentence-mean of each layer once and fit
# a probe per layer.

# %%
sites = ["emb"] + [f"L{i}.resid" for i in range(base.n_layers)]
store = probekit.extract(base, train[["text", "label"]], sites=sites, out=work / "pretrained", tokens=False,
                         sentence_pooling=["mean"], progress=False)
y = store.examples["label"].to_numpy()
split = np.random.default_rng(0).random(len(y)) < 0.3
Xs = [store[s].sentences("mean").astype(np.float32) for s in sites]
probes = fit_batched(LinearProbe(random_state=0), [x[~split] for x in Xs], y[~split])
pd.Series({s: p[0].score(x[split], y[split]) for s, x, p in zip(sites, Xs, probes)}, name="probe accuracy").round(3)

# %% [markdown]
# ## 3. Fine-tune
#
# On the Hugging Face `Trainer`; the recipe (every setting) is frozen into the variant.

# %%
ft = finetune(base, train, epochs=2, lr=1e-4, batch_size=16, max_length=48, early_stopping=None,
              out=work / "finetuned", progress=False)
evaluate(ft, test, max_length=48)

# %% [markdown]
# ## 4. Quantize, and check it
#
# Dynamic int8 through `torch.ao`: the quantized model is still hookable, so it extracts and compares like any
# other model. Accuracy, then the representation layer by layer against the float parent.

# %%
int8 = quantize(ft, method="dynamic-int8")
pd.DataFrame({name: evaluate(m, test, max_length=48) for name, m in {"float32": ft, "int8": int8}.items()}).T.round(3)

# %%
stores = {name: probekit.extract(m, test[["text", "label"]], sites=sites, out=work / f"cmp-{name}", tokens=False,
                                 sentence_pooling=["mean"], progress=False)
          for name, m in {"ft": ft, "int8": int8}.items()}
comp = compare(stores["ft"], stores["int8"], progress=False)
np.diag(comp.matrices["linear_cka"].loc[sites, sites].to_numpy()).round(4)

# %% [markdown]
# ## 5. Save, load back
#
# A variant saves as safetensors plus `recipe.json` and `layer_map.json`; `probekit.load_model(folder)` returns it
# as the same `ModelVariant`, lineage included.

# %%
ft.save(work / "models" / "finetuned")
again = probekit.load_model(work / "models" / "finetuned")
type(again).__name__, again.recipe.kind, again.recipe.epochs

# %% [markdown]
# ## 6. Deploy: ONNX, then int8 in ONNX Runtime
#
# `export` writes the float model to ONNX and checks the exported graph against the eager model; ONNX Runtime's
# dynamic quantization then makes the int8 model that ships (no PyTorch needed to run it).

# %%
from onnxruntime import InferenceSession
from onnxruntime.quantization import QuantType, quantize_dynamic

exported = export(ft, work / "deploy" / "model.onnx", format="onnx", texts=list(test["text"][:8]), max_length=48,
                  repeats=5)
print(f"ONNX parity with the eager model: max |diff| {exported.max_abs_diff:.1e}")
int8_path = work / "deploy" / "model.int8.onnx"
quantize_dynamic(str(exported.path), str(int8_path), weight_type=QuantType.QInt8)
print(f"{exported.path.stat().st_size / 2**20:.1f} MB float32 -> {int8_path.stat().st_size / 2**20:.1f} MB int8")

# %%
session = InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
enc = ft.model.tokenizer(list(test["text"]), padding=True, truncation=True, max_length=48, return_tensors="np")
t0 = time.perf_counter()
logits = session.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                            "attention_mask": enc["attention_mask"].astype(np.int64)})[0]
seconds = time.perf_counter() - t0
accuracy = float((logits.argmax(-1) == test["label"].to_numpy()).mean())
print(f"deployed int8 model: accuracy {accuracy:.3f} on {len(test)} sentences in {seconds:.2f} s")

# %% [markdown]
# The benchmarks page measures these paths at full size (the whole training split, timed against each other):
# ONNX Runtime int8 there runs about 4x the float model's throughput for 0.7 points of accuracy.

# %% [markdown]
# `work` was scratch space for this page; remove it (skip this cell to keep the stores and look around).

# %%
shutil.rmtree(work)
