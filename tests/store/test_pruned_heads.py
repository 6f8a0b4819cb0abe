"""A head-pruned model's attention patterns are stored and read with each layer's own head count."""

import numpy as np
import pytest
import torch

import probekit
from probekit.attention import head_mask
from probekit.compare import attention_deltas
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
    # surviving heads line up with the base model's through the layer map
    base_store = extract(base, TEXTS, SITES, tmp_path / "base", progress=False, dtype="float32")
    with pytest.raises(ValueError, match="layer 0 has 4 heads in A and 2 in B"):
        attention_deltas(base_store, store, progress=False)
    survivors = variant.layer_map.heads  # per variant layer, the base heads kept
    head_map = {(lay, h): (lay, k) for lay, kept in enumerate(survivors) for k, h in enumerate(kept)}
    rows = attention_deltas(base_store, store, head_map=head_map, progress=False).to_frame()
    assert len(rows) == 2 * 5
