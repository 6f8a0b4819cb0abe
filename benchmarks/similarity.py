"""Linear CKA speed and accuracy: probekit's streaming CKA against torch-cka and a Gram-matrix reference.

The full 7x7 linear-CKA matrix (``emb``, ``L0.resid`` ... ``L5.resid``) between MiniLM-L6 (float32, model A)
and a variant of it (model B, ``--variant``) on real English sentences (Rotten Tomatoes plus UD English EWT
train), at two levels:

(a) ``sentence``: one mean-pooled vector per sentence (special tokens included), ``--sentences`` rows;
(b) ``token``: one row per token of the first sentences holding ``--tokens`` tokens.

Two pairs (``--variant``):

* ``int8`` (default): model B is the dynamic-int8 copy (``probekit.variants.quantize``,
  ``method="dynamic-int8"``), a realistic comparison whose activations depend on how sentences are batched
  (see below), so the agreement with torch-cka there mixes batching effects with arithmetic.
* ``magnitude50``: model B is the float32 model with 50% of the linear weights inside the transformer
  blocks zeroed (``probekit.variants.magnitude_prune`` with ``MagnitudePruneRecipe(sparsity=0.5,
  scope="global", modules="blocks")``, unstructured L1 magnitude, one threshold over all those weights). Both
  models are deterministic float32 models whose rows do not depend on the batching (up to float32 rounding),
  so torch-cka and probekit see the same activations and ``max_abs_diff`` measures the CKA arithmetic alone.
  The pruned model's measured sparsity is recorded (``model_b_report`` of the extract step).

Methods, each in a fresh process (so its peak RSS is its own):

1. ``probekit``: what a probekit user does: ``probekit.extract`` of both models into two stores
   (float32), then ``probekit.compare.compare(store_a, store_b, level=..., attention=False)``, which streams
   over the stores' memory maps (CrossMoments, float64) and returns the linear-CKA and Procrustes matrices.
   Timed as a whole and per step ("extract" and "CKA from stores").
2. ``torch_cka``: the ``torch-cka`` package (``torch_cka.CKA``) on the same two models and sentences, as its
   users run it: forward hooks on named modules, a DataLoader of padded batches (``--tcka-batch``
   sentences in corpus order), ``cka.compare(loader)`` under ``torch.no_grad()``. Its hooks need one module
   per layer whose output is the representation, so each model is wrapped in a module that runs the
   Hugging Face model and passes each hidden state through a pooling module (masked mean per sentence, or
   the non-padding token rows); torch-cka hooks those.
3. ``reference``: a NumPy re-implementation of Kornblith et al.'s Gram-matrix linear CKA (``gram_linear``
   then ``cka`` with the biased centring) on a seeded subsample of ``--ref-rows`` rows of the stores
   (two n x n float64 Gram matrices per layer pair do not fit in memory for all rows), with probekit's
   ``cka_matrix`` on the same rows.

What torch-cka computes (v0.21, read from its source): not full-batch linear CKA but the minibatch estimator
of Nguyen et al. (2021): per batch, the unbiased HSIC (Song et al. 2012) of uncentred linear Gram matrices
with zeroed diagonals, averaged over batches, then ``CKA = HSIC(K,L) / sqrt(HSIC(K,K) HSIC(L,L))``, in
float32. Its value depends on the batch partition and differs from full-batch linear CKA. So:

* ``max_abs_diff`` (same quantity) compares torch-cka with the same minibatch estimator computed in
  float64 from probekit's stores over the same batches (``SiteView.iter_batches`` of ``--tcka-batch``
  sentences, corpus order);
* ``max_abs_diff_vs_reference`` compares probekit's full-batch linear CKA with the Gram-matrix reference on
  the same subsample;
* ``estimator_gap`` is |torch-cka - probekit full-batch linear CKA|: the difference a user sees between
  the two tools, which is the estimator's, not an error of either.

Known cause of a large ``max_abs_diff``: torch's dynamic int8 quantization picks each linear layer's
activation scale from the whole input batch (padding rows included), so the int8 model's activations depend
on how sentences are batched (on 16 Rotten Tomatoes sentences, padded batch vs one at a time: max relative
difference of the last hidden state 0.21 for int8, 6e-7 for float32). torch-cka's padded batches and
probekit's length-sorted batches therefore feed different int8 activations into the same estimator; the
``diagnosis`` entry (torch-cka's float32 formula on probekit's stored rows) separates that from arithmetic,
and the ``magnitude50`` pair avoids it. For the ``int8`` pair the run also extracts model B a second time in
torch-cka's own padded batches (``shard_size`` = ``--tcka-batch``, one forward per shard; untimed, a control)
and reports ``max_abs_diff_matched_batches``: the same comparison when both tools see the same activations.

``speedup_vs_torch_cka`` = torch-cka seconds / probekit end-to-end seconds (extraction of both stores plus
CKA from the stores), per level; ``speedup_vs_torch_cka_from_stores`` = torch-cka seconds / probekit's
CKA-from-stores seconds (for a user whose stores already exist). Model loading, quantization and pruning are
outside every timing. Writes ``benchmarks/results/similarity.json`` (``int8``) or
``benchmarks/results/similarity_magnitude50.json`` (``magnitude50``), unless ``--out`` is given, and prints
a table headed by the pair and model B's recipe.

UD English EWT is read from ``$PROBEKIT_UD_PATH``, else from the copy ``probekit data fetch ud_ewt`` downloads.

Usage: ``python benchmarks/similarity.py [--variant {int8,magnitude50}] [--sentences 20000] [--tokens 200000]
[--tcka-batch 64] [--ref-rows 4000] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _machine import AnonPeak, machine, peak_rss_kb  # noqa: E402

import probekit  # noqa: E402
from probekit import site_layer  # noqa: E402
from probekit.compare import cka_matrix, compare, unbiased_hsic  # noqa: E402
from probekit.data import load_movie_reviews, read_conllu, ud_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = {"int8": ROOT / "benchmarks" / "results" / "similarity.json",
           "magnitude50": ROOT / "benchmarks" / "results" / "similarity_magnitude50.json"}
SEED = 0
MODEL_A = "minilm-l6 (float32)"


def _shown(p: Path) -> str:
    """A path as recorded in the results: relative to the repository when inside it."""
    try:
        return Path(p).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(p)


# ------------------------------------------------------------------ data
def corpus(seed: int = SEED) -> tuple[list[str], dict]:
    """Rotten Tomatoes sentences then UD English EWT train sentences, de-duplicated, in a seeded order."""
    rt = list(load_movie_reviews("rotten_tomatoes")["text"])
    train = ud_files()["train"]  # $PROBEKIT_UD_PATH, else the fetched copy
    ewt = [s.text.strip() for s in read_conllu(train) if s.text.strip()]
    seen, texts, origin = set(), [], []
    for src, items in (("rotten_tomatoes", rt), ("ud_en_ewt_train", ewt)):
        for t in items:
            if t not in seen:
                seen.add(t)
                texts.append(t)
                origin.append(src)
    order = np.random.default_rng(seed).permutation(len(texts))
    texts = [texts[i] for i in order]
    origin = [origin[i] for i in order]
    info = {"rotten_tomatoes": "movie-reviews package via probekit.data.load_movie_reviews",
            "ud_en_ewt_train": f"'# text' lines of UD English EWT {train.name}",
            "available": {"rotten_tomatoes": origin.count("rotten_tomatoes"),
                          "ud_en_ewt_train": origin.count("ud_en_ewt_train")},
            "order": f"seeded permutation (seed {seed}) of the de-duplicated union", "_origin": origin}
    return texts, info


def select(level: str, n_sentences: int, n_tokens: int, batch: int, tokenizer) -> tuple[list[str], dict]:
    """The sentences of one level: the first ``n_sentences``, or the first ones holding ``n_tokens`` tokens.

    The count is then trimmed so that torch-cka's last batch holds at least 4 rows (its unbiased HSIC
    divides by ``n - 3``).
    """
    texts, info = corpus()
    origin = info.pop("_origin")
    if level == "sentence":
        if n_sentences > len(texts):
            raise ValueError(f"--sentences {n_sentences} exceeds the {len(texts)} sentences available")
        k = n_sentences
    else:
        lengths = np.cumsum([len(x) for x in tokenizer(texts, add_special_tokens=True)["input_ids"]])
        if n_tokens > lengths[-1]:
            raise ValueError(f"--tokens {n_tokens} exceeds the {int(lengths[-1])} tokens available")
        k = int(np.searchsorted(lengths, n_tokens) + 1)
    if level == "sentence" and 0 < k % batch < 4:
        k -= k % batch
    texts, origin = texts[:k], origin[:k]
    info["used"] = {"rotten_tomatoes": origin.count("rotten_tomatoes"),
                    "ud_en_ewt_train": origin.count("ud_en_ewt_train")}
    return texts, info


# ------------------------------------------------------------------ models
def variant_recipe(variant: str):
    """Model B's recipe for ``--variant``."""
    from probekit.variants import MagnitudePruneRecipe, QuantizeRecipe

    if variant == "int8":
        return QuantizeRecipe(method="dynamic-int8")
    if variant == "magnitude50":
        return MagnitudePruneRecipe(sparsity=0.5, scope="global", modules="blocks")
    raise ValueError(f"unknown variant {variant!r}; choose from {sorted(RESULTS)}")


