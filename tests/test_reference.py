"""Captured activations equal Hugging Face's own, for 45 text architecture types.

Each type is built offline from ``AutoConfig.for_model(type)`` shrunk to hidden 32, 2 layers, 4 heads
(``reference_config``), loaded through ``probekit.load_model`` and read with ``run_with_cache``. What it is
checked against is computed here, without probekit: the model's own ``output_hidden_states``,
``output_attentions`` and ``output_router_logits``, and plain torch hooks on the modules named in
:data:`MODULES` (written out below, not read from probekit). A type that cannot be supported is an expected
failure with its reason, in :data:`UNSUPPORTED` and in the README.
"""

import pytest
import torch

import probekit
from probekit.model import REFERENCE_RESULTS, UnsupportedArchitectureError
from tests.conftest import FAMILIES, REFERENCE_TYPES, reference_config, tiny_config

TEXTS = ["The quick brown fox jumps over the lazy dog.", "A short one.",
         "Researchers probe what each layer of a transformer encodes, word by word."]
TOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny ops: one thread is several times faster here

#: Why a type is not supported (the same words as probekit's REFERENCE_RESULTS and the README).
UNSUPPORTED = {
    "albert": "ALBERT applies one shared block at every layer, so a layer is not a module of its own and module "
              "hooks cannot tell the layers apart",
}

_BERT = ("encoder.layer", "attention.output.dense", "output.dense")
_LLAMA = ("layers", "self_attn.o_proj", "mlp.down_proj")
_MOE = ("layers", "self_attn.o_proj", "mlp")  # mlp.out is the sparse block's combined output
#: type -> (block list under the base model, attention output projection, MLP output projection), per block
MODULES = {
    **dict.fromkeys(("bert", "roberta", "xlm-roberta", "electra", "camembert", "deberta", "deberta-v2"), _BERT),
    "distilbert": ("transformer.layer", "attention.out_lin", "ffn.lin2"),
    "mpnet": ("encoder.layer", "attention.attn.o", "output.dense"),
    "modernbert": ("layers", "attn.Wo", "mlp.Wo"),
    "gpt2": ("h", "attn.c_proj", "mlp.c_proj"),
    "gpt_bigcode": ("h", "attn.c_proj", "mlp.c_proj"),
    "gpt_neox": ("layers", "attention.dense", "mlp.dense_4h_to_h"),
    "gptj": ("h", "attn.out_proj", "mlp.fc_out"),
    "codegen": ("h", "attn.out_proj", "mlp.fc_out"),
    "opt": ("decoder.layers", "self_attn.out_proj", "fc2"),
    "bloom": ("h", "self_attention.dense", "mlp.dense_4h_to_h"),
    "falcon": ("h", "self_attention.dense", "mlp.dense_4h_to_h"),
    "phi": ("layers", "self_attn.dense", "mlp.fc2"),
    "persimmon": ("layers", "self_attn.dense", "mlp.dense_4h_to_h"),
    "starcoder2": ("layers", "self_attn.o_proj", "mlp.c_proj"),
    "mpt": ("blocks", "attn.out_proj", "ffn.down_proj"),
    "t5": ("encoder.block", "layer.0.SelfAttention.o", "layer.1.DenseReluDense.wo"),
    **dict.fromkeys(("mixtral", "qwen2_moe", "qwen3_moe"), _MOE),
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo",
                     "olmo2", "stablelm", "cohere", "granite", "smollm3", "nemotron", "glm", "exaone4",
                     "helium"), _LLAMA),
}
ENCODERS = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet", "deberta", "deberta-v2",
            "modernbert", "camembert", "t5"}
NO_FINAL_NORM = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet", "deberta", "deberta-v2",
                 "camembert"}
MOE = {"mixtral", "qwen2_moe", "qwen3_moe"}


def _params():
    out = []
    for t in REFERENCE_TYPES:
        if t in UNSUPPORTED:
            out.append(pytest.param(t, marks=pytest.mark.xfail(raises=UnsupportedArchitectureError, strict=True,
                                                               reason=UNSUPPORTED[t])))
        else:
            out.append(t)
    return out


def test_the_table_matches_the_tests():
    assert set(MODULES) | set(UNSUPPORTED) == set(REFERENCE_TYPES) and not set(MODULES) & set(UNSUPPORTED)
    assert len(REFERENCE_TYPES) == 45 and len(MODULES) >= 40
    assert REFERENCE_RESULTS == {**dict.fromkeys(MODULES, "exact"), **UNSUPPORTED}


