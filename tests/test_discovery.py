"""Adapters by discovery: the golden table of every supported type, errors, overrides, MoE and encoder sites."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
import transformers as T
from torch import nn

import probekit
from probekit.interventions import Ablate, AblateHeads, Patch, Steer
from probekit.model import OVERRIDES, VERIFIED_TYPES, Hook, UnsupportedArchitectureError, adapter_for
from tests.conftest import reference_config, tiny_config

GOLDEN = Path(__file__).parent / "golden_adapters.json"
TEXTS = ["The quick brown fox jumps over the lazy dog.", "A short one."]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return probekit.load_tokenizer(probekit.DEFAULT_MODEL)


def _summary(m: probekit.HookedModel) -> dict:
    a = m.adapter
    hook = lambda h: None if h is None else f"{h.path} {h.port} {h.index}"  # noqa: E731
    return {
        "kind": a.kind, "layers": a.layers, "emb": hook(a.emb), "embed": [h.path for h in a.embed],
        "final": hook(a.final), "position_offset": a.position_offset, "attn_output_proj": a.attn_output_proj,
        "weights_on_request": a.weights_on_request, "runner": a.runner,
        "components": {k: hook(v) for k, v in sorted(a.components.items())},
        "sites": [str(s) for s in m.sites()],
    }


def _skeleton(config, tokenizer) -> probekit.HookedModel:
    """The model on the meta device: its structure, no weights."""
    with torch.device("meta"):
        model = T.AutoModel.from_config(config)
    return probekit.HookedModel(model, tokenizer, name=config.model_type)


def test_golden_table_lists_every_verified_type():
    golden = json.loads(GOLDEN.read_text())
    if os.environ.get("PROBEKIT_UPDATE_GOLDEN") != "1":
        assert sorted(golden) == sorted(VERIFIED_TYPES)


@pytest.mark.parametrize("model_type", VERIFIED_TYPES)
def test_golden_site_list_and_modules(model_type, tokenizer):
    """Each supported type's sites and the modules they are read at; a change to discovery shows up here.

    Regenerate on purpose with ``PROBEKIT_UPDATE_GOLDEN=1 pytest tests/test_discovery.py``.
    """
    got = _summary(_skeleton(reference_config(model_type), tokenizer))
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("PROBEKIT_UPDATE_GOLDEN") == "1":
        golden[model_type] = got
        GOLDEN.write_text(json.dumps(dict(sorted(golden.items())), indent=1) + "\n")
    assert got == golden[model_type]
    layer = ["resid", "attn.pattern", "attn.out"] + (["mlp.router"] if "mlp.router" in got["components"] else
                                                     ["mlp.hidden"]) + ["mlp.out"]
    expected = ["emb"] + [f"L{i}.{c}" for i in range(2) for c in layer] + (["final"] if got["final"] else [])
    assert got["sites"] == expected


def test_meta_skeleton_and_built_model_agree():
    cfg = reference_config("qwen3")
    built = adapter_for(T.AutoModel.from_config(cfg))
    assert adapter_for(cfg) == built and adapter_for(T.AutoModelForCausalLM.from_config(cfg)) == built


# ------------------------------------------------------------------ errors
def test_no_attention_module_names_what_is_missing_and_the_closest_family():
    with pytest.raises(UnsupportedArchitectureError, match=r"'mamba' \(MambaModel\): no attention module in block 0 "
                       r".*closest supported family is '\w+'"):
        adapter_for(T.MambaConfig(hidden_size=32, num_hidden_layers=2))


def test_no_block_list():
    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = T.LlamaConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
            self.embed = nn.Embedding(10, 8)
            self.proj = nn.Linear(8, 8)

        base_model = property(lambda self: self)

        def forward(self, input_ids=None):
            return self.proj(self.embed(input_ids))

    with pytest.raises(UnsupportedArchitectureError, match="no block list found"):
        adapter_for(Flat())


def test_albert_shared_block_is_named():
    with pytest.raises(UnsupportedArchitectureError, match="albert_layers' holds 1 blocks but the config has 2 layers"
                       ".*shared block.*closest supported family"):
        probekit.load_model(reference_config("albert"))


def test_not_a_text_model_and_unknown_type():
    with pytest.raises(UnsupportedArchitectureError, match="takes no input_ids"):
        adapter_for(T.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37))
    with pytest.raises(UnsupportedArchitectureError, match="unknown model_type 'no-such-model'"):
        adapter_for("no-such-model")
    with pytest.raises(TypeError, match="adapter_for takes"):
        adapter_for(3)


def test_unverified_type_is_mapped_with_a_warning(caplog):
    cfg = T.ErnieConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37)
    with caplog.at_level(logging.WARNING, logger="probekit.model._discovery"):
        a = adapter_for(cfg)
    assert not a.verified and a.kind == "encoder" and a.components["attn.out"].path == "attention.output.dense"
    assert "not among the architectures" in caplog.text


# --------------------------------------------------------------- overrides
def test_overrides_replace_what_discovery_finds(monkeypatch, tokenizer):
    cfg = reference_config("llama")
    plain = probekit.load_model(cfg, seed=0, tokenizer=tokenizer)
    monkeypatch.setitem(OVERRIDES, "llama", {"components": {"attn.out": Hook("self_attn")}, "final": None})
    m = probekit.load_model(cfg, seed=0, tokenizer=tokenizer)
    assert m.adapter.components["attn.out"] == Hook("self_attn") and "final" not in map(str, m.sites())
    # the attention module's first output is its output projection's: the same values from another module
    a, b = (x.run_with_cache(TEXTS, sites=["L1.attn.out"])["L1.attn.out"] for x in (m, plain))
    assert torch.equal(a, b)


def test_an_override_maps_what_the_conventions_miss(monkeypatch, tokenizer):
    """CTRL names its attention ``multi_head_attention``: without the class CTRL declares for its attentions,
    only an override finds it, and then every site is exact."""
    from probekit.model import _discovery

    cfg = T.CTRLConfig(vocab_size=30522, n_embd=32, n_layer=2, n_head=4, dff=37)
    monkeypatch.setattr(_discovery, "_recorded", lambda _model: {})
    with pytest.raises(UnsupportedArchitectureError, match="no attention module in block 0"):
        adapter_for(cfg)
    monkeypatch.setitem(OVERRIDES, "ctrl", {"components": {"attn.pattern": Hook("multi_head_attention", index=1),
                                                           "attn.out": Hook("multi_head_attention.dense")}})
    m = probekit.load_model(cfg, seed=0, tokenizer=tokenizer)
    assert m.adapter.attn_output_proj == "multi_head_attention.dense" and m.adapter.final == Hook("layernorm")
    assert m.adapter.components["mlp.out"].path == "ffn.2"  # the down projection, found by its shape
    cache = m.run_with_cache(TEXTS, sites=m.sites())
    enc = m.tokenizer(TEXTS, padding=True, return_tensors="pt")
    mask = enc["attention_mask"].bool()
    with m.eager_attention(), torch.inference_mode():
        out = m.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True,
                      output_attentions=True)
    for depth, s in enumerate(["emb", "L0.resid", "final"]):
        assert torch.allclose(cache[s][mask], out.hidden_states[depth][mask], atol=1e-5), s
    pair = (mask[:, None, :, None] & mask[:, None, None, :]).expand_as(out.attentions[1])
    assert torch.allclose(cache["L1.attn.pattern"][pair], out.attentions[1][pair], atol=1e-5)


# ------------------------------------------------------------------- kinds
def test_encoder_or_decoder():
    assert adapter_for(reference_config("bert")).kind == "encoder"
    assert adapter_for(reference_config("bert", is_decoder=True)).kind == "decoder"  # causal self-attention
    assert not reference_config("gpt_neox").is_decoder and adapter_for(reference_config("gpt_neox")).kind == "decoder"
    assert adapter_for(reference_config("t5")).kind == "encoder"


# ------------------------------------------------------ mixture of experts
def test_router_is_a_clear_error_elsewhere(tokenizer):
    m = probekit.load_model(reference_config("llama"), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="no mixture-of-experts layer, so no router logits"):
        m.site("L0.mlp.router")
    moe = probekit.load_model(reference_config("mixtral"), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="is a mixture of experts; its hidden activations belong to each expert"):
        moe.site("L0.mlp.hidden")
    with pytest.raises(ValueError, match="router logits are read, not replaced"):
        moe.run_with_cache(TEXTS, sites=["L1.resid"], interventions=[Ablate("L0.mlp.router", "zero")])


def test_moe_model_with_dense_layers(tokenizer, tmp_path):
    """Qwen2-MoE with a dense first layer: per-block site tables; router logits equal HF's, also in a store."""
    m = probekit.load_model(reference_config("qwen2_moe", mlp_only_layers=[0]), tokenizer=tokenizer)
    assert m.adapter.layer_components and "mlp.router" not in m.adapter.components
    sites = [str(s) for s in m.sites()]
    assert "L0.mlp.hidden" in sites and "L1.mlp.router" in sites
    assert "L0.mlp.router" not in sites and "L1.mlp.hidden" not in sites
    cache = m.run_with_cache(TEXTS, sites=["L0.mlp.hidden", "L1.mlp.router", "L1.mlp.out"])
    enc = m.tokenizer(TEXTS, padding=True, return_tensors="pt")
    mask = enc["attention_mask"].bool()
    with torch.inference_mode():
        out = m.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_router_logits=True)
    assert len(out.router_logits) == 1  # HF records the sparse layer only
    assert cache["L1.mlp.router"].shape == (*mask.shape, 4)
    assert torch.allclose(cache["L1.mlp.router"][mask], out.router_logits[0][mask.reshape(-1)], atol=1e-6)
    assert cache["L0.mlp.hidden"].shape[-1] == 37
    store = probekit.extract(m, TEXTS, ["L1.mlp.router", "L1.mlp.out"], tmp_path / "s", dtype="float32",
                             progress=False)
    for i in range(len(TEXTS)):
        n = int(mask[i].sum())
        assert torch.allclose(torch.tensor(store["L1.mlp.router"].example(i)), cache["L1.mlp.router"][i, :n])