def variant_text(variant: str) -> str:
    """Model B in words, for the JSON ``setup`` and the table header."""
    if variant == "int8":
        return "minilm-l6 dynamic int8 (probekit.variants.quantize, method='dynamic-int8')"
    if variant == "magnitude50":
        return ("minilm-l6 float32, 50% unstructured magnitude sparsity of the block linear weights "
                "(probekit.variants.magnitude_prune, one global threshold)")
    raise ValueError(f"unknown variant {variant!r}; choose from {sorted(RESULTS)}")


def load_pair(variant: str = "int8"):
    """MiniLM-L6 (float32), model B (``--variant``), both HookedModels, and what making model B measured."""
    from probekit.variants import magnitude_prune, quantize

    model = probekit.load_model("minilm-l6")
    recipe = variant_recipe(variant)
    if variant == "int8":
        return model, quantize(model, recipe).model, {}
    v = magnitude_prune(model, recipe)
    total = v.report["sparsity"].iloc[-1]
    dtypes = sorted({str(p.dtype) for p in v.model.model.parameters()})
    if dtypes != ["torch.float32"]:
        raise RuntimeError(f"the pruned model should be float32 only, its parameters are {dtypes}")
    if abs(float(total["sparsity"]) - recipe.sparsity) > 1e-3:
        raise RuntimeError(f"magnitude pruning reached sparsity {float(total['sparsity']):.4f} over the block "
                           f"linear weights, not the recipe's {recipe.sparsity}")
    return model, v.model, {"pruned_weights": int(total["numel"]), "zeros": int(total["zeros"]),
                            "sparsity": float(total["sparsity"]),
                            "pruned_modules": int(len(v.report["sparsity"]) - 1)}


