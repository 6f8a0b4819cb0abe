"""The main job on the embedded default model and data.

Until the full pipeline (store, suites, variants, report) is wired in, the
demo extracts every residual site and the attention patterns of the default
model on real Rotten Tomatoes sentences and summarises them per layer.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from probekit._assets import DEFAULT_MODEL
from probekit._loading import load_model
from probekit._sites import Site
from probekit.data import load_movie_reviews

__all__ = ["layer_summary"]

logger = logging.getLogger(__name__)


def layer_summary(n_sentences: int = 1000, *, model: str = DEFAULT_MODEL, seed: int = 0,
                  batch_size: int = 64, progress: bool = True) -> pd.DataFrame:
    """Per-layer figures of ``model`` on ``n_sentences`` Rotten Tomatoes sentences.

    Columns: ``site``, ``layer`` (0 = embeddings), ``mean_norm`` (token vectors),
    ``anisotropy`` (mean cosine between token vectors of different sentences),
    ``sentiment_acc`` (held-out accuracy of a logistic-regression probe on
    mean-pooled vectors, 25 % test split by ``seed``), and per block the
    attention ``entropy`` (nats), ``cls_mass`` and ``sep_mass``.
    """
    t0 = time.perf_counter()
    df = load_movie_reviews("rotten_tomatoes").sample(n=n_sentences, random_state=seed)
    texts, labels = df["text"].tolist(), df["label"].to_numpy()
    hooked = load_model(model)
    resid = hooked.residual_sites()
    patterns = [Site(i, "attn.pattern") for i in range(hooked.n_layers)]
    pooled = {s: [] for s in resid}
    tokens = {s: [] for s in resid}
    attn = {s: [] for s in patterns}
    cls_id, sep_id = hooked.tokenizer.cls_token_id, hooked.tokenizer.sep_token_id
    for start in tqdm(range(0, len(texts), batch_size), desc="forward", unit="batch", disable=not progress):
        cache = hooked.run_with_cache(texts[start: start + batch_size], sites=resid + patterns, batch_size=batch_size)
        for s in resid:
            pooled[s].append(cache.sentence_pooled(s, "mean").float())
            tokens[s].extend(x[1:-1].float() for x in cache.examples(s))
        for s in patterns:
            for ex, p in zip(cache.batch.examples, cache.examples(s)):
                ids = torch.tensor(ex.input_ids)
                p = p.float()
                ent = -(p * p.clamp_min(1e-12).log()).sum(-1).mean().item()
                attn[s].append((ent, p[..., ids == cls_id].sum(-1).mean().item(),
                                p[..., ids == sep_id].sum(-1).mean().item()))
    rng = np.random.default_rng(seed)
    idx_tr, idx_te = train_test_split(np.arange(len(texts)), test_size=0.25, random_state=seed, stratify=labels)
    rows = []
    for s in resid:
        X = torch.cat(pooled[s]).numpy()
        probe = LogisticRegression(max_iter=2000).fit(X[idx_tr], labels[idx_tr])
        toks = tokens[s]
        a, b = rng.integers(0, len(toks), 2000), rng.integers(0, len(toks), 2000)
        keep = a != b
        va = torch.stack([toks[i][rng.integers(0, len(toks[i]))] for i in a[keep]])
        vb = torch.stack([toks[i][rng.integers(0, len(toks[i]))] for i in b[keep]])
        row = {"site": str(s), "layer": s.depth,
               "mean_norm": float(torch.cat(toks).norm(dim=-1).mean()),
               "anisotropy": float(torch.nn.functional.cosine_similarity(va, vb).mean()),
               "sentiment_acc": float(probe.score(X[idx_te], labels[idx_te]))}
        if s.layer is not None:
            ent, cls_mass, sep_mass = np.mean(attn[Site(s.layer, "attn.pattern")], axis=0)
            row.update(entropy=ent, cls_mass=cls_mass, sep_mass=sep_mass)
        rows.append(row)
    logger.info("layer summary of %s on %d sentences took %.1f s", model, n_sentences, time.perf_counter() - t0)
    return pd.DataFrame(rows)
