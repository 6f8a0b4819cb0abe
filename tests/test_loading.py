"""load_model: aliases, folders, hub names, configs, objects; clear errors."""

import pytest
import torch
import transformers as T

import probekit
from probekit.model._assets import AliasUnavailableError, _import
from tests.conftest import tiny_config


def test_default_alias(minilm):
    assert minilm.name == "minilm-l6"
    assert minilm.source == {"kind": "alias", "alias": "minilm-l6"}
    assert type(minilm.model).__name__ == "BertModel" and minilm.kind == "encoder"


def test_config_seeded_and_rng_untouched():
    state = torch.random.get_rng_state()
    a = probekit.load_model(tiny_config("bert"), seed=5)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG not consumed
    b = probekit.load_model(tiny_config("bert"), seed=5)
    c = probekit.load_model(tiny_config("bert"), seed=6)
    assert a.weights_hash() == b.weights_hash() != c.weights_hash()
    assert a.source["seed"] == 5


def test_seed_workflow_config():
    cfg = T.BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                       intermediate_size=128)
    m = probekit.load_model(cfg)
    assert (m.n_layers, m.d_model) == (3, 64)


def test_a_config_given_is_left_as_it_was():
    # the head's settings and the pad token id a decoder gets are the model's: the caller's config may build others
    cfg = tiny_config("gpt2")
    before = cfg.to_dict()
    m = probekit.load_model(cfg, head="sequence-classification", num_labels=3, seed=0)
    assert cfg.to_dict() == before and m.model.config is not cfg
    assert m.model.config.num_labels == 3 and m.model.config.pad_token_id is not None


def test_local_folder_round_trip(tmp_path):
    m = probekit.load_model(tiny_config("roberta"), seed=1)
    m.model.save_pretrained(tmp_path / "tiny")
    m.tokenizer.save_pretrained(tmp_path / "tiny")
    back = probekit.load_model(tmp_path / "tiny")
    assert back.weights_hash() == m.weights_hash()
    assert back.source["kind"] == "path"
    x = back.run_with_cache(["same weights"], sites=["L1.resid"])["L1.resid"]
    y = m.run_with_cache(["same weights"], sites=["L1.resid"])["L1.resid"]
    assert torch.equal(x, y)


def test_local_folder_with_head(tmp_path):
    m = probekit.load_model(tiny_config("bert"), seed=1)
    m.model.save_pretrained(tmp_path / "tiny")
    clf = probekit.load_model(tmp_path / "tiny", head="sequence-classification", num_labels=4, tokenizer="minilm-l6")
    assert type(clf.model).__name__ == "BertForSequenceClassification"
    assert clf.model.config.num_labels == 4
    # the encoder weights are the saved ones
    got = clf.run_with_cache(["same encoder"], sites=["L1.resid"])["L1.resid"]
    assert torch.equal(got, m.run_with_cache(["same encoder"], sites=["L1.resid"])["L1.resid"])


def test_wraps_model_object():
    hf = T.AutoModel.from_config(tiny_config("llama"))
    m = probekit.load_model(hf)
    assert m.model is hf and m.kind == "decoder"


def test_hub_name_offline_is_clear(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(probekit.HubUnreachableError, match="HF_HUB_OFFLINE is set.*load_model\\('DIR'\\)"):
        probekit.load_model("some-org/not-a-cached-model")


def test_missing_folder_and_bad_spec(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        probekit.load_model("./no/such/folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        probekit.load_model(tmp_path / "empty")
    with pytest.raises(TypeError, match="spec must be"):
        probekit.load_model(3.5)
    with pytest.raises(ValueError, match="'head' parameter of load_model must be one of"):
        probekit.load_model(tiny_config("bert"), head="regression")


def test_unsupported_architecture():
    with pytest.raises(NotImplementedError, match="no attention module in block 0.*closest supported family"):
        probekit.load_model(T.MambaConfig(hidden_size=32, num_hidden_layers=2, vocab_size=30522))


def test_tokenizer_vocab_must_fit():
    with pytest.raises(ValueError, match="does not fit this model's vocab_size=100"):
        probekit.load_model(T.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=4))


def test_missing_alias_package_message():
    with pytest.raises(AliasUnavailableError, match="pip install --no-deps some-pkg"):
        _import("no_such_module_xyz", "some-pkg", "x")


def test_trust_remote_code_off_by_default():
    import inspect

    assert inspect.signature(probekit.load_model).parameters["trust_remote_code"].default is False


def test_weights_hash_sees_quantized_weights():
    """Two int8 models with different weights hash differently (packed params are hashed by value)."""
    hashes = []
    for seed in (0, 1):
        m = probekit.load_model(tiny_config("bert"), seed=seed)
        q = torch.ao.quantization.quantize_dynamic(m.model, {torch.nn.Linear}, dtype=torch.qint8)
        hashes.append(probekit.HookedModel(q, m.tokenizer, name="q").weights_hash())
    assert hashes[0] != hashes[1]
    again = probekit.load_model(tiny_config("bert"), seed=0)
    q = torch.ao.quantization.quantize_dynamic(again.model, {torch.nn.Linear}, dtype=torch.qint8)
    assert probekit.HookedModel(q, again.tokenizer, name="q").weights_hash() == hashes[0]
