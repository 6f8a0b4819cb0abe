"""A head-pruned model's attention patterns are stored and read with each layer's own head count."""

import numpy as np
import pytest
import torch

import probekit
from probekit import HookedModel
from probekit.attention import head_mask
from probekit.compare import attention_deltas, compare, head_map_for
from probekit.store import extract
from probekit.variants import prune_heads
from tests.conftest import tiny_config

TEXTS = ["the film is witty and warm", "a dull , lifeless mess", "sharp writing"]
SITES = ["L0.attn.pattern", "L1.attn.pattern", "L1.resid"]


def test_pruned_attention_round_trip(tmp_path):
    base = probekit.load_model(tiny_config("bert"), head="sequence-classification", num_labels=2, seed=0)
    variant = prune_heads(base, heads=((0, 1), (0, 3), (1, 2)))
    pruned = variant.model
    assert pruned.heads_per_layer() == [2, 3] and base.heads_per_layer() == [4, 4]
    with pytest.raises(ValueError, match="layer 0 of .* has heads 0-1"):
        pruned.site("L0.attn.pattern.h2")
    with pytest.raises(NotImplementedError, match="structurally head-pruned"):
        with head_mask(pruned, torch.ones(2, 4)):
            pass
    store = extract(pruned, TEXTS, SITES, tmp_path / "pruned", progress=False, dtype="float32")
    cache = pruned.run_with_cache(TEXTS, sites=SITES)
    for layer, heads in ((0, 2), (1, 3)):
        for i in range(len(TEXTS)):
            got = np.asarray(store[f"L{layer}.attn.pattern"].example(i))
            want = cache.examples(f"L{layer}.attn.pattern")[i].numpy()
            assert got.shape[0] == heads
            np.testing.assert_allclose(got, want, atol=1e-6)
    # surviving heads line up with the base model's through the layer map the store records
    base_store = extract(base, TEXTS, SITES, tmp_path / "base", progress=False, dtype="float32")
    survivors = variant.layer_map.heads  # per variant layer, the base heads kept
    head_map = {(lay, h): (lay, k) for lay, kept in enumerate(survivors) for k, h in enumerate(kept)}
    assert head_map_for(base_store, store) == head_map
    assert head_map_for(store, base_store) == {v: k for k, v in head_map.items()}
    rows = attention_deltas(base_store, store, progress=False).to_frame()
    assert len(rows) == 2 * 5
    assert rows.equals(attention_deltas(base_store, store, head_map=head_map, progress=False).to_frame())
    # removing heads leaves the surviving heads' patterns in that layer unchanged (their queries and keys are
    # untouched), so each layer-0 survivor paired with the base head it descends from agrees exactly; layer 1
    # sees a changed input (layer 0 lost heads), so its survivors agree only closely
    first = rows[rows["block"] == 0]
    assert first[first["metric"] == "attention_jsd_bits"]["value"].max() < 1e-12
    assert first[first["metric"] == "attention_corr"]["value"].min() > 1 - 1e-9
    assert rows[rows["metric"] == "attention_jsd_bits"]["value"].max() < 1e-6
    # the same pruned model with no variant record: which heads survived is unknown, so it is refused
    anonymous = HookedModel(pruned.model, pruned.tokenizer, name="anonymous")
    anon_store = extract(anonymous, TEXTS, SITES, tmp_path / "anon", progress=False, dtype="float32")
    with pytest.raises(ValueError, match="head-pruned.*records no layer map"):
        attention_deltas(base_store, anon_store, progress=False)


def test_compare_pairs_surviving_heads_of_a_saved_variant(tmp_path):
    base = probekit.load_model(tiny_config("bert"), head="sequence-classification", num_labels=2, seed=0)
    variant = prune_heads(base, heads=((1, 0), (1, 3)))
    variant.save(tmp_path / "v")
    loaded = probekit.load_model(tmp_path / "v")
    sa = extract(base, TEXTS, SITES, tmp_path / "a", progress=False, dtype="float32")
    sb = extract(loaded, TEXTS, SITES, tmp_path / "b", progress=False, dtype="float32")
    cmp = compare(sa, sb, progress=False)
    att = cmp.results.to_frame()
    att = att[att["metric"] == "attention_jsd_bits"]
    assert sorted(zip(att["block"], att["head"])) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2)]
    assert (att["layer"] == att["block"] + 1).all()
    # B's surviving heads are renumbered; site_b names them (block 1 kept base heads 1 and 2 as its heads 0 and 1)
    assert sorted(att[att["block"] == 1]["site_b"]) == ["L1.attn.pattern.h0", "L1.attn.pattern.h1"]
    assert att["value"].max() < 1e-6
