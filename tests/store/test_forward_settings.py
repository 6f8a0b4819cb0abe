"""What the forward depends on besides the weights is in the store's fingerprint, and a hook (which cannot be
fingerprinted) is refused: a store is never reused for a model that computes other activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.modules import module as torch_module

import probekit
from probekit.store import FingerprintMismatchError
from tests.store._common import make_texts, tiny_model

TEXTS = make_texts(10, seed=7)
SITE = "L1.resid"


def _extract(model, out, **kw):
    return probekit.extract(model, TEXTS, [SITE], out, dtype="float32", shard_size=4, progress=False, **kw)


def _rows(store) -> np.ndarray:
    return np.concatenate([store[SITE].example(i) for i in range(len(store))])


def _fresh(model) -> np.ndarray:
    cache = model.run_with_cache(TEXTS, [SITE])
    return np.concatenate([t.numpy() for t in cache.examples(SITE)])


def _zero(module, args, output):
    return (torch.zeros_like(output[0]), *output[1:]) if isinstance(output, tuple) else torch.zeros_like(output)


def _zero_input(module, args):
    return (torch.zeros_like(args[0]), *args[1:])


HOOKS = {
    "forward hook": lambda m: m.model.encoder.layer[0].register_forward_hook(_zero),
    "forward pre-hook": lambda m: m.model.encoder.layer[1].register_forward_pre_hook(_zero_input),
    "hook with kwargs": lambda m: m.model.encoder.layer[0].register_forward_hook(
        lambda mod, args, kwargs, out: _zero(mod, args, out), with_kwargs=True),
    "global forward hook": lambda m: torch_module.register_module_forward_hook(
        lambda mod, args, out: _zero(mod, args, out) if mod is m.model.encoder.layer[0] else None),
    "global forward pre-hook": lambda m: torch_module.register_module_forward_pre_hook(
        lambda mod, args: _zero_input(mod, args) if mod is m.model.encoder.layer[1] else None),
}


@pytest.mark.parametrize("kind", list(HOOKS))
def test_a_foreign_hook_is_refused_before_anything_is_written(tmp_path, kind):
    m = tiny_model()
    out = tmp_path / "A"
    clean = _extract(m, out)
    handle = HOOKS[kind](m)
    try:
        assert np.abs(_fresh(m) - _rows(clean)).max() > 0.1  # the hook changes the activations...
        where = "on every module" if kind.startswith("global") else (
            "on encoder.layer.1 (BertLayer)" if "pre" in kind else "on encoder.layer.0 (BertLayer)")
        for target in (out, tmp_path / "B"):
            with pytest.raises(ValueError, match="probekit.interventions") as err:
                _extract(m, target)  # ...so the old store is not reused, and no new one is written
            assert where in str(err.value) and "cannot be fingerprinted" in str(err.value)
        assert not (tmp_path / "B").exists()
        with pytest.raises(ValueError, match="forward hooks probekit did not register"):
            probekit.ActivationStore.open(out, model=m)  # "are these m's activations?" cannot be answered
    finally:
        handle.remove()
    assert _extract(m, out).manifest["stats"]["shards_reused"] == 3  # hook gone: the same model again


def test_the_output_recording_hooks_of_transformers_are_not_foreign(tmp_path):
    """transformers installs its own forward hooks the first time a model is asked for hidden states; they
    only record outputs, so a model someone ran with output_hidden_states=True still extracts."""
    m = tiny_model()
    out = tmp_path / "A"
    before = _extract(m, out)
    rows_before = _rows(before)
    batch = m.tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    with torch.no_grad():
        m.model(**batch, output_hidden_states=True, output_attentions=True)
    assert any(mod._forward_hooks for mod in m.model.modules())  # installed, and kept, by transformers
    again = _extract(m, out)
    assert again.manifest["stats"]["shards_reused"] == 3
    np.testing.assert_array_equal(_rows(again), rows_before)
    np.testing.assert_allclose(rows_before, _fresh(m), atol=1e-5)


def _layer_norm_eps(m):
    for layer in m.model.encoder.layer:
        layer.output.LayerNorm.eps = 10.0


def _activation(m):
    m.model.encoder.layer[0].intermediate.intermediate_act_fn = torch.nn.ReLU()


def _eager(m):
    m.model.set_attn_implementation("eager")


def _dropout_p(m):
    for mod in m.model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.5


@pytest.mark.parametrize("change, component", [
    (_layer_norm_eps, "modules"), (_activation, "modules"), (_eager, "attn_implementation"),
    (_dropout_p, "modules"),
])
def test_a_changed_module_setting_is_not_reused(tmp_path, change, component):
    m = tiny_model()
    out = tmp_path / "A"
    before = _extract(m, out)
    rows_before = _rows(before)
    change(m)
    with pytest.raises(FingerprintMismatchError, match=rf"module settings .*\[{component}\]"):
        _extract(m, out)
    with pytest.raises(FingerprintMismatchError, match="other settings"):
        probekit.ActivationStore.open(out, model=m)
    after = _extract(m, out, overwrite=True)
    assert after.manifest["stats"]["shards_reused"] == 0
    assert after.manifest["components"]["weights"] == before.manifest["components"]["weights"]
    np.testing.assert_allclose(_rows(after), _fresh(m), atol=1e-5)
    if change is _layer_norm_eps:
        assert np.abs(_rows(after) - rows_before).max() > 0.1


def test_training_mode_does_not_change_the_stored_rows(tmp_path):
    """Stored forwards run in eval mode, so the training flags are not part of the fingerprint and need not be."""
    m = tiny_model()
    out = tmp_path / "A"
    before = _extract(m, out)
    m.model.train()
    again = _extract(m, out)
    assert again.manifest["stats"]["shards_reused"] == 3
    m.model.eval()
    np.testing.assert_array_equal(_rows(again), _rows(before))
    np.testing.assert_allclose(_rows(before), _fresh(m), atol=1e-5)


def test_a_saved_and_reloaded_model_keeps_its_fingerprint(tmp_path):
    """The config's provenance (the folder it was loaded from, the transformers version) is left out."""
    m = tiny_model()
    m.model.save_pretrained(tmp_path / "model")
    m.tokenizer.save_pretrained(tmp_path / "model")
    reloaded = probekit.load_model(tmp_path / "model")
    assert reloaded.forward_settings() == m.forward_settings()
    assert reloaded.model.config._name_or_path != m.model.config._name_or_path
    store = _extract(m, tmp_path / "A")
    probekit.ActivationStore.open(store.path, model=reloaded)