def _reference(m: probekit.HookedModel, model_type: str):
    """Hugging Face's own outputs, and the named modules' outputs/inputs through plain torch hooks."""
    blocks_path, attn_path, mlp_path = MODULES[model_type]
    hf = m.model.get_encoder() if model_type == "t5" else m.model
    blocks = m.model.base_model.get_submodule(blocks_path)
    seen: dict = {}
    handles = []
    for i, block in enumerate(blocks):
        def keep(key):
            def hook(_mod, args, out):
                seen[key] = out[0] if isinstance(out, tuple) else out
                seen[key + ("in",)] = args[0]
            return hook
        handles.append(block.register_forward_hook(keep((i, "resid"))))
        handles.append(block.get_submodule(attn_path).register_forward_hook(keep((i, "attn"))))
        handles.append(block.get_submodule(mlp_path).register_forward_hook(keep((i, "mlp"))))
    enc = m.tokenizer(TEXTS, padding=True, return_tensors="pt")
    extra = {"output_router_logits": True} if model_type in MOE else {}
    try:
        with m.eager_attention(), torch.inference_mode():
            out = hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True,
                     output_attentions=True, **extra)
    finally:
        for h in handles:
            h.remove()
    return enc["attention_mask"].bool(), out, seen


def _diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    if b.dim() == 2 and a.dim() == 3:  # OPT's MLP sees [batch * tokens, d]
        b = b.reshape(a.shape)
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a[mask] - b[mask]).abs().max().item()


@pytest.fixture(scope="module")
def tokenizer():
    return probekit.load_tokenizer(probekit.DEFAULT_MODEL)


@pytest.mark.parametrize("model_type", _params())
def test_type_matches_hf(model_type, tokenizer):
    m = probekit.load_model(reference_config(model_type), seed=0, tokenizer=tokenizer)
    n = m.n_layers
    assert n == 2 and m.kind == ("encoder" if model_type in ENCODERS else "decoder")
    assert (m.adapter.final is None) == (model_type in NO_FINAL_NORM)
    comps = {s.component for s in m.sites()}
    assert ("mlp.router" in comps, "mlp.hidden" in comps) == ((True, False) if model_type in MOE else (False, True))
    cache = m.run_with_cache(TEXTS, sites=m.sites())
    mask, out, seen = _reference(m, model_type)
    assert torch.equal(cache.attention_mask.bool(), mask)
    hs = out.hidden_states
    assert len(hs) == n + 1
    # the residual stream: emb is HF's hidden_states[0], block i's output hidden_states[i + 1]
    assert _diff(cache["emb"], hs[0], mask) <= TOL
    for i in range(n - 1):
        assert _diff(cache[f"L{i}.resid"], hs[i + 1], mask) <= TOL, i
    last = cache[f"L{n - 1}.resid"]
    assert _diff(last, seen[(n - 1, "resid")], mask) <= TOL
    if model_type in NO_FINAL_NORM:
        assert _diff(last, hs[n], mask) <= TOL
        assert _diff(last, out.last_hidden_state, mask) <= TOL
    else:  # HF's last hidden state is the final norm's output in every type here
        assert _diff(cache["final"], out.last_hidden_state, mask) <= TOL
        assert _diff(cache["final"], hs[n], mask) <= TOL
        assert _diff(last, cache["final"], mask) > 1e-3  # the final norm did something: the two are not confused
    # a plain run (no attention sites: the model's default attention kernel) gives the same residual stream
    plain = m.run_with_cache(TEXTS)
    for s in m.residual_sites():
        assert _diff(plain[s], cache[s], mask) <= TOL, s
    # attention patterns: HF's output_attentions on real query/key pairs; GQA models report query heads
    pair = mask[:, None, :, None] & mask[:, None, None, :]
    assert out.attentions is not None and len(out.attentions) == n
    for i in range(n):
        got, want = cache[f"L{i}.attn.pattern"], out.attentions[i]
        assert got.shape == want.shape == (len(TEXTS), m.heads_per_layer()[i], mask.shape[1], mask.shape[1])
        assert (got - want).abs()[pair.expand_as(want)].max().item() <= TOL, i
    # sublayers: the modules' own outputs (and the MLP output projection's input)
    for i in range(n):
        assert _diff(cache[f"L{i}.attn.out"], seen[(i, "attn")], mask) <= TOL, i
        assert _diff(cache[f"L{i}.mlp.out"], seen[(i, "mlp")], mask) <= TOL, i
        if model_type in MOE:
            logits = out.router_logits[i]  # [batch * tokens, experts]
            got = cache[f"L{i}.mlp.router"]
            assert got.shape == (*mask.shape, logits.shape[-1])
            assert _diff(got.reshape(-1, logits.shape[-1]), logits, mask.reshape(-1)) <= TOL, i
        else:
            hidden = cache[f"L{i}.mlp.hidden"]
            assert hidden.shape[-1] != m.d_model
            assert _diff(hidden, seen[(i, "mlp", "in")], mask) <= TOL, i


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_sublayer_outputs_add_up(family):
    """attn.out and mlp.out are what a pre-norm block adds to the residual stream."""
    m = probekit.load_model(tiny_config(family), seed=2)
    c = m.run_with_cache(TEXTS[:1], sites=["emb", "L0.resid", "L0.attn.out", "L0.mlp.out"])
    recon = c["emb"] + c["L0.attn.out"] + c["L0.mlp.out"]
    assert (recon - c["L0.resid"]).abs().max().item() < 1e-5


