import torch
from torch import nn

import probekit
from probekit.variants import magnitude_prune
from probekit.variants._prune import prunable_linears

from .conftest import TEXTS, logits


def _weights(model, names):
    return {n: model.get_submodule(n).weight.detach().clone() for n in names}


def test_global_sparsity_is_exact_and_permanent(bert_cls):
    before = {k: v.clone() for k, v in bert_cls.model.state_dict().items()}
    v = magnitude_prune(bert_cls, sparsity=0.5)
    names = [n for n, _ in prunable_linears(bert_cls)]
    total = sum(v.model.model.get_submodule(n).weight.numel() for n in names)
    zeros = sum(int((v.model.model.get_submodule(n).weight == 0).sum()) for n in names)
    assert zeros == round(0.5 * total)
    assert v.report["sparsity"].iloc[-1]["sparsity"] == zeros / total
    # permanent: plain weights, no masks or re-parametrisation hooks left
    sd = v.model.model.state_dict()
    assert not any(k.endswith(("weight_orig", "weight_mask")) for k in sd)
    assert all(not m._forward_pre_hooks for m in v.model.model.modules())
    # the smallest weights went: every kept weight is >= every pruned one in magnitude
    w = torch.cat([bert_cls.model.get_submodule(n).weight.abs().flatten() for n in names])
    kept = torch.cat([v.model.model.get_submodule(n).weight.flatten() != 0 for n in names])
    assert w[kept].min() >= w[~kept].max()
    # the source model is untouched; embeddings/classifier were not pruned
    assert all(torch.equal(before[k], t) for k, t in bert_cls.model.state_dict().items())
    assert torch.equal(sd["classifier.weight"], before["classifier.weight"])


def test_per_layer_sparsity(bert_cls):
    v = magnitude_prune(bert_cls, sparsity=0.3, scope="layer")
    table = v.report["sparsity"].iloc[:-1]
    for row in table.itertuples():
        assert row.zeros == round(0.3 * row.numel)


def test_save_load_round_trip_keeps_zeros_and_recipe(bert_cls, tmp_path):
    v = magnitude_prune(bert_cls, sparsity=0.5)
    v.save(tmp_path / "sparse")
    assert not list((tmp_path / "sparse").glob("*.bin")) and not list((tmp_path / "sparse").glob("*.pt"))
    back = probekit.load_model(tmp_path / "sparse")
    assert back.recipe == v.recipe
    assert back.fingerprint() == v.fingerprint()
    assert back.base["fingerprint"] == bert_cls.weights_hash()
    assert torch.equal(back.model.model.bert.encoder.layer[0].attention.self.query.weight,
                       v.model.model.bert.encoder.layer[0].attention.self.query.weight)
    assert torch.allclose(logits(back.model, TEXTS), logits(v.model, TEXTS))


def test_zero_sparsity_is_a_no_op(bert_cls):
    v = magnitude_prune(bert_cls, sparsity=0.0)
    assert torch.allclose(logits(v.model, TEXTS), logits(bert_cls, TEXTS))
    assert isinstance(v.model.model.bert.encoder.layer[0].output.dense, nn.Linear)
