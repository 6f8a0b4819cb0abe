"""Captured activations equal the model's own outputs, for every family."""

import pytest
import torch

import probekit
from tests.conftest import FAMILIES, tiny_config

TEXTS = ["The quick brown fox jumps over the lazy dog.", "A short one.",
         "Researchers probe what each layer of a transformer encodes, word by word."]


def _reference(m: probekit.HookedModel, texts):
    enc = m.tokenizer(texts, padding=True, return_tensors="pt")
    with m.eager_attention(), torch.inference_mode():
        out = m.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                      output_hidden_states=True, output_attentions=True)
    return enc["attention_mask"].bool(), out


def _check_equal(m, texts):
    sites = m.sites()
    cache = m.run_with_cache(texts, sites=sites)
    mask, out = _reference(m, texts)
    assert len(out.hidden_states) == m.n_layers + 1
    assert torch.equal(cache.attention_mask.bool(), mask)
    last = m.n_layers - 1 if m.adapter.final is None else None
    for depth, s in enumerate(m.residual_sites()):
        if s.layer is not None and s.layer == m.n_layers - 1 and m.adapter.final is not None:
            continue  # HF's last hidden state is after the final norm; checked as `final` below
        diff = (cache[s][mask] - out.hidden_states[depth][mask]).abs().max().item()
        assert diff < 1e-6, (s, diff)
    if m.adapter.final is not None:
        diff = (cache["final"][mask] - out.hidden_states[-1][mask]).abs().max().item()
        assert diff < 1e-6, diff
    else:
        assert last is not None
    pair = mask[:, None, :, None] & mask[:, None, None, :]
    for layer in range(m.n_layers):
        got = cache[f"L{layer}.attn.pattern"]
        want = out.attentions[layer]
        assert got.shape == want.shape == (len(texts), m.n_heads, mask.shape[1], mask.shape[1])
        diff = (got - want).abs()[pair.expand_as(want)].max().item()
        assert diff < 1e-6, (layer, diff)
        # rows of real queries are probability distributions over real keys
        rows = got.sum(-1)[mask[:, None, :].expand(-1, m.n_heads, -1)]
        assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5)
    for s in m.sites(["attn.out", "mlp.out"]):
        assert cache[s].shape == (len(texts), mask.shape[1], m.d_model)
    return cache


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_family_matches_hf(family):
    m = probekit.load_model(tiny_config(family), seed=1)
    assert m.config._attn_implementation != "eager" or family == "mpnet"
    before = m.config._attn_implementation
    cache = _check_equal(m, TEXTS)
    assert m.config._attn_implementation == before  # eager only for that call
    hidden = cache["L0.mlp.hidden"]
    assert hidden.shape[-1] == 37


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_sublayer_outputs_add_up(family):
    """attn.out and mlp.out are what a pre-norm block adds to the residual stream."""
    m = probekit.load_model(tiny_config(family), seed=2)
    c = m.run_with_cache(TEXTS[:1], sites=["emb", "L0.resid", "L0.attn.out", "L0.mlp.out"])
    recon = c["emb"] + c["L0.attn.out"] + c["L0.mlp.out"]
    assert (recon - c["L0.resid"]).abs().max().item() < 1e-5


@pytest.mark.parametrize("head", ["sequence-classification", "token-classification"])
@pytest.mark.parametrize("family", ["bert", "gpt2", "distilbert"])
def test_task_head_models(family, head):
    m = probekit.load_model(tiny_config(family), head=head, num_labels=3, seed=0)
    suffix = {"sequence-classification": "ForSequenceClassification",
              "token-classification": "ForTokenClassification"}[head]
    assert type(m.model).__name__.endswith(suffix)
    assert m.model.config.num_labels == 3
    _check_equal(m, TEXTS)


def test_real_minilm_matches_hf(minilm):
    assert (minilm.n_layers, minilm.d_model, minilm.n_heads) == (6, 384, 12)
    _check_equal(minilm, TEXTS)


def test_real_weights_behave(minilm):
    """Paraphrases are closer than unrelated sentences in mean-pooled final states."""
    pairs = [
        ("A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."),
        ("The weather is lovely this morning.", "It is a beautiful sunny morning.",
         "He forgot his keys at the office."),
        ("How do I reset my password?", "What are the steps to change my password?", "Tigers live in the jungle."),
    ]
    for a, para, other in pairs:
        v = minilm.run_with_cache([a, para, other], sites=["L5.resid"]).sentence_pooled("L5.resid", "mean")
        v = torch.nn.functional.normalize(v.float(), dim=-1)
        assert v[0] @ v[1] > v[0] @ v[2] + 0.2, (a, (v[0] @ v[1]).item(), (v[0] @ v[2]).item())


def test_real_attention_on_sep(minilm):
    """Real BERT-style weights put a visible share of attention on [CLS]/[SEP] in middle layers."""
    c = minilm.run_with_cache(TEXTS, sites=["L2.attn.pattern"])
    ids = c.input_ids
    special = (ids == minilm.tokenizer.cls_token_id) | (ids == minilm.tokenizer.sep_token_id)
    mass = (c["L2.attn.pattern"] * special[:, None, None, :]).sum(-1)
    mask = c.attention_mask.bool()[:, None, :].expand_as(mass)
    assert mass[mask].mean() > 0.2
