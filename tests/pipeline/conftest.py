"""Tiny experiment configs for the pipeline tests (a 2-layer BERT built from a config)."""

from __future__ import annotations

import copy

import pytest

TINY_MODEL = {"name": "tiny-bert",
              "config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "intermediate_size": 37}}

ANALYSIS = {
    "name": "tiny",
    "seed": 0,
    "model": TINY_MODEL,
    "data": {"source": "rt", "sentences": 40},
    "extract": {"sites": "resid", "attention": True, "dtype": "float32"},
    "attention": {"example": 1},
    "outputs": {"figures": True, "report": False},
}


@pytest.fixture
def analysis_config() -> dict:
    """Extraction and attention only: a few seconds."""
    return copy.deepcopy(ANALYSIS)
