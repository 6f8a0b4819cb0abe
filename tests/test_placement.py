"""Device maps: blocks split over CPU memory and disk give the un-split model's activations, hashes and stores."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import transformers

import probekit
from probekit.interventions import Ablate, AblateHeads, Steer

pytest.importorskip("accelerate")

TEXTS = ["The cat sat on the mat .", "It rained all day", "a fine film"]
SITES = ["emb", "L0.resid", "L1.resid", "L1.attn.pattern", "L2.mlp.out", "L2.attn.out", "final"]
SPLIT = {"embed_tokens": "cpu", "rotary_emb": "cpu", "layers.0": "cpu", "layers.1": "disk", "layers.2": "disk",
         "norm": "cpu"}


def _cfg():
    return transformers.LlamaConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                    intermediate_size=37, vocab_size=30522)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    whole = probekit.load_model(_cfg(), seed=1)
    split = probekit.load_model(_cfg(), seed=1, device_map=SPLIT,
                                offload_folder=tmp_path_factory.mktemp("offload"))
    return whole, split


def test_split_model_is_offloaded_and_recorded(pair):
    whole, split = pair
    assert whole.placement is None
    assert split.placement == SPLIT
    assert split.model.layers[1].mlp.up_proj.weight.device.type == "meta"  # really on disk
    assert split.device == torch.device("cpu")


def test_weights_hash_is_the_whole_models(pair):
    whole, split = pair
    assert split.weights_hash(refresh=True) == whole.weights_hash(refresh=True)


def test_cache_exact_at_every_site(pair):
    whole, split = pair
    a = whole.run_with_cache(TEXTS, sites=SITES)
    b = split.run_with_cache(TEXTS, sites=SITES)
    for s in SITES:
        assert torch.equal(a[s], b[s]), s
    with torch.no_grad():  # and both equal Hugging Face's own states
        ids = torch.tensor([whole.tokenize(TEXTS[:1]).examples[0].input_ids])
        ref = whole.model(input_ids=ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(b["L1.resid"][0, : ids.shape[1]], ref[2][0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("ivs", [[Ablate("L1.resid", "zero")], [AblateHeads(2, [0, 2])],
                                 [Steer("L0.resid", torch.linspace(-1, 1, 32), 2.0), Ablate("L2.mlp.out", "zero")]])
def test_interventions_exact(pair, ivs):
    whole, split = pair
    a = whole.run_with_cache(TEXTS, sites=["L2.resid", "final"], interventions=ivs)
    b = split.run_with_cache(TEXTS, sites=["L2.resid", "final"], interventions=ivs)
    for s in ("L2.resid", "final"):
        assert torch.equal(a[s], b[s])
    plain = whole.run_with_cache(TEXTS, sites=["final"])
    assert not torch.equal(plain["final"], b["final"])  # the intervention did something


def test_stores_equal_and_fingerprint_ignores_placement(pair, tmp_path):
    whole, split = pair
    kw = dict(dtype="float32", sentence_pooling=["last"], word_pooling=["mean"])
    a = probekit.extract(whole, TEXTS, SITES, tmp_path / "a", **kw)
    b = probekit.extract(split, TEXTS, SITES, tmp_path / "b", **kw)
    assert a.fingerprint == b.fingerprint
    assert b.manifest["model"]["placement"] == SPLIT and "placement" not in a.manifest["model"]
    for s in SITES:
        for i in range(len(TEXTS)):
            np.testing.assert_array_equal(a[s].example(i), b[s].example(i))
    np.testing.assert_array_equal(a["L1.resid"].sentences("last"), b["L1.resid"].sentences("last"))


def test_auto_map_on_cpu(tmp_path):
    auto = probekit.load_model(_cfg(), seed=1, device_map="auto")
    whole = probekit.load_model(_cfg(), seed=1)
    assert torch.equal(auto.run_with_cache(TEXTS, sites=["final"])["final"],
                       whole.run_with_cache(TEXTS, sites=["final"])["final"])


def test_from_pretrained_folder_with_split_map(tmp_path):
    whole = probekit.load_model(_cfg(), seed=2)
    whole.model.save_pretrained(tmp_path / "m")
    whole.tokenizer.save_pretrained(tmp_path / "m")
    split = probekit.load_model(tmp_path / "m", device_map=SPLIT, offload_folder=tmp_path / "off")
    assert split.placement == SPLIT
    a = whole.run_with_cache(TEXTS, sites=["L2.resid"])["L2.resid"]
    assert torch.equal(a, split.run_with_cache(TEXTS, sites=["L2.resid"])["L2.resid"])


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="offload_folder"):
        probekit.load_model(_cfg(), device_map=SPLIT)
    with pytest.raises(ValueError, match="either device"):
        probekit.load_model(_cfg(), device="cpu", device_map="auto")
    with pytest.raises(ValueError, match="take effect with a device_map"):
        probekit.load_model(_cfg(), max_memory={"cpu": "1GiB"})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            probekit.load_model(_cfg(), device_map={**SPLIT, "layers.2": 0})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a map over a GPU and the CPU needs CUDA")
def test_cuda_and_cpu_split_exact():  # pragma: no cover - GPU machines
    whole = probekit.load_model(_cfg(), seed=1)
    cpu_gpu = probekit.load_model(_cfg(), seed=1, device_map={**SPLIT, "layers.1": 0, "layers.2": "cpu"})
    a = whole.run_with_cache(TEXTS, sites=SITES)
    b = cpu_gpu.run_with_cache(TEXTS, sites=SITES)
    for s in SITES:
        torch.testing.assert_close(a[s], b[s], atol=1e-5, rtol=1e-5)
    assert copy.deepcopy(cpu_gpu.placement)["layers.1"] == 0
