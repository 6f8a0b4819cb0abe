"""Quantized subjects: torchao weight-only int8 through TorchAoConfig on CPU, probekit's own methods, bitsandbytes."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import transformers

import probekit
from probekit.variants import ModelVariant

TEXTS = ["The cat sat on the mat .", "It rained all day", "a fine film"]
SITES = ["emb", "L0.resid", "L1.resid", "L1.mlp.out"]


def _cfg():
    return transformers.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                    intermediate_size=128, vocab_size=30522)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    m = probekit.load_model(_cfg(), seed=4)
    path = tmp_path_factory.mktemp("tiny-llama")
    m.model.save_pretrained(path)
    m.tokenizer.save_pretrained(path)
    return path


def _hf_states(model, text: str) -> tuple[torch.Tensor, ...]:
    ids = torch.tensor([model.tokenize([text]).examples[0].input_ids])
    with torch.no_grad():
        return model.model(input_ids=ids, output_hidden_states=True).hidden_states


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is not installed")
def test_torchao_int8_weight_only_on_cpu_exact_and_fingerprinted(folder, tmp_path):
    from torchao.quantization import Int8WeightOnlyConfig

    plain = probekit.load_model(folder)
    q = probekit.load_model(folder, quantization=transformers.TorchAoConfig(Int8WeightOnlyConfig()))
    assert type(q.model.layers[0].mlp.up_proj.weight).__name__ == "Int8Tensor"  # really quantized
    assert q.quantization["quant_method"] == "torchao"
    store = probekit.extract(q, TEXTS, SITES, tmp_path / "q", dtype="float32")
    for i, text in enumerate(TEXTS):
        ref = _hf_states(q, text)
        for layer, site in enumerate(["emb", "L0.resid"]):
            np.testing.assert_allclose(store[site].example(i), ref[layer][0].numpy(), atol=1e-5, rtol=0)
    cache = q.run_with_cache(TEXTS[:1], sites=["L0.resid"])
    np.testing.assert_allclose(cache["L0.resid"][0].numpy(), _hf_states(q, TEXTS[0])[1][0].numpy(), atol=1e-6)
    # quantization shows in the activations and in the fingerprint (config and weights)
    float_store = probekit.extract(plain, TEXTS, SITES, tmp_path / "f", dtype="float32")
    assert float_store.fingerprint != store.fingerprint
    fc, qc = float_store.manifest["components"], store.manifest["components"]
    assert fc["weights"] != qc["weights"] and fc["forward"]["config"] != qc["forward"]["config"]
    assert not np.array_equal(float_store["L1.resid"].example(0), store["L1.resid"].example(0))
    assert np.abs(float_store["L1.resid"].example(0) - store["L1.resid"].example(0)).max() < 0.1


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None or torch.cuda.is_available(),
                    reason="torchao int4 is refused on CPU only")
def test_torchao_int4_on_cpu_is_refused_naming_the_alternative(folder):
    from torchao.quantization import Int4WeightOnlyConfig

    if importlib.util.find_spec("mslk") is not None:
        pytest.skip("mslk is installed: torchao's int4 kernels may run here")
    with pytest.raises(ValueError, match="quantization='weight-int4'"):
        probekit.load_model(folder, quantization=transformers.TorchAoConfig(Int4WeightOnlyConfig()))


@pytest.mark.parametrize("method", ["weight-int8", "weight-int4", "dynamic-int8"])
def test_probekit_methods_give_a_variant_exact_against_its_own_forward(folder, tmp_path, method):
    q = probekit.load_model(folder, quantization=method)
    assert isinstance(q, ModelVariant) and q.recipe.method == method
    store = probekit.extract(q, TEXTS[:1], ["L0.resid"], tmp_path / "s", dtype="float32")
    assert store.manifest["components"]["recipe"]["method"] == method
    ref = _hf_states(q.model, TEXTS[0])[1][0].numpy()
    np.testing.assert_allclose(store["L0.resid"].example(0), ref, atol=1e-5, rtol=0)


def test_bitsandbytes_refused_without_cuda_and_config_needs_a_folder(folder):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the bitsandbytes path runs instead (test below)")
    with pytest.raises(ValueError, match="bitsandbytes .* CUDA only"):
        probekit.load_model(folder, quantization=transformers.BitsAndBytesConfig(load_in_8bit=True))
    with pytest.raises(ValueError, match="pass a folder, alias or hub name"):
        probekit.load_model(_cfg(), quantization=transformers.BitsAndBytesConfig(load_in_8bit=True))
    with pytest.raises(probekit.validation.InvalidParameterError, match="quantization"):
        probekit.load_model(folder, quantization="int3")


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None,
                    reason="bitsandbytes 4/8-bit kernels need CUDA (and bitsandbytes installed)")
@pytest.mark.parametrize("bits", [8, 4])
def test_bitsandbytes_exact_against_its_own_outputs(folder, tmp_path, bits):  # pragma: no cover - GPU machines
    kw = {"load_in_8bit": True} if bits == 8 else {"load_in_4bit": True}
    q = probekit.load_model(folder, quantization=transformers.BitsAndBytesConfig(**kw))
    store = probekit.extract(q, TEXTS, ["L0.resid"], tmp_path / "s", dtype="float32")
    assert q.quantization["quant_method"] == "bitsandbytes"
    for i, text in enumerate(TEXTS):
        ids = torch.tensor([q.tokenize([text]).examples[0].input_ids], device=q.device)
        with torch.no_grad():
            ref = q.model(input_ids=ids, output_hidden_states=True).hidden_states[1][0].float().cpu().numpy()
        np.testing.assert_allclose(store["L0.resid"].example(i), ref, atol=1e-3, rtol=0)