def _check_equal(m, texts):
    """The residual stream and attention patterns of any model against HF's outputs."""
    cache = m.run_with_cache(texts, sites=m.sites())
    enc = m.tokenizer(texts, padding=True, return_tensors="pt")
    mask = enc["attention_mask"].bool()
    with m.eager_attention(), torch.inference_mode():
        out = m.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True,
                      output_attentions=True)
    hs = out.hidden_states
    last = [f"L{i}.resid" for i in range(m.n_layers)] + (["final"] if m.adapter.final is not None else [])
    states = ["emb"] + last[:m.n_layers - 1] + last[-1:]
    for depth, s in enumerate(states):
        assert _diff(cache[s], hs[depth], mask) < 1e-6, s
    pair = mask[:, None, :, None] & mask[:, None, None, :]
    for layer in range(m.n_layers):
        want = out.attentions[layer]
        assert (cache[f"L{layer}.attn.pattern"] - want).abs()[pair.expand_as(want)].max().item() < 1e-6
    return cache


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_kernel_restored(family):
    m = probekit.load_model(tiny_config(family), seed=1)
    before = m.config._attn_implementation
    assert before != "eager" or family == "mpnet"
    assert m.run_with_cache(TEXTS, sites=["L0.attn.pattern", "L0.mlp.hidden"])["L0.mlp.hidden"].shape[-1] == 37
    assert m.config._attn_implementation == before  # eager only for that call


@pytest.mark.parametrize("head", ["sequence-classification", "token-classification"])
@pytest.mark.parametrize("family", ["bert", "gpt2", "distilbert"])
def test_task_head_models(family, head):
    m = probekit.load_model(tiny_config(family), head=head, num_labels=3, seed=0)
    suffix = {"sequence-classification": "ForSequenceClassification",
              "token-classification": "ForTokenClassification"}[head]
    assert type(m.model).__name__.endswith(suffix)
    assert m.model.config.num_labels == 3
    _check_equal(m, TEXTS)


def test_real_minilm_matches_hf(minilm):
    assert (minilm.n_layers, minilm.d_model, minilm.n_heads) == (6, 384, 12)
    _check_equal(minilm, TEXTS)


def test_real_weights_behave(minilm):
    """Paraphrases are closer than unrelated sentences in mean-pooled final states."""
    pairs = [
        ("A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."),
        ("The weather is lovely this morning.", "It is a beautiful sunny morning.",
         "He forgot his keys at the office."),
        ("How do I reset my password?", "What are the steps to change my password?", "Tigers live in the jungle."),
    ]
    for a, para, other in pairs:
        v = minilm.run_with_cache([a, para, other], sites=["L5.resid"]).sentence_pooled("L5.resid", "mean")
        v = torch.nn.functional.normalize(v.float(), dim=-1)
        assert v[0] @ v[1] > v[0] @ v[2] + 0.2, (a, (v[0] @ v[1]).item(), (v[0] @ v[2]).item())


def test_real_attention_on_sep(minilm):
    """Real BERT-style weights put a visible share of attention on [CLS]/[SEP] in middle layers."""
    c = minilm.run_with_cache(TEXTS, sites=["L2.attn.pattern"])
    ids = c.input_ids
    special = (ids == minilm.tokenizer.cls_token_id) | (ids == minilm.tokenizer.sep_token_id)
    mass = (c["L2.attn.pattern"] * special[:, None, None, :]).sum(-1)
    mask = c.attention_mask.bool()[:, None, :].expand_as(mass)
    assert mass[mask].mean() > 0.2