class _Pool(torch.nn.Module):
    """The representation torch-cka sees at one layer: masked mean per sentence, or the token rows."""

    def __init__(self, level: str):
        super().__init__()
        self.level = level

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.level == "sentence":
            m = mask.unsqueeze(-1).float()
            return (h.float() * m).sum(1) / m.sum(1)
        return h[mask.bool()]


class _Pooled(torch.nn.Module):
    """A Hugging Face encoder taking one ``[batch, 2, T]`` tensor (ids, mask), with a pool module per layer."""

    def __init__(self, hf_model: torch.nn.Module, n_layers: int, level: str):
        super().__init__()
        self.hf = hf_model
        self.pool = torch.nn.ModuleList([_Pool(level) for _ in range(n_layers + 1)])

    def forward(self, x: torch.Tensor):
        ids, mask = x[:, 0], x[:, 1]
        hidden = self.hf(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        return [p(h, mask) for p, h in zip(self.pool, hidden)]


# ------------------------------------------------------------------ children (one method per process)
def _store_kw(level: str) -> dict:
    """``probekit.extract`` settings of the benchmark's stores: float32, token rows or mean sentence vectors."""
    return dict(dtype="float32", tokens=level == "token", sentence_pooling=["mean"] if level == "sentence" else [],
                progress=False)


def child_extract(spec: dict) -> dict:
    model, qmodel, report = load_pair(spec["variant"])
    texts, _ = select(spec["level"], spec["sentences"], spec["tokens"], spec["batch"], model.tokenizer)
    wd = Path(spec["workdir"])
    kw = _store_kw(spec["level"])
    t0 = time.perf_counter()
    sa = probekit.extract(model, texts, model.residual_sites(), wd / "store_a", **kw)
    t1 = time.perf_counter()
    sb = probekit.extract(qmodel, texts, qmodel.residual_sites(), wd / "store_b", **kw)
    t2 = time.perf_counter()
    disk = sum(p.stat().st_size for p in wd.rglob("*") if p.is_file())
    return {"seconds": t2 - t0, "seconds_a": t1 - t0, "seconds_b": t2 - t1, "n_sentences": len(texts),
            "n_tokens": int(sa.manifest["n_tokens"]), "n_tokens_b": int(sb.manifest["n_tokens"]),
            "store_bytes": disk, "model_b_report": report, "peak_rss_mb": peak_rss_kb() / 1024}


def child_extract_matched(spec: dict) -> dict:
    """Model B again, batched as torch-cka's loader batches it: one shard per loader batch, one forward each.

    With ``shard_size`` = torch-cka's batch and a token budget that holds the whole shard, every forward sees
    exactly the padded batch torch-cka's forward sees (same sentences, same padded width; only the row order
    differs), so a batch-dependent model (dynamic int8) gives both tools the same activations.
    """
    _, qmodel, _ = load_pair(spec["variant"])
    texts, _ = select(spec["level"], spec["sentences"], spec["tokens"], spec["batch"], qmodel.tokenizer)
    wd = Path(spec["workdir"])
    t0 = time.perf_counter()
    st = probekit.extract(qmodel, texts, qmodel.residual_sites(), wd / "store_b_matched", **_store_kw(spec["level"]),
                          shard_size=spec["batch"], batch_tokens=spec["batch"] * qmodel.max_length)
    return {"seconds": time.perf_counter() - t0, "n_shards": int(st.manifest["n_shards"]),
            "peak_rss_mb": peak_rss_kb() / 1024}


def _open(wd: Path, b: str = "store_b"):
    return probekit.ActivationStore.open(wd / "store_a"), probekit.ActivationStore.open(wd / b)


def child_cka(spec: dict) -> dict:
    """Linear CKA only, streamed over the stores' shards exactly as ``compare()`` reads them.

    ``compare()`` also computes the Procrustes matrix (49 SVDs); ``--with-compare`` times it as well.
    """
    wd = Path(spec["workdir"])
    sa, sb = _open(wd)
    level, how = spec["level"], "mean" if spec["level"] == "sentence" else None
    sites = sorted((s for s in sa.sites if s.component in ("emb", "resid")), key=site_layer)
    t0 = time.perf_counter()
    with AnonPeak() as mem:
        va = [sa[s].row_view(level, how) for s in sites]
        vb = [sb[s].row_view(level, how) for s in sites]
        m = cka_matrix(va, vb, measures=("linear_cka",))["linear_cka"]
    dt = time.perf_counter() - t0
    np.save(wd / "probekit_cka.npy", m)
    out = {"seconds": dt, "sites": [str(s) for s in sites], "peak_rss_mb": peak_rss_kb() / 1024,
           "peak_anon_mb": mem.peak_mb}
    if spec.get("with_compare"):
        t0 = time.perf_counter()
        cmp = compare(sa, sb, level=level, how="mean", attention=False, progress=False)
        out["compare_seconds"] = time.perf_counter() - t0
        out["compare_max_abs_diff"] = float(np.abs(cmp.matrices["linear_cka"].to_numpy() - m).max())
    return out


def child_torch_cka(spec: dict) -> dict:
    from torch.utils.data import DataLoader
    from torch_cka import CKA

    model, qmodel, _ = load_pair(spec["variant"])
    tok = model.tokenizer
    texts, _ = select(spec["level"], spec["sentences"], spec["tokens"], spec["batch"], tok)

    def collate(chunk):
        enc = tok(list(chunk), padding=True, return_tensors="pt")
        return (torch.stack([enc["input_ids"], enc["attention_mask"]], 1),)

    loader = DataLoader(texts, batch_size=spec["batch"], shuffle=False, collate_fn=collate)
    wa = _Pooled(model.model, model.n_layers, spec["level"])
    wb = _Pooled(qmodel.model, qmodel.n_layers, spec["level"])
    names = [f"pool.{i}" for i in range(model.n_layers + 1)]
    t0 = time.perf_counter()
    cka = CKA(wa, wb, model1_name="minilm-l6", model2_name=f"minilm-l6-{spec['variant']}",
              model1_layers=names, model2_layers=names, device="cpu")
    with torch.no_grad():
        cka.compare(loader)
    dt = time.perf_counter() - t0
    out = cka.export()
    np.save(Path(spec["workdir"]) / "torch_cka.npy", out["CKA"].double().numpy())
    return {"seconds": dt, "n_batches": len(loader), "layers": out["model1_layers"],
            "peak_rss_mb": peak_rss_kb() / 1024}


def gram_linear(x: np.ndarray) -> np.ndarray:
    """Linear-kernel Gram matrix ``x x'`` (Kornblith et al.'s ``gram_linear``)."""
    return x @ x.T


def center_gram(g: np.ndarray) -> np.ndarray:
    """Double-centred Gram matrix ``H G H`` (the biased form), without building ``H``."""
    g = g.copy()
    col = g.mean(0)
    col -= col.mean() / 2
    g -= col[:, None]
    g -= col[None, :]
    return g


def gram_cka(gx: np.ndarray, gy: np.ndarray) -> float:
    """Kornblith et al.'s ``cka`` of two centred Gram matrices: ``<Kc, Lc> / (||Kc|| ||Lc||)``."""
    return float(gx.ravel() @ gy.ravel() / (np.linalg.norm(gx) * np.linalg.norm(gy)))


def child_reference(spec: dict) -> dict:
    wd = Path(spec["workdir"])
    sa, sb = _open(wd)
    level = spec["level"]
    sites_a = [s for s in sa.sites if s.component in ("emb", "resid")]
    sites_a.sort(key=site_layer)
    n = len(sa[sites_a[0]].numpy(level, "mean" if level == "sentence" else None))
    k = min(spec["ref_rows"], n)
    rows = np.sort(np.random.default_rng(SEED).choice(n, size=k, replace=False))

    def take(store):
        return [np.asarray(store[s].numpy(level, "mean" if level == "sentence" else None)[rows], np.float64)
                for s in sites_a]

    xa, xb = take(sa), take(sb)
    t0 = time.perf_counter()
    ga = [center_gram(gram_linear(x)) for x in xa]
    gb = [center_gram(gram_linear(y)) for y in xb]
    ref = np.array([[gram_cka(g, h) for h in gb] for g in ga])
    t_ref = time.perf_counter() - t0
    peak_ref = peak_rss_kb() / 1024
    t0 = time.perf_counter()
    pk = cka_matrix(xa, xb, measures=("linear_cka",))["linear_cka"]
    t_pk = time.perf_counter() - t0
    np.save(wd / "reference_cka.npy", ref)
    return {"rows": int(k), "of_rows": int(n), "seconds_reference": t_ref, "seconds_probekit": t_pk,
            "max_abs_diff": float(np.abs(ref - pk).max()), "peak_rss_mb": peak_ref}


CHILDREN = {"extract": child_extract, "cka": child_cka, "torch_cka": child_torch_cka, "reference": child_reference,
            "extract_matched": child_extract_matched}


def run_child(mode: str, spec: dict) -> dict:
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, __file__, "--child", mode, "--spec", json.dumps(spec)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} ({spec['level']}) failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load_average_before"] = load
    return out


