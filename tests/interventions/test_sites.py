"""Interventions at sites during the forward pass, on tiny models of several families."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import probekit
from probekit.interventions import Ablate, AblateHeads, LeaceEraser, Patch, ProjectOut, Steer, random_eraser_like
from probekit.model import resolve_module
from probekit.store import ActivationStore, FingerprintMismatchError
from tests.conftest import tiny_config

FAMS = ("bert", "distilbert", "gpt2", "llama")
TEXTS = ["the cat sat on the mat", "it rained all day long in the town", "a dog"]


@pytest.fixture(scope="module", params=FAMS)
def model(request):
    return probekit.load_model(tiny_config(request.param), seed=0)


def _n_hooks(model: torch.nn.Module) -> int:
    return sum(fn.__module__.startswith("probekit") for m in model.modules()
               for fn in list(m._forward_hooks.values()) + list(m._forward_pre_hooks.values()))


def _cache(m, sites, **kw):
    return m.run_with_cache(TEXTS, sites, **kw)


def test_empty_intervention_list_is_bit_identical(model):
    sites = [str(s) for s in model.sites() if not s.is_attention]
    plain = _cache(model, sites)
    empty = _cache(model, sites, interventions=[])
    for s in sites:
        for a, b in zip(plain.examples(s), empty.examples(s)):
            assert torch.equal(a, b), s


def test_zero_ablation_zeroes_the_site_and_changes_later_layers(model):
    plain = _cache(model, ["L0.resid", "L1.resid"])
    abl = _cache(model, ["L0.resid", "L0.mlp.out", "L1.resid"], interventions=[Ablate("L0.mlp.out", "zero")])
    for t in abl.examples("L0.mlp.out"):
        assert float(t.abs().max()) == 0.0
    for a, b in zip(plain.examples("L1.resid"), abl.examples("L1.resid")):
        assert not torch.allclose(a, b)
    # zeroing the residual stream itself: what later layers see is zero
    z = _cache(model, ["L0.resid"], interventions=[Ablate("L0.resid", "zero")])
    assert all(float(t.abs().max()) == 0.0 for t in z.examples("L0.resid"))


def test_patching_own_activations_back_changes_nothing(model):
    sites = ["L0.resid", "L1.resid"]
    plain = _cache(model, sites)
    patched = _cache(model, sites, interventions=[Patch.from_cache(plain, "L0.resid")])
    for s in sites:
        for a, b in zip(plain.examples(s), patched.examples(s)):
            assert torch.allclose(a, b, atol=1e-6, rtol=0), s


def test_patch_from_another_input_copies_its_activations(model):
    src = Patch.from_input(model, "the dog ran", "L0.resid")
    n = src.shared.shape[0]
    out = model.run_with_cache(["a bird flew over the house"], ["L0.resid"], interventions=[src])
    got = out.examples("L0.resid")[0]
    assert torch.allclose(got[:n].double(), src.shared, atol=1e-6)
    # and a patch at a chosen position only
    one = Patch.from_input(model, "the dog ran", "L0.resid", positions=[1])
    plain = model.run_with_cache(["a bird flew over the house"], ["L0.resid"]).examples("L0.resid")[0]
    got = model.run_with_cache(["a bird flew over the house"], ["L0.resid"],
                               interventions=[one]).examples("L0.resid")[0]
    assert torch.allclose(got[1].double(), one.shared[1], atol=1e-6)
    assert torch.equal(got[2:], plain[2:])


def test_a_source_longer_than_the_input_is_one_error_whatever_the_batch(model):
    """A longer source errored alone but wrote silently into the padding of a short row batched with a long one
    (issue 25): the row's own length decides, not the batch's width."""
    src = Patch.from_input(model, "the dog ran over the hill", "L0.resid")
    short, long = "a dog", "it rained all day long in the town and later too"
    with pytest.raises(ValueError, match=r"patch at L0.resid: the source has \d+ tokens but the input of example 0 "
                                         r"has \d+; positions .* fall beyond it"):
        model.run_with_cache([short], ["L0.resid"], interventions=[src])
    with pytest.raises(ValueError, match=r"the input of example 0 has \d+; positions"):
        model.run_with_cache([short, long], ["L0.resid"], interventions=[src], batch_size=2)
    per_example = Patch("L0.resid", {0: src.shared, 1: src.shared})
    with pytest.raises(ValueError, match=r"the input of example 0 has"):
        model.run_with_cache([short, long], ["L0.resid"], interventions=[per_example], batch_size=2)
    # within both, the short row is patched and its neighbour's extra length changes nothing
    within = Patch.from_input(model, "the dog ran over the hill", "L0.resid", positions=[0, 1])
    alone = model.run_with_cache([short], ["L0.resid"], interventions=[within]).examples("L0.resid")[0]
    batched = model.run_with_cache([short, long], ["L0.resid"], interventions=[within],
                                   batch_size=2).examples("L0.resid")[0]
    assert torch.allclose(alone, batched, atol=1e-5)


def test_steer_and_project_out(model):
    d = model.d_model
    v = torch.zeros(d)
    v[3] = 5.0
    plain = _cache(model, ["L1.resid"])
    st = _cache(model, ["L1.resid"], interventions=[Steer("L1.resid", v, scale=2.0)])
    for a, b in zip(plain.examples("L1.resid"), st.examples("L1.resid")):
        assert torch.allclose(b - a, (2 * v).expand_as(a), atol=1e-5)
    pr = _cache(model, ["L1.resid"], interventions=[ProjectOut("L1.resid", v)])
    for a, b in zip(plain.examples("L1.resid"), pr.examples("L1.resid")):
        assert float(b[:, 3].abs().max()) < 1e-6
        keep = [i for i in range(d) if i != 3]
        assert torch.allclose(a[:, keep], b[:, keep], atol=1e-6)


def test_interventions_compose_in_order(model):
    v = torch.ones(model.d_model)
    zero_then_steer = _cache(model, ["L1.resid"], interventions=[Ablate("L1.resid"), Steer("L1.resid", v)])
    steer_then_zero = _cache(model, ["L1.resid"], interventions=[Steer("L1.resid", v), Ablate("L1.resid")])
    assert all(torch.allclose(t, torch.ones_like(t)) for t in zero_then_steer.examples("L1.resid"))
    assert all(float(t.abs().max()) == 0 for t in steer_then_zero.examples("L1.resid"))


def test_head_ablation_equals_zeroing_that_heads_slice(model):
    layer, head = 1, 2
    ablated = _cache(model, ["L1.resid"], interventions=[AblateHeads(layer, [head])])
    proj = resolve_module(model.blocks[layer], model.adapter.attn_output_proj)
    hd = model.d_model // model.n_heads
    w = proj.weight
    saved = w.detach().clone()
    with torch.no_grad():
        if w.shape[0] == model.d_model and type(proj).__name__ == "Conv1D":  # GPT-2: [in, out]
            w[head * hd:(head + 1) * hd, :] = 0
        else:  # nn.Linear: [out, in]
            w[:, head * hd:(head + 1) * hd] = 0
    try:
        manual = _cache(model, ["L1.resid"])
    finally:
        with torch.no_grad():
            w.copy_(saved)
    plain = _cache(model, ["L1.resid"])
    for a, b, c in zip(ablated.examples("L1.resid"), manual.examples("L1.resid"), plain.examples("L1.resid")):
        assert torch.allclose(a, b, atol=1e-5)
        assert not torch.allclose(a, c, atol=1e-5)


def test_eraser_is_an_intervention(model):
    rng = np.random.default_rng(0)
    cache = _cache(model, ["L0.resid"])
    X0 = torch.cat(cache.examples("L0.resid")).numpy().astype(np.float64)
    y = rng.integers(0, 2, len(X0))
    X = X0.copy()
    X[y == 1, 0] += 3.0
    eraser = LeaceEraser("L0.resid").fit(X, y)
    out = _cache(model, ["L0.resid"], interventions=[eraser.as_intervention()])
    got = torch.cat(out.examples("L0.resid")).double().numpy()
    assert np.allclose(got, eraser(X0), atol=1e-4)
    ctrl = random_eraser_like(eraser, random_state=1)
    assert _cache(model, ["L0.resid"], interventions=[ctrl]).examples("L0.resid")[0].shape[-1] == model.d_model
    with pytest.raises(ValueError, match="unnamed features"):
        LeaceEraser().fit(X, y).target()


def test_hooks_removed_when_the_forward_raises(model):
    base = _n_hooks(model.model)
    bad = Steer("L1.resid", torch.ones(model.d_model + 1))
    with pytest.raises(ValueError, match="dimensions"):
        _cache(model, ["L1.resid"], interventions=[Ablate("L0.resid"), bad])
    assert _n_hooks(model.model) == base
    with pytest.raises(RuntimeError, match="boom"), model.intervening([Ablate("L0.resid"), AblateHeads(0, 1)]):
        assert _n_hooks(model.model) == base + 3  # and one reading [batch, tokens] at the first block
        raise RuntimeError("boom")
    assert _n_hooks(model.model) == base


def test_bad_interventions_are_clear_errors(model):
    with pytest.raises(ValueError, match="attention patterns are read"):
        Ablate("L0.attn.pattern")
    with pytest.raises(ValueError, match="out of range"):
        _cache(model, ["L1.resid"], interventions=[AblateHeads(1, [7])])
    with pytest.raises(ValueError, match="layer 5 is out of range"):
        _cache(model, ["L1.resid"], interventions=[Ablate("L5.resid")])
    with pytest.raises(TypeError, match="not an intervention"):
        _cache(model, ["L1.resid"], interventions=["L0.resid"])
    with pytest.raises(ValueError, match="exactly one of mean"):
        Ablate("L0.resid", "mean")


def test_descriptions_hash_arrays():
    a, b = Steer("L1.resid", [1.0, 0.0]), Steer("L1.resid", [1.0, 1e-9])
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == Steer("L1.resid", np.array([1.0, 0.0])).fingerprint()
    assert Ablate("L0.resid").to_dict()["type"] == "ablate"
    assert "arrays" in Steer("L1.resid", [1.0]).to_dict()


def test_store_with_interventions_has_its_own_fingerprint_and_is_refused_as_plain(tmp_path):
    m = probekit.load_model(tiny_config("bert"), seed=0)
    plain = probekit.extract(m, TEXTS, ["L0.resid", "L1.resid"], tmp_path / "plain", progress=False)
    ivs = [Ablate("L0.resid", "mean", store=plain), Steer("L1.resid", torch.ones(m.d_model))]
    abl = probekit.extract(m, TEXTS, ["L0.resid", "L1.resid"], tmp_path / "abl", progress=False,
                           interventions=ivs)
    assert abl.fingerprint != plain.fingerprint
    assert len(abl.interventions) == 2 and plain.interventions == []
    mean = ivs[0].mean.numpy()
    assert np.allclose(abl["L0.resid"].example(0), mean, atol=1e-3)  # float16 store
    # intervened activations are what is stored
    cache = m.run_with_cache(TEXTS, ["L1.resid"], interventions=ivs)
    assert np.allclose(abl["L1.resid"].example(1), cache.examples("L1.resid")[1].numpy(), atol=1e-2)
    with pytest.raises(FingerprintMismatchError, match="interventions"):
        ActivationStore.open(tmp_path / "abl", model=m)
    ActivationStore.open(tmp_path / "abl", model=m, interventions=ivs)
    with pytest.raises(FingerprintMismatchError, match="interventions"):
        ActivationStore.open(tmp_path / "plain", model=m, interventions=ivs)
    ActivationStore.open(tmp_path / "plain", model=m)
    # the plain store is not reused (nor overwritten) for an intervened extraction
    with pytest.raises(FingerprintMismatchError):
        probekit.extract(m, TEXTS, ["L0.resid", "L1.resid"], tmp_path / "plain", progress=False, interventions=ivs)
    # patching each stored example back in: per-example values reach the right rows
    back = probekit.extract(m, TEXTS, ["L1.resid"], tmp_path / "back", progress=False, dtype="float32",
                            interventions=[Patch.from_store(abl, "L1.resid")], batch_tokens=16)
    for i in range(len(TEXTS)):
        assert np.allclose(back["L1.resid"].example(i), abl["L1.resid"].example(i), atol=1e-6)


def test_classifier_evaluation_and_attribution_take_interventions():
    import pandas as pd

    from probekit.attribution import Attributor
    from probekit.variants import evaluate, predict_logits

    m = probekit.load_model(tiny_config("bert"), head="sequence-classification", num_labels=2, seed=0)
    data = pd.DataFrame({"text": TEXTS, "label": [0, 1, 0]})
    plain = predict_logits(m, data["text"])
    assert torch.equal(predict_logits(m, data["text"], interventions=[]), plain)
    steer = [Steer("L1.resid", torch.full((m.d_model,), 3.0))]
    assert not torch.allclose(predict_logits(m, data["text"], interventions=steer), plain)
    assert evaluate(m, data, interventions=steer)["n"] == 3
    base = _n_hooks(m.model)
    a = Attributor(m, "saliency").attribute(TEXTS[:1])
    b = Attributor(m, "saliency", interventions=steer).attribute(TEXTS[:1])
    assert not np.allclose(a[0].scores, b[0].scores)
    assert _n_hooks(m.model) == base
