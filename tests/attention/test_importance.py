"""Head masks and Michel et al. head importance, on every family's adapter."""

import pytest
import torch

import probekit
from probekit.attention import head_importance, head_mask
from tests.conftest import FAMILIES, tiny_config
from tests.test_hooks import _n_hooks

TEXTS = ["a gorgeous, witty movie.", "the plot is a mess", "dull and long", "sharp and funny"]


@pytest.mark.parametrize("family", FAMILIES)
def test_mask_of_ones_is_identity_and_zeros_change_output(family):
    m = probekit.load_model(tiny_config(family), head="sequence-classification", num_labels=2, seed=3)
    ref = m.run_with_cache(TEXTS, sites=["L0.attn.out"])["L0.attn.out"]
    with head_mask(m, torch.ones(m.n_layers, m.n_heads)):
        same = m.run_with_cache(TEXTS, sites=["L0.attn.out"])["L0.attn.out"]
    off = torch.ones(m.n_layers, m.n_heads)
    off[0, 1] = 0
    with head_mask(m, off):
        changed = m.run_with_cache(TEXTS, sites=["L0.attn.out"])["L0.attn.out"]
    assert torch.allclose(ref, same, atol=1e-6)
    # switching one of four heads off moves the attention output by a visible fraction
    assert (ref - changed).norm() > 0.05 * ref.norm()
    assert _n_hooks(m.model) == 0


def test_zero_mask_equals_zeroing_the_heads_value_slice():
    """Masking head h equals zeroing the rows of V that produce its context (BERT)."""
    m = probekit.load_model(tiny_config("bert"), head="sequence-classification", num_labels=2, seed=5)
    rows = [e.input_ids for e in m.tokenize(TEXTS).examples]
    off = torch.ones(2, 4)
    off[1, 2] = 0
    with torch.no_grad(), head_mask(m, off):
        masked = m.forward_rows(rows).logits
    v = m.blocks[1].attention.self.value
    with torch.no_grad():
        v.weight[16:24] = 0
        v.bias[16:24] = 0
        zeroed = m.forward_rows(rows).logits
    assert torch.allclose(masked, zeroed, atol=1e-6)


def test_head_importance_table():
    m = probekit.load_model(tiny_config("bert"), head="sequence-classification", num_labels=2, seed=2)
    df = head_importance(m, TEXTS, labels=[1, 0, 0, 1], batch_size=3)
    assert list(df.columns) == ["layer", "block", "head", "importance"] and len(df) == 8
    assert (df["layer"] == df["block"] + 1).all() and set(df["block"]) == {0, 1}
    norms = df.groupby("block")["importance"].apply(lambda s: (s**2).sum() ** 0.5)
    assert norms.round(6).tolist() == [1.0, 1.0]
    raw = head_importance(m, TEXTS, labels=[1, 0, 0, 1], normalise=False, batch_size=4)
    assert (raw["importance"] > 0).all()
    with pytest.raises(ValueError, match="4 texts but 3 labels"):
        head_importance(m, TEXTS, labels=[1, 0, 0])
    with pytest.raises(ValueError, match="head mask must be"):
        with head_mask(m, torch.ones(3, 4)):
            pass
