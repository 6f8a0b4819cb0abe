"""Recovery fine-tuning after pruning keeps what was pruned pruned, and is part of the recipe."""

import pytest
import torch

import probekit
from probekit.variants import HeadPruneRecipe, MagnitudePruneRecipe, magnitude_prune, prune_heads, sparsity_report


def _zero_masks(model):
    return {n: (m.weight.detach() == 0) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.startswith("bert.encoder")}


def test_magnitude_recovery_keeps_pruned_weights_at_zero(bert_cls, rt_small, tmp_path):
    plain = magnitude_prune(bert_cls, sparsity=0.5)
    v = magnitude_prune(bert_cls, sparsity=0.5, recover_epochs=2, recover_lr=5e-3, data=rt_small,
                        eval_data=rt_small[:16], out=tmp_path / "rec")
    before, after = _zero_masks(plain.model.model), _zero_masks(v.model.model)
    assert before.keys() == after.keys() and before
    for name in before:
        assert bool(after[name][before[name]].all()), f"{name}: a pruned weight came back"
    # the kept weights did train
    moved = max(float((dict(v.model.model.named_parameters())[f"{n}.weight"]
                       - dict(plain.model.model.named_parameters())[f"{n}.weight"]).abs().max()) for n in before)
    assert moved > 1e-4
    assert v.report["sparsity"].iloc[-1]["sparsity"] == pytest.approx(plain.report["sparsity"].iloc[-1]["sparsity"])
    rec = v.report["recovery"]
    assert rec["global_step"] > 0 and {"accuracy", "macro_f1"} <= set(rec["eval_before"]) | set(rec["eval_after"])
    # saved and loaded back, still sparse
    v.save(tmp_path / "v")
    back = probekit.load_model(tmp_path / "v")
    assert back.recipe.recover_epochs == 2
    assert sparsity_report(back.model.model).iloc[-1]["zeros"] == sparsity_report(v.model.model).iloc[-1]["zeros"]


def test_recovery_is_part_of_the_recipe_fingerprint():
    a, b = MagnitudePruneRecipe(sparsity=0.5), MagnitudePruneRecipe(sparsity=0.5, recover_epochs=1)
    c = MagnitudePruneRecipe(sparsity=0.5, recover_epochs=1, recover_lr=1e-4)
    assert len({a.fingerprint(), b.fingerprint(), c.fingerprint()}) == 3
    h = HeadPruneRecipe(fraction=0.4)
    assert h.fingerprint() != HeadPruneRecipe(fraction=0.4, recover_epochs=0.5).fingerprint()
    assert HeadPruneRecipe(fraction=0.4, recover_epochs=0.5, recover_lr=1e-4).fingerprint() != \
        HeadPruneRecipe(fraction=0.4, recover_epochs=0.5).fingerprint()
    with pytest.raises(ValueError, match="recover_lr"):
        MagnitudePruneRecipe(recover_lr=0)
    with pytest.raises(ValueError, match="recover_epochs"):
        MagnitudePruneRecipe(recover_epochs=-1)


def test_magnitude_recovery_needs_data(bert_cls):
    with pytest.raises(ValueError, match="needs data"):
        magnitude_prune(bert_cls, sparsity=0.5, recover_epochs=1)


def test_head_recovery_keeps_removed_heads_removed(bert_cls, rt_small):
    v = prune_heads(bert_cls, heads=[(0, 1), (1, 0), (1, 3)], recover_epochs=1, recover_lr=5e-3, data=rt_small,
                    eval_data=rt_small[:16])
    assert v.layer_map.heads == ((0, 2, 3), (1, 2))
    blocks = v.model.model.bert.encoder.layer
    hs = 32 // 4
    assert blocks[0].attention.self.query.weight.shape[0] == 3 * hs
    assert blocks[1].attention.self.query.weight.shape[0] == 2 * hs
    rec = v.report["recovery"]
    assert rec["global_step"] > 0 and "eval_before" in rec and "eval_after" in rec
