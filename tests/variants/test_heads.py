import pytest
import torch

import probekit
from probekit.variants import prune_heads
from probekit.variants._heads import ATTENTION_TABLES

from .conftest import TEXTS, logits, tiny_classifier


def _zero_heads(model, family, heads, hs):
    """The reference: switch heads off by zeroing their columns of the output projection."""
    t = ATTENTION_TABLES[family]
    for layer, head in heads:
        o = model.blocks[layer].get_submodule(t.o)
        with torch.no_grad():
            o.weight[:, head * hs:(head + 1) * hs] = 0


@pytest.mark.parametrize("family", ["bert", "distilbert", "roberta"])
def test_pruned_model_equals_masked_original(family):
    model = tiny_classifier(family)
    heads = [(0, 1), (0, 3), (1, 0)]
    v = prune_heads(model, heads=heads, importance="magnitude")
    ref = tiny_classifier(family)
    _zero_heads(ref, family, heads, hs=8)
    torch.testing.assert_close(logits(v.model, TEXTS), logits(ref, TEXTS), atol=1e-5, rtol=1e-5)
    # slices really went: fewer parameters, smaller Q and O
    t = ATTENTION_TABLES[family]
    assert v.model.blocks[0].get_submodule(t.q).weight.shape == (16, 32)
    assert v.model.blocks[0].get_submodule(t.o).weight.shape == (32, 16)
    assert v.layer_map.heads == ((0, 2), (1, 2, 3))


def test_attention_patterns_keep_surviving_heads(bert_cls):
    v = prune_heads(bert_cls, heads=[(0, 1), (1, 3)], importance="magnitude")
    cache = v.model.run_with_cache(TEXTS[:1], sites=["L0.attn.pattern", "L1.attn.pattern"])
    full = bert_cls.run_with_cache(TEXTS[:1], sites=["L0.attn.pattern"])
    assert cache["L0.attn.pattern"][0].shape[0] == 3
    # surviving heads' patterns are the original heads' patterns (layer 0 input is unchanged)
    kept = list(v.layer_map.heads[0])
    torch.testing.assert_close(cache["L0.attn.pattern"][0], full["L0.attn.pattern"][0][kept])


def test_pruning_every_head_of_a_layer_errors_before_work(bert_cls):
    with pytest.raises(ValueError, match="every head of layer 1"):
        prune_heads(bert_cls, heads=[(1, 0), (1, 1), (1, 2), (1, 3)])
    with pytest.raises(ValueError, match="does not exist"):
        prune_heads(bert_cls, heads=[(5, 0)])


def test_fraction_never_empties_a_layer(bert_cls):
    v = prune_heads(bert_cls, fraction=0.75, importance="magnitude")
    assert v.report["heads_after"] == 2
    assert all(len(h) >= 1 for h in v.layer_map.heads)


def test_michel_importance_from_the_attention_issue(bert_cls, rt_small):
    v = prune_heads(bert_cls, fraction=0.25, importance="michel", data=rt_small[:16])
    assert v.report["heads_after"] == 6


def test_ffn_pruning_equals_zeroed_neurons(bert_cls):
    v = prune_heads(bert_cls, ffn_fraction=0.5, importance="magnitude")
    ref = tiny_classifier("bert")
    for layer, kept in enumerate(v.layer_map.ffn):
        out = ref.blocks[layer].output.dense
        drop = [i for i in range(out.weight.shape[1]) if i not in kept]
        with torch.no_grad():
            out.weight[:, drop] = 0
    torch.testing.assert_close(logits(v.model, TEXTS), logits(ref, TEXTS), atol=1e-5, rtol=1e-5)


def test_save_load_rebuilds_pruned_shapes(bert_cls, tmp_path):
    v = prune_heads(bert_cls, heads=[(0, 1), (1, 2), (1, 3)], ffn_fraction=0.25, importance="magnitude")
    v.save(tmp_path / "h")
    back = probekit.load_model(tmp_path / "h")
    assert back.recipe == v.recipe and back.layer_map == v.layer_map
    torch.testing.assert_close(logits(back.model, TEXTS), logits(v.model, TEXTS))
    # pruning a pruned variant composes the maps back to the original heads
    v2 = prune_heads(back, heads=[(1, 0)], importance="magnitude")
    assert v2.layer_map.heads == ((0, 2, 3), (1,))
    assert [d["kind"] for d in v2.lineage] == ["head-prune"]


def test_unsupported_family_is_a_clear_error():
    model = probekit.load_model(__import__("tests.conftest", fromlist=["x"]).tiny_config("gpt2"))
    with pytest.raises(NotImplementedError, match="structured head pruning supports"):
        prune_heads(model, heads=[(0, 0)])
