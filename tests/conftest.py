"""Shared fixtures: tiny random models of every family and the real default model."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

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



def overflowing_model() -> probekit.HookedModel:
    """The tiny BERT with its layer norms scaled by 1e6: every residual row is far beyond float16's range."""
    big = probekit.load_model(tiny_config("bert"), seed=0)
    with torch.no_grad():
        for m in big.model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.mul_(1e6)
    return big


FAMILIES = ("bert", "roberta", "electra", "mpnet", "distilbert", "gpt2", "llama")

#: The 45 text architecture types of the reference test (tests/test_reference.py).
REFERENCE_TYPES = (
    "bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet", "albert", "deberta", "deberta-v2",
    "modernbert", "camembert", "gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "llama", "mistral", "mixtral",
    "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3_text", "phi", "phi3", "olmo", "olmo2",
    "stablelm", "cohere", "starcoder2", "granite", "smollm3", "codegen", "gpt_bigcode", "mpt", "persimmon",
    "nemotron", "glm", "exaone4", "helium", "t5",
)


def reference_config(model_type: str, **extra) -> T.PretrainedConfig:
    """``AutoConfig.for_model(model_type)`` shrunk to hidden 32, 2 layers, 4 heads (2 KV heads), FFN 37.

    Each setting is given under the config's own name for it (``n_embd``, ``d_model``, ``n_head``, ``d_ff``...);
    mixture-of-experts models get 4 experts, 2 per token. The vocabulary is the default tokenizer's.
    ``extra`` overrides anything.
    """
    base = T.AutoConfig.for_model(model_type).to_dict()
    kw: dict = {"vocab_size": VOCAB}
    names = {
        32: ("hidden_size", "n_embd", "d_model", "dim"),
        2: ("num_hidden_layers", "n_layer", "n_layers", "num_layers", "num_decoder_layers", "num_key_value_heads",
            "num_kv_heads", "num_experts_per_tok", "max_window_layers"),
        4: ("num_attention_heads", "n_head", "n_heads", "num_heads", "num_experts", "num_local_experts",
            "rotary_dim"),
        # the experts' grouped matmul wants rows of a multiple of 16 bytes
        37 if model_type != "mixtral" else 40: ("intermediate_size", "n_inner", "ffn_dim", "d_ff", "hidden_dim",
                                                "ffn_hidden_size"),
        8: ("head_dim", "d_kv"),
        16: ("embedding_size",),
        24: ("moe_intermediate_size",),
        40: ("shared_expert_intermediate_size",),
    }
    for value, keys in names.items():
        kw.update({k: value for k in keys if k in base})
    for k in ("layer_types", "no_rope_layers"):  # per-layer lists: rebuilt for 2 layers
        if base.get(k) is not None:
            kw[k] = None
    for k, v in base.items():  # special token ids must fall inside the vocabulary
        if k.endswith("_token_id") and isinstance(v, int) and v >= VOCAB:
            kw[k] = 0
        elif k.endswith("_token_id") and isinstance(v, list):
            kw[k] = [x if x < VOCAB else 0 for x in v]
    kw = {k: v for k, v in kw.items() if v is not None}
    return T.AutoConfig.for_model(model_type, **{**kw, **extra})


@pytest.fixture(scope="session")
def minilm() -> probekit.HookedModel:
    """The real all-MiniLM-L6-v2 (bundled package)."""
    return probekit.load_model("minilm-l6")


@pytest.fixture(scope="session", params=FAMILIES)
def tiny(request) -> probekit.HookedModel:
    return probekit.load_model(tiny_config(request.param), seed=0)


@pytest.fixture(autouse=True)
def _tempfile_under_pytest(tmp_path_factory, monkeypatch):
    """``tempfile`` (the docstring examples' ``mkdtemp()``, subprocesses' ``TMPDIR``) writes under pytest's folder.

    The folder is removed after the test, so a run leaves nothing in the system's temporary folder, where the
    examples used to leave their stores on every run.
    """
    scratch = tmp_path_factory.mktemp("tempfile")
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    yield
    shutil.rmtree(scratch, ignore_errors=True)


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