# ------------------------------------------------------------------ same-quantity check
def hsic_matrices(kx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    """Unbiased HSIC of every pair of Gram matrices ``kx[i]``, ``ly[j]`` (diagonals already zero), [I, J].

    The same estimator as :func:`probekit.compare.unbiased_hsic`, with ``trace(K L) = sum(K * L)`` and
    ``1' K L 1 = (K 1)'(L 1)`` for symmetric ``K``, ``L`` so a batch costs ``O(n^2)`` per pair.
    """
    n = kx.shape[1]
    fk, fl = kx.reshape(len(kx), -1), ly.reshape(len(ly), -1)
    tr = fk @ fl.T
    rk, rl = kx.sum(2), ly.sum(2)
    sk, sl = rk.sum(1), rl.sum(1)
    val = tr + np.outer(sk, sl) / ((n - 1) * (n - 2)) - 2 * (rk @ rl.T) / (n - 2)
    return val / (n * (n - 3))


def minibatch_from_stores(wd: Path, level: str, batch: int, b: str = "store_b") -> tuple[np.ndarray, int]:
    """torch-cka's estimator in float64 from probekit's stores, over the same batches of ``batch`` sentences."""
    sa, sb = _open(wd, b)
    sites = sorted((s for s in sa.sites if s.component in ("emb", "resid")), key=site_layer)
    how = "mean" if level == "sentence" else None
    it_a = [sa[s].iter_batches(batch, level, how) for s in sites]
    it_b = [sb[s].iter_batches(batch, level, how) for s in sites]
    xy = np.zeros((len(sites), len(sites)))
    xx = np.zeros(len(sites))
    yy = np.zeros(len(sites))
    n_batches = 0
    checked = False
    for ba, bb in zip(zip(*it_a), zip(*it_b)):
        grams = []
        for side in (ba, bb):
            g = np.stack([np.asarray(b.x, np.float64) @ np.asarray(b.x, np.float64).T for b in side])
            g[:, np.arange(g.shape[1]), np.arange(g.shape[1])] = 0
            grams.append(g)
        kx, ly = grams
        xy += hsic_matrices(kx, ly)
        xx += np.diagonal(hsic_matrices(kx, kx))
        yy += np.diagonal(hsic_matrices(ly, ly))
        if not checked:  # the fast form equals probekit's unbiased_hsic on the first batch
            want = unbiased_hsic(kx[0], ly[-1])
            got = hsic_matrices(kx[:1], ly[-1:])[0, 0]
            if not np.isclose(got, want, rtol=1e-9, atol=0):
                raise AssertionError(f"fast unbiased HSIC {got} != probekit.compare.unbiased_hsic {want}")
            checked = True
        n_batches += 1
    return xy / np.sqrt(np.outer(xx, yy)), n_batches


def torch_cka_formula_on_stores(wd: Path, level: str, batch: int) -> np.ndarray:
    """torch-cka's own float32 ``_HSIC`` arithmetic applied to probekit's stored rows, same batches.

    Separates the two causes of a torch-cka difference: against :func:`minibatch_from_stores` it shows
    the effect of float32 arithmetic; against torch-cka it shows the effect of the activations (dynamic
    int8 quantizes each batch with its own range, and probekit batches differently). O(n^3) per pair and
    batch, as in torch-cka.
    """
    from types import SimpleNamespace

    from torch_cka import CKA

    stub = SimpleNamespace(device="cpu")
    sa, sb = _open(wd)
    sites = sorted((s for s in sa.sites if s.component in ("emb", "resid")), key=site_layer)
    how = "mean" if level == "sentence" else None
    it_a = [sa[s].iter_batches(batch, level, how, as_torch=True) for s in sites]
    it_b = [sb[s].iter_batches(batch, level, how, as_torch=True) for s in sites]
    h = np.zeros((len(sites), len(sites), 3))
    n_batches = 0
    for ba, bb in zip(zip(*it_a), zip(*it_b)):
        ks = [x.x.float() @ x.x.float().T for x in ba]
        ls = [y.x.float() @ y.x.float().T for y in bb]
        for g in ks + ls:
            g.fill_diagonal_(0.0)
        for i, k in enumerate(ks):
            h[i, :, 0] += CKA._HSIC(stub, k, k)
            for j, m in enumerate(ls):
                h[i, j, 1] += CKA._HSIC(stub, k, m)
                h[i, j, 2] += CKA._HSIC(stub, m, m)
        n_batches += 1
    return h[:, :, 1] / np.sqrt(h[:, :, 0] * h[:, :, 2])


# ------------------------------------------------------------------ driver
def _machine() -> dict:
    import torch_cka

    return machine(torch_cka=getattr(torch_cka, "__version__", None) or _dist_version("torch-cka"))


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def run_level(level: str, a) -> dict:
    wd = Path(tempfile.mkdtemp(prefix=f"pk-sim-{level}-"))
    spec = {"level": level, "variant": a.variant, "sentences": a.sentences, "tokens": a.tokens, "batch": a.tcka_batch,
            "ref_rows": a.ref_rows, "workdir": str(wd), "with_compare": a.with_compare}
    try:
        out = {}
        for mode in ("extract", "cka", "torch_cka", "reference"):
            out[mode] = run_child(mode, spec)
            print(f"{level:8s} {mode:10s} {json.dumps(out[mode])}", flush=True)
        pk = np.load(wd / "probekit_cka.npy")
        tc = np.load(wd / "torch_cka.npy")
        mb, n_batches = minibatch_from_stores(wd, level, a.tcka_batch)
        matched = {}
        if a.variant == "int8":  # batch-dependent activations: also feed the estimator torch-cka's batches
            out["extract_matched"] = run_child("extract_matched", spec)
            mbm, _ = minibatch_from_stores(wd, level, a.tcka_batch, "store_b_matched")
            matched = {"max_abs_diff_matched_batches": float(np.abs(tc - mbm).max()),
                       "matched_extract_s": out["extract_matched"]["seconds"],
                       "matched_vs_own_batches_b": float(np.abs(mbm - mb).max())}
            out["tables_matched"] = mbm.tolist()
            print(f"{level:8s} matched    {json.dumps(matched)}", flush=True)
        diag = {}
        if level == "sentence" or a.diagnose_tokens:
            f32 = torch_cka_formula_on_stores(wd, level, a.tcka_batch)
            diag = {"torch_cka_formula_on_stores_vs_torch_cka": float(np.abs(f32 - tc).max()),
                    "torch_cka_formula_on_stores_vs_float64": float(np.abs(f32 - mb).max())}
            print(f"{level:8s} diagnosis  {json.dumps(diag)}", flush=True)
        out["diagnosis"] = diag
        out["tables"] = {"probekit_linear_cka": pk.tolist(), "torch_cka": tc.tolist(),
                         "minibatch_from_probekit_stores": mb.tolist(),
                         "reference_subsample": np.load(wd / "reference_cka.npy").tolist()}
        e2e = out["extract"]["seconds"] + out["cka"]["seconds"]
        tcs = out["torch_cka"]["seconds"]
        out["summary"] = {
            "rows": out["extract"]["n_sentences"] if level == "sentence" else out["extract"]["n_tokens"],
            "n_sentences": out["extract"]["n_sentences"], "n_tokens": out["extract"]["n_tokens"],
            "probekit_end_to_end_s": e2e, "probekit_extract_s": out["extract"]["seconds"],
            "probekit_cka_from_stores_s": out["cka"]["seconds"], "torch_cka_s": tcs,
            "reference_subsample_s": out["reference"]["seconds_reference"],
            "speedup_vs_torch_cka": tcs / e2e,
            "speedup_vs_torch_cka_from_stores": tcs / out["cka"]["seconds"],
            "max_abs_diff": float(np.abs(tc - mb).max()),
            "max_abs_diff_vs_reference": out["reference"]["max_abs_diff"],
            "estimator_gap": float(np.abs(tc - pk).max()),
            **matched,
            "diagnosis": diag,
            "torch_cka_batches": out["torch_cka"]["n_batches"], "minibatch_batches": n_batches,
            "peak_rss_mb": {"probekit_extract": out["extract"]["peak_rss_mb"],
                            "probekit_cka_from_stores": out["cka"]["peak_rss_mb"],
                            "torch_cka": out["torch_cka"]["peak_rss_mb"],
                            "reference_subsample": out["reference"]["peak_rss_mb"]},
            "peak_anon_mb_probekit_cka_from_stores": out["cka"].get("peak_anon_mb"),
            "store_bytes": out["extract"]["store_bytes"],
            "in_ram_float64_bytes": 2 * (out["extract"]["n_sentences"] if level == "sentence"
                                         else out["extract"]["n_tokens"]) * 7 * 384 * 8,
        }
        return out
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=20000, help="rows of level (a), sentence vectors")
    p.add_argument("--tokens", type=int, default=200000, help="rows of level (b), token vectors (at least)")
    p.add_argument("--tcka-batch", type=int, default=64, help="sentences per torch-cka batch")
    p.add_argument("--ref-rows", type=int, default=4000, help="subsample for the Gram-matrix reference")
    p.add_argument("--levels", default="sentence,token")
    p.add_argument("--diagnose-tokens", action="store_true",
                   help="also run torch-cka's float32 formula on the token stores (slow: O(n^3) per batch)")
    p.add_argument("--with-compare", action="store_true",
                   help="also time compare(), which adds the Procrustes matrix")
    p.add_argument("--variant", choices=sorted(RESULTS), default="int8",
                   help="model B: the dynamic-int8 copy, or the float32 copy with 50%% magnitude sparsity")
    p.add_argument("--out", type=Path, default=None,
                   help="results JSON (default: benchmarks/results/similarity.json for int8, "
                        "similarity_magnitude50.json for magnitude50)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child is not None:
        print(json.dumps(CHILDREN[a.child](json.loads(a.spec))))
        return
    if a.out is None:
        a.out = RESULTS[a.variant]
    recipe = variant_recipe(a.variant).to_dict()
    levels = [x.strip() for x in a.levels.split(",") if x.strip()]
    bad = [x for x in levels if x not in ("sentence", "token")]
    if bad:
        raise SystemExit(f"unknown level(s) {bad}; choose from sentence, token")
    for name in ("sentences", "tokens", "ref_rows"):
        if getattr(a, name) < 4:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 4")
    if a.tcka_batch < 4:
        raise SystemExit("--tcka-batch must be at least 4 (the unbiased HSIC needs 4 rows per batch)")
    _, info = corpus()
    info.pop("_origin")
    t_start = time.perf_counter()
    runs = {level: run_level(level, a) for level in levels}
    summary = {lv: r["summary"] for lv, r in runs.items()}
    result = {
        "setup": {"model_a": MODEL_A, "variant": a.variant, "model_b": variant_text(a.variant),
                  "model_b_recipe": recipe,
                  "model_b_report": {lv: r["extract"]["model_b_report"] for lv, r in runs.items()},
                  "sites": ["emb"] + [f"L{i}.resid" for i in range(6)], "sentence_pooling": "mean",
                  "store_dtype": "float32", "data": info, "levels": levels, "args": {
                      k: (_shown(v) if isinstance(v, Path) else v) for k, v in vars(a).items()
                      if k not in ("child", "spec")},
                  "torch_cka_call": "CKA(wrapped_a, wrapped_b, model1_layers=pool.0..6, ...).compare(loader) "
                                    "under torch.no_grad(); loader: padded batches of --tcka-batch sentences",
                  "timing": "one run per method, each in a fresh process; model loading, quantization and "
                            "pruning excluded",
                  "definitions": {
                      "speedup_vs_torch_cka": "torch-cka seconds / probekit end-to-end seconds (extract both "
                                              "stores + compare() from the stores)",
                      "speedup_vs_torch_cka_from_stores": "torch-cka seconds / probekit compare() seconds on "
                                                          "existing stores",
                      "max_abs_diff": "max |torch-cka - the same minibatch unbiased-HSIC CKA in float64 from "
                                      "probekit's stores over the same batches| over the 7x7 matrix",
                      "max_abs_diff_vs_reference": "max |probekit full-batch linear CKA - Gram-matrix reference| "
                                                   "on the reference subsample",
                      "estimator_gap": "max |torch-cka minibatch CKA - probekit full-batch linear CKA|",
                      "max_abs_diff_matched_batches": "int8 only: max_abs_diff with model B's store extracted "
                                                      "in torch-cka's padded batches (shard = loader batch, one "
                                                      "forward per shard), so both tools see the same int8 "
                                                      "activations",
                      "probekit_cka_from_stores_s": "the 7x7 linear-CKA matrix streamed from the stores "
                                                    "(cka_matrix over the row views compare() reads; "
                                                    "--with-compare also times compare() itself)",
                      "peak_rss_mb": "VmHWM of each step's process; for the steps reading stores it includes "
                                     "the memory-mapped store pages touched (reclaimable page cache)",
                      "peak_anon_mb_probekit_cka_from_stores": "peak RssAnon (sampled every 20 ms) of the CKA "
                                                               "from stores: what the streaming itself allocates"}},
        "machine": _machine(),
        "total_seconds": time.perf_counter() - t_start,
        "summary": summary,
        "speedup_vs_torch_cka": {lv: s["speedup_vs_torch_cka"] for lv, s in summary.items()},
        "speedup_vs_torch_cka_from_stores": {lv: s["speedup_vs_torch_cka_from_stores"]
                                             for lv, s in summary.items()},
        "max_abs_diff": max(s["max_abs_diff"] for s in summary.values()),
        "max_abs_diff_vs_reference": max(s["max_abs_diff_vs_reference"] for s in summary.values()),
        "targets": {
            "speedup_vs_torch_cka>=10": {lv: s["speedup_vs_torch_cka"] >= 10 for lv, s in summary.items()},
            "speedup_vs_torch_cka_from_stores>=10": {lv: s["speedup_vs_torch_cka_from_stores"] >= 10
                                                     for lv, s in summary.items()},
            "max_abs_diff<=1e-4": max(s["max_abs_diff"] for s in summary.values()) <= 1e-4,
            "max_abs_diff_vs_reference<=1e-4": max(s["max_abs_diff_vs_reference"]
                                                   for s in summary.values()) <= 1e-4,
            **({"max_abs_diff_matched_batches<=1e-4": max(s["max_abs_diff_matched_batches"]
                                                          for s in summary.values()) <= 1e-4}
               if a.variant == "int8" else {})},
        "runs": {lv: {k: v for k, v in r.items() if k != "summary"} for lv, r in runs.items()},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    print(f"\npair ({a.variant}): A = {MODEL_A}; B = {variant_text(a.variant)}")
    print(f"B recipe: {json.dumps(recipe)}")
    print(f"{'level':8s} {'rows':>8s} {'pk e2e s':>9s} {'pk cka s':>9s} {'tcka s':>9s} {'x e2e':>6s} "
          f"{'x stores':>8s} {'diff same':>9s} {'diff ref':>9s} {'est. gap':>9s} {'RSS pk/tcka MB':>15s}")
    for lv, s in summary.items():
        rss = s["peak_rss_mb"]
        print(f"{lv:8s} {s['rows']:8d} {s['probekit_end_to_end_s']:9.1f} {s['probekit_cka_from_stores_s']:9.1f} "
              f"{s['torch_cka_s']:9.1f} {s['speedup_vs_torch_cka']:6.2f} {s['speedup_vs_torch_cka_from_stores']:8.1f} "
              f"{s['max_abs_diff']:9.1e} {s['max_abs_diff_vs_reference']:9.1e} {s['estimator_gap']:9.1e} "
              f"{rss['probekit_cka_from_stores']:7.0f}/{rss['torch_cka']:.0f}")
    print(f"written {a.out}")


if __name__ == "__main__":
    main()
