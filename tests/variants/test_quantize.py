import pytest
import torch
import torch.nn.functional as F

import probekit
from probekit.variants import QuantizeRecipe, WeightOnlyLinear, quantize

from .conftest import TEXTS, logits

SITES = ["L0.resid", "L1.resid", "L1.attn.pattern", "L1.mlp.out"]


def _close(a, b, min_cos=0.99):
    return F.cosine_similarity(a.flatten().float(), b.flatten().float(), dim=0) > min_cos


def test_dynamic_int8_keeps_sites_hidden_states_and_patterns(bert_cls):
    q = quantize(bert_cls, method="dynamic-int8")
    qlin = q.model.model.bert.encoder.layer[0].attention.self.query
    assert "quantized" in type(qlin).__module__  # really int8
    assert isinstance(bert_cls.model.bert.encoder.layer[0].attention.self.query, torch.nn.Linear)  # source kept
    assert [str(s) for s in q.model.sites()] == [str(s) for s in bert_cls.sites()]
    fp = bert_cls.run_with_cache(TEXTS, sites=SITES)
    qc = q.model.run_with_cache(TEXTS, sites=SITES)
    for site in SITES:
        for a, b in zip(fp[site], qc[site]):
            assert a.shape == b.shape
            assert _close(a, b), site
    pat, ref = qc["L1.attn.pattern"][0], fp["L1.attn.pattern"][0]
    torch.testing.assert_close(pat.sum(-1), ref.sum(-1))  # still probabilities where the fp32 rows are
    assert (pat - ref).abs().max() < 0.05


@pytest.mark.parametrize("method, qmax", [("weight-int8", 127), ("weight-int4", 7)])
def test_weight_only_is_close(bert_cls, method, qmax):
    q = quantize(bert_cls, method=method, backend="probekit")
    mod = q.model.model.bert.encoder.layer[0].output.dense
    assert isinstance(mod, WeightOnlyLinear) and mod.qweight.dtype == torch.int8
    assert int(mod.qweight.abs().max()) <= qmax + 1
    w = bert_cls.model.bert.encoder.layer[0].output.dense.weight.detach()
    deq = (mod.qweight.float() * mod.scale).view_as(w)
    # round-to-nearest: error at most half a step of each row/group's scale
    assert ((deq - w).abs().view_as(mod.qweight) <= mod.scale / 2 + 1e-7).all()
    fp = bert_cls.run_with_cache(TEXTS, sites=["L1.resid"])["L1.resid"]
    qc = q.model.run_with_cache(TEXTS, sites=["L1.resid"])["L1.resid"]
    assert all(_close(a, b, 0.99) for a, b in zip(fp, qc))


def test_static_int8_calibrates_and_round_trips(bert_cls, rt_small, tmp_path):
    with pytest.raises(ValueError, match="calibration"):
        quantize(bert_cls, method="static-int8")
    q = quantize(bert_cls, method="static-int8", calibration=list(rt_small["text"]), modules="blocks")
    assert q.structure["static_ranges"]
    assert _close(logits(q.model, TEXTS), logits(bert_cls, TEXTS), 0.95)
    cache = q.model.run_with_cache(TEXTS[:1], sites=["L1.attn.pattern"])
    assert cache["L1.attn.pattern"][0].shape[0] == 4
    q.save(tmp_path / "s")
    back = probekit.load_model(tmp_path / "s")
    torch.testing.assert_close(logits(back.model, TEXTS), logits(q.model, TEXTS))


def test_save_load_reapplies_quantization(bert_cls, tmp_path):
    q = quantize(bert_cls, QuantizeRecipe(method="dynamic-int8"))
    q.save(tmp_path / "q")
    back = probekit.load_model(tmp_path / "q")
    assert back.recipe == q.recipe
    assert "quantized" in type(back.model.model.bert.encoder.layer[1].output.dense).__module__
    torch.testing.assert_close(logits(back.model, TEXTS), logits(q.model, TEXTS))
    # the float weights were saved, not the int8 ones
    assert torch.equal(back.float_model.bert.encoder.layer[1].output.dense.weight,
                       bert_cls.model.bert.encoder.layer[1].output.dense.weight)


def test_no_linear_layers_is_an_error_before_work(bert_cls):
    q = quantize(bert_cls, method="dynamic-int8")
    with pytest.raises(ValueError, match="no linear layers"):
        quantize(q, method="dynamic-int8", modules="blocks")


def test_backend_choice_is_explicit():
    from probekit.variants._quantize import resolve_backend

    assert resolve_backend(QuantizeRecipe(method="dynamic-int8"), "cpu") == "torch.ao"
    with pytest.raises(ValueError, match="CPU only"):
        resolve_backend(QuantizeRecipe(method="dynamic-int8", backend="torch.ao"), "cuda")
    with pytest.raises(ValueError, match="no weight-int4"):
        resolve_backend(QuantizeRecipe(method="weight-int4", backend="torch.ao"), "cpu")


def test_weight_only_auto_backend_on_cpu_ignores_torchao(monkeypatch):
    """torchao's weight-only kernels are no faster on CPU (int4 has none): auto stays on probekit there."""
    import importlib.util

    from probekit.variants._quantize import resolve_backend

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "torchao" else real(name, *a))
    for method in ("weight-int8", "weight-int4"):
        assert resolve_backend(QuantizeRecipe(method=method), "cpu") == "probekit"
        assert resolve_backend(QuantizeRecipe(method=method), "cuda") == "torchao"
    with pytest.raises(ValueError, match="int4 weight-only layouts need CUDA"):
        resolve_backend(QuantizeRecipe(method="weight-int4", backend="torchao"), "cpu")
