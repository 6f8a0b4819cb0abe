"""Shared fixtures: tiny random models of every family and the real default model."""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import transformers as T  # noqa: E402

import probekit  # noqa: E402

VOCAB = 30522  # the default WordPiece tokenizer's vocabulary
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def tiny_config(family: str) -> T.PretrainedConfig:
    """A 2-layer, 4-head, hidden-32 config of ``family`` sharing the default vocabulary."""
    if family == "bert":
        return T.BertConfig(vocab_size=VOCAB, **TINY)
    if family == "roberta":
        return T.RobertaConfig(vocab_size=VOCAB, pad_token_id=0, **TINY)
    if family == "electra":
        return T.ElectraConfig(vocab_size=VOCAB, embedding_size=16, **TINY)
    if family == "mpnet":
        return T.MPNetConfig(vocab_size=VOCAB, pad_token_id=0, **TINY)
    if family == "distilbert":
        return T.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=37)
    if family == "gpt2":
        return T.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_inner=37,
                            bos_token_id=101, eos_token_id=102)
    if family == "llama":
        return T.LlamaConfig(vocab_size=VOCAB, num_key_value_heads=2, pad_token_id=0, bos_token_id=101,
                             eos_token_id=102, **TINY)
    raise KeyError(family)


FAMILIES = ("bert", "roberta", "electra", "mpnet", "distilbert", "gpt2", "llama")


@pytest.fixture(scope="session")
def minilm() -> probekit.HookedModel:
    """The real all-MiniLM-L6-v2 (bundled package)."""
    return probekit.load_model("minilm-l6")


@pytest.fixture(scope="session", params=FAMILIES)
def tiny(request) -> probekit.HookedModel:
    return probekit.load_model(tiny_config(request.param), seed=0)


@contextlib.contextmanager
def single_torch_thread():
    """Torch on one thread inside the block (small ops on 2 shared cores stall with two), restored after."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture()
def one_torch_thread():
    """Torch on one thread for the test (see :func:`single_torch_thread`)."""
    with single_torch_thread():
        yield