# ------------------------------------------------------ flattened tokens
def test_interventions_see_batch_and_tokens_where_the_module_flattens_them(tokenizer):
    """OPT's MLP sees [batch * tokens, d]: interventions still get [batch, tokens, d] and per-example rows."""
    m = probekit.load_model(reference_config("opt"), seed=0, tokenizer=tokenizer)
    plain = m.run_with_cache(TEXTS, sites=["L0.mlp.out"])
    zero = m.run_with_cache(TEXTS, sites=["L0.mlp.out", "L1.resid"], interventions=[Ablate("L0.mlp.out", "zero")])
    assert zero["L0.mlp.out"].shape == plain["L0.mlp.out"].shape and zero["L0.mlp.out"].abs().max() == 0
    v = torch.arange(m.d_model, dtype=torch.float32)
    steered = m.run_with_cache(TEXTS, sites=["L0.mlp.out"], interventions=[Steer("L0.mlp.out", v)])
    mask = plain.attention_mask.bool()
    assert torch.allclose((steered["L0.mlp.out"] - plain["L0.mlp.out"])[mask], v.expand(int(mask.sum()), -1),
                          atol=1e-5)
    rows = {i: torch.full((2, m.d_model), float(i + 1)) for i in range(len(TEXTS))}
    patched = m.run_with_cache(TEXTS, sites=["L0.mlp.out"], interventions=[Patch("L0.mlp.out", rows)])
    for i in range(len(TEXTS)):
        assert torch.all(patched.examples("L0.mlp.out")[i][:2] == i + 1)


