"""Hooks exist only during a call: no leaks, also when the forward pass raises."""

import pytest
import torch

import probekit
from tests.conftest import tiny_config


def _n_hooks(model: torch.nn.Module) -> int:
    """probekit's hooks on ``model`` (transformers installs capture hooks of its own, once, and keeps them)."""
    return sum(fn.__module__.startswith("probekit") for m in model.modules()
               for fn in list(m._forward_hooks.values()) + list(m._forward_pre_hooks.values()))


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_no_hook_left_after_success_and_failure(family):
    m = probekit.load_model(tiny_config(family))
    base = _n_hooks(m.model)
    assert base == 0
    impl = m.config._attn_implementation
    m.run_with_cache(["hello world"], sites=m.sites())
    assert _n_hooks(m.model) == base

    def boom(*_):
        raise RuntimeError("boom in the forward pass")

    victim = m.blocks[1].register_forward_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        m.run_with_cache(["hello world"], sites=m.sites())
    victim.remove()
    assert _n_hooks(m.model) == base
    assert m.config._attn_implementation == impl  # eager attention restored too


def test_hooks_context_manager_removes_on_error():
    m = probekit.load_model(tiny_config("gpt2"))
    seen = {}
    with pytest.raises(KeyError):
        with m.hooks(["L0.resid", "L1.mlp.hidden"], seen.__setitem__):
            assert _n_hooks(m.model) == 3  # one per site, and one reading [batch, tokens] at the first block
            with torch.inference_mode():
                m.forward_rows([[101, 2000, 102]])
            assert set(map(str, seen)) == {"L0.resid", "L1.mlp.hidden"}
            raise KeyError("user code failing inside the block")
    assert _n_hooks(m.model) == 0


def test_unknown_module_path_is_lookup_error():
    from probekit.model._hooks import resolve_module

    m = probekit.load_model(tiny_config("bert"))
    with pytest.raises(LookupError, match="encoder.nope"):
        resolve_module(m.base, "encoder.nope")


def test_run_with_cache_and_extract_leave_the_users_mode(tmp_path):
    """extract and run_with_cache ran in eval() and left a model the user had put in train() in eval()."""
    m = probekit.load_model(tiny_config("bert"), seed=0)
    m.model.train()
    m.model.embeddings.eval()  # a mixed state comes back exactly too
    modes = {name: mod.training for name, mod in m.model.named_modules()}
    a = m.run_with_cache(["a cat sat", "the dog ran off"], ["L1.resid"])["L1.resid"]
    b = m.run_with_cache(["a cat sat", "the dog ran off"], ["L1.resid"])["L1.resid"]
    assert torch.equal(a, b)  # dropout was off during the passes
    assert {name: mod.training for name, mod in m.model.named_modules()} == modes
    probekit.extract(m, ["a cat sat"], ["L1.resid"], tmp_path / "s", progress=False)
    assert {name: mod.training for name, mod in m.model.named_modules()} == modes


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_a_pass_stops_after_the_deepest_block_read(family):
    """stop_after ends the pass after the deepest block a caller reads: what it read is the full pass's, the
    blocks after it and the head never run, and the stopping hook is gone afterwards (also for the next call)."""
    m = probekit.load_model(tiny_config(family), seed=0)
    rows = [[101, 2000, 2023, 102], [101, 2054, 102]]
    ran = []
    handles = [b.register_forward_hook(lambda mod, *_: ran.append(mod)) for b in m.blocks]
    try:
        full, early = {}, {}
        with torch.inference_mode():
            with m.hooks(["L0.resid", "L0.mlp.out"], full.__setitem__):
                assert m.forward_rows(rows) is not None
            assert ran == list(m.blocks)
            ran.clear()
            with m.hooks(["L0.resid", "L0.mlp.out"], early.__setitem__):
                assert m.forward_rows(rows, stop_after=["L0.resid", "L0.mlp.out"]) is None
            assert ran == [m.blocks[0]]
            ran.clear()
            if family != "bert":  # a site outside the blocks needs the whole pass (BERT has no final norm)
                assert m.forward_rows(rows, stop_after=["L0.resid", "final"]) is not None
                assert ran == list(m.blocks)
    finally:
        for h in handles:
            h.remove()
    for s in full:
        torch.testing.assert_close(early[s], full[s], rtol=0, atol=0)
    assert _n_hooks(m.model) == 0


def test_extract_and_run_with_cache_skip_a_decoders_head(tmp_path, monkeypatch):
    """A decoder's language-model head (a vocabulary-wide matmul) is not run for block sites."""
    m = probekit.load_model(tiny_config("llama"), head="causal-lm", seed=0)
    head = m.model.get_output_embeddings()
    assert head is not None
    calls = []
    linear = type(head).forward

    def counted(self, x):
        if self is head:
            calls.append(1)
        return linear(self, x)

    monkeypatch.setattr(type(head), "forward", counted)  # not a hook: extract refuses foreign hooks
    m.run_with_cache(["hello world", "the cat sat"], sites=["L1.resid"])
    probekit.extract(m, ["hello world", "the cat sat"], ["L0.resid", "L1.resid"], tmp_path / "s", progress=False)
    assert calls == []
    m.run_with_cache(["hello world"], sites=["final"])
    assert calls == [1]