# ------------------------------------------------------------------ heads
@pytest.mark.parametrize("model_type", ["mistral", "gemma2", "qwen3", "gpt_bigcode"])
def test_heads_of_grouped_query_attention(model_type, tokenizer):
    """Query heads are counted and ablated (K/V heads are shared among them)."""
    m = probekit.load_model(reference_config(model_type), seed=0, tokenizer=tokenizer)
    assert m.heads_per_layer() == [4, 4] and m.n_heads == 4
    proj = m.blocks[0].get_submodule(m.adapter.attn_output_proj)
    seen = []
    # a forward hook sees the input as the forward got it, after probekit's pre-hooks
    handle = proj.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach().clone()))
    try:
        plain = m.run_with_cache(TEXTS, sites=["L0.attn.out"])
        cut = m.run_with_cache(TEXTS, sites=["L0.attn.out", "L0.attn.pattern"], interventions=[AblateHeads(0, [1])])
    finally:
        handle.remove()
    ctx_plain, ctx_cut = seen
    hd = ctx_plain.shape[-1] // 4
    assert ctx_cut[..., hd:2 * hd].abs().max() == 0
    keep = torch.ones(ctx_plain.shape[-1], dtype=torch.bool)
    keep[hd:2 * hd] = False  # the other heads are untouched (eager here, the default kernel in the plain run)
    assert torch.allclose(ctx_cut[..., keep], ctx_plain[..., keep], atol=1e-6)
    with torch.inference_mode():
        want = proj(ctx_cut)
    mask = cut.attention_mask.bool()
    assert torch.allclose(cut["L0.attn.out"][mask], want[mask], atol=1e-6)
    assert not torch.allclose(cut["L0.attn.out"], plain["L0.attn.out"])


@pytest.mark.parametrize(("model_type", "pad", "longest"), [("roberta", 1, 510), ("camembert", 1, 510),
                                                             ("mpnet", 1, 510), ("bert", 0, 512), ("llama", None, 512)])
def test_max_length_leaves_room_for_position_offsets(model_type, pad, longest, tokenizer):
    extra = {} if pad is None else {"pad_token_id": pad}
    m = probekit.load_model(reference_config(model_type, **extra), tokenizer=tokenizer)
    assert m.max_length == longest
    ok = [["word"] * (longest - 2)]
    assert m.run_with_cache(ok, sites=["L1.resid"])["L1.resid"].shape[1] == longest
    with pytest.raises(ValueError, match="more than the model.s maximum of"):
        m.run_with_cache([["word"] * (longest - 1)], sites=["L1.resid"])


# ---------------------------------------------------------------- encoder
def test_t5_exposes_its_encoder(tokenizer):
    m = probekit.load_model(reference_config("t5"), seed=0, tokenizer=tokenizer)
    assert m.kind == "encoder" and m.adapter.layers == "encoder.block" and m.adapter.runner == "encoder"
    cache = m.run_with_cache(TEXTS, sites=["L1.resid", "final"])
    enc = m.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = m.model.encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    mask = enc["attention_mask"].bool()
    assert torch.equal(cache["final"][mask], out.last_hidden_state[mask])


def test_families_keep_their_names():
    assert adapter_for(tiny_config("roberta")).family == "roberta"
    assert adapter_for(tiny_config("distilbert")).family == "distilbert"
