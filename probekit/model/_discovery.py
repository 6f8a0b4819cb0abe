"""Adapters by discovery: sites found by Hugging Face's modeling conventions.

:func:`adapter_for` looks at a built model (or a skeleton built on the meta
device from a config, which costs no memory) and finds, by the names and
shapes that Hugging Face's modeling code uses:

- the **blocks**: the ``nn.ModuleList`` of identical blocks under the base
  model (an encoder-decoder's encoder stack), preferring the class the model
  declares for its hidden states (``_can_record_outputs``);
- the **attention** module of a block: the class the model declares for its
  attentions, else a submodule named ``self_attn``, ``self_attention``,
  ``attention``, ``attn`` or ``SelfAttention``, and its output projection
  (``o_proj``, ``out_proj``, ``dense``, ``c_proj``, ``out_lin``, ``o``,
  ``Wo``...: the linear map back to the model width);
- the **MLP**: a submodule named ``mlp``, ``feed_forward``, ``ffn``,
  ``DenseReluDense``... (or the block itself, BERT- and OPT-style), whose
  down projection maps the feed-forward width back to the model width; a
  mixture-of-experts block (an ``experts`` module beside a ``gate``/``router``)
  gives the router's logits and the experts' combined output instead;
- the **final norm** (``norm``, ``ln_f``, ``final_layernorm``,
  ``final_layer_norm``, ``norm_f``, ``final_norm``, ``layernorm``) beside the blocks;
- encoder or decoder, from the attention's ``is_causal`` flag, else the
  config and transformers' causal-LM / masked-LM model lists.

The ``emb`` site is the input of the first block, which is exactly what
Hugging Face reports as ``hidden_states[0]``. Exceptions to the conventions go
in :data:`OVERRIDES` (an override that names ``attn.pattern`` and ``attn.out``,
or ``mlp.out``, replaces that search); :data:`REFERENCE_RESULTS` records what the reference
test (``tests/test_reference.py``) proves for each architecture type.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections import deque
from collections.abc import Iterator

import torch
from torch import nn

from probekit.model._adapters import Adapter, Hook

__all__ = ["adapter_for", "discover", "linear_widths", "UnsupportedArchitectureError", "OVERRIDES",
           "REFERENCE_RESULTS", "VERIFIED_TYPES"]

logger = logging.getLogger(__name__)

_ATTN_NAMES = ("self_attn", "self_attention", "attention", "attn", "SelfAttention")
_ATTN_CORE_NAMES = ("self", "attn", "SelfAttention")
_O_NAMES = ("o_proj", "out_proj", "dense", "c_proj", "out_lin", "o", "Wo", "wo", "dense_out")
_MLP_NAMES = ("mlp", "feed_forward", "ffn", "DenseReluDense", "ff", "block_sparse_moe", "moe")
_DOWN_NAMES = ("down_proj", "c_proj", "fc2", "fc_out", "dense_4h_to_h", "lin2", "wo", "Wo", "w2", "ffn_output",
               "out_proj", "dense")
_ROUTER_NAMES = ("gate", "router")
_FINAL_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "norm_f", "final_norm", "ln_final",
                "layernorm")
_EMBED_NAMES = ("embeddings_project", "embeddings")

#: What the reference test proves for each of the 45 text architecture types it
#: builds (``"exact"``, or why the type is not supported). The test fails when
#: this table and its results disagree.
REFERENCE_RESULTS: dict[str, str] = {t: "exact" for t in (
    "bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet", "deberta", "deberta-v2",
    "modernbert", "camembert", "gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "llama", "mistral", "mixtral",
    "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3_text", "phi", "phi3", "olmo", "olmo2",
    "stablelm", "cohere", "starcoder2", "granite", "smollm3", "codegen", "gpt_bigcode", "mpt", "persimmon",
    "nemotron", "glm", "exaone4", "helium", "t5")}
REFERENCE_RESULTS["albert"] = ("ALBERT applies one shared block at every layer, so a layer is not a module of its "
                               "own and module hooks cannot tell the layers apart")

#: Model types the reference test proves exact.
VERIFIED_TYPES: tuple[str, ...] = tuple(t for t, r in REFERENCE_RESULTS.items() if r == "exact")

#: Exceptions to the conventions, by ``model_type``: ``Adapter`` fields, or
#: ``"components"`` (per-block entries that replace discovered ones).
OVERRIDES: dict[str, dict] = {}


_WARNED: set[str] = set()


class UnsupportedArchitectureError(NotImplementedError):
    """probekit could not map a model's sites; the message names what was not found."""


class _Missing(Exception):
    pass


# --------------------------------------------------------------------- entry
def adapter_for(spec) -> Adapter:
    """The :class:`Adapter` of a model, found by Hugging Face's modeling conventions.

    Parameters
    ----------
    spec : nn.Module, PretrainedConfig or str
        A built model (a base or task-head ``PreTrainedModel``); a config (a
        skeleton is built on the meta device, no weights allocated); or a
        ``model_type`` (its default config).

    Returns
    -------
    Adapter

    Raises
    ------
    UnsupportedArchitectureError
        Naming what was not found (e.g. "no attention module in block 0") and
        the closest supported family.

    Examples
    --------
    >>> import transformers
    >>> a = adapter_for(transformers.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...                                          intermediate_size=37, vocab_size=100))
    >>> a.kind, a.layers, a.components["attn.out"].path, a.final.path
    ('decoder', 'layers', 'self_attn.o_proj', 'norm')
    """
    model = _as_model(spec)
    return discover(model)


def _as_model(spec) -> nn.Module:
    from transformers import AutoConfig, AutoModel, PretrainedConfig

    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, str):
        try:
            spec = AutoConfig.for_model(spec)
        except ValueError as exc:
            raise UnsupportedArchitectureError(f"unknown model_type {spec!r}: transformers has no such "
                                               f"architecture{_closest(spec)}") from exc
    if not isinstance(spec, PretrainedConfig):
        raise TypeError(f"adapter_for takes a model, a transformers config or a model_type, not {type(spec).__name__}")
    try:
        with torch.device("meta"):
            return AutoModel.from_config(spec)
    except ValueError as exc:
        raise UnsupportedArchitectureError(f"model_type {spec.model_type!r} has no base model class in transformers "
                                           f"(not a text model?){_closest(spec.model_type)}") from exc


def discover(model: nn.Module) -> Adapter:
    """Find ``model``'s sites (see the module docstring); :data:`OVERRIDES` win where they apply."""
    config = model.config
    mt = getattr(config, "model_type", type(model).__name__)
    try:
        adapter = _discover(model, config, mt, OVERRIDES.get(mt, {}))
    except _Missing as exc:
        known = REFERENCE_RESULTS.get(mt, "exact")
        why = f" ({mt} is a known exception: {known})" if known != "exact" else ""
        raise UnsupportedArchitectureError(
            f"probekit cannot map the sites of model_type {mt!r} ({type(model).__name__}): {exc}{why}"
            f"{_closest(mt, _config_kind(config, mt))}. If the architecture follows other names, add an entry "
            "to OVERRIDES in probekit/model/_discovery.py (see the README, 'Architectures')") from None
    if not adapter.verified and mt not in _WARNED:
        _WARNED.add(mt)
        logger.warning("model_type %r was mapped by convention but is not among the architectures probekit's "
                       "reference test proves exact; check its sites against the model's own outputs", mt)
    return adapter


def _closest(model_type: str, kind: str | None = None) -> str:
    """The verified type nearest by name, among those of the same kind when it is known."""
    pool = [t for t in VERIFIED_TYPES if kind is None or _config_kind(None, t) == kind] or list(VERIFIED_TYPES)
    close = difflib.get_close_matches(model_type, pool, n=1, cutoff=0.0)
    return f"; the closest supported family is {close[0]!r}" if close else ""


# ----------------------------------------------------------------- discovery
def _discover(model: nn.Module, config, mt: str, ov: dict) -> Adapter:
    base = model.base_model
    forward = getattr(model, "forward", None)
    if forward is None or "input_ids" not in inspect.signature(forward).parameters:
        raise _Missing(f"{type(model).__name__}.forward takes no input_ids (not a text model)")
    enc_dec = bool(getattr(config, "is_encoder_decoder", False))
    stack_path = ""
    if enc_dec:
        stack_path = _path_of(base, _encoder_of(base))
    recorded = _recorded(model)
    layers = ov.get("layers") or _find_blocks(base, stack_path, recorded.get("hidden_states"), config)
    blocks = base.get_submodule(layers)
    d = _width(config)
    given = ov.get("components", {})
    tables, o_paths, pattern_mods = [], [], []
    for i, block in enumerate(blocks):
        if "attn.pattern" in given and "attn.out" in given:  # the override says where attention is
            pat_path, pat_index = given["attn.pattern"].path, given["attn.pattern"].index
            o_path = given["attn.out"].path
            attn_path = ".".join(_common_prefix(pat_path.split("."), o_path.split(".")))
        else:
            pat_path, pat_index, attn_path, o_path = _attention(block, i, recorded.get("attentions"), d)
        table = {"resid": Hook(""), "attn.pattern": Hook(pat_path, index=pat_index), "attn.out": Hook(o_path)}
        if "mlp.out" not in given:
            table.update(_mlp(block, i, attn_path, d))
        table.update(given)
        tables.append(table)
        o_paths.append(o_path)
        pattern_mods.append(block.get_submodule(pat_path))
    common = {k: v for k, v in tables[0].items() if all(t.get(k) == v for t in tables)}
    same = all(t == tables[0] for t in tables)
    fields = dict(
        family=mt,
        model_types=(mt,),
        kind=_kind(config, mt, pattern_mods[0]),
        layers=layers,
        embed=_embed(model, base, stack_path),
        components=common,
        final=_final(base, layers, stack_path),
        position_offset=_position_offset(base),
        attn_output_proj=o_paths[0] if len(set(o_paths)) == 1 else "",
        weights_on_request="output_attentions" in inspect.signature(pattern_mods[0].forward).parameters,
        emb=Hook(f"{layers}.0", port="in", index=0, keyword="hidden_states"),
        layer_components=() if same else tuple(tables),
        runner=_runner(model, enc_dec),
        verified=REFERENCE_RESULTS.get(mt) == "exact",
    )
    fields.update({k: v for k, v in ov.items() if k not in ("components", "layers")})
    return Adapter(**fields)


def _common_prefix(a: list[str], b: list[str]) -> list[str]:
    out = []
    for x, y in zip(a, b):
        if x != y:
            break
        out.append(x)
    return out


def _bfs(root: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """``(path, module)`` below ``root`` (not root itself), shallowest first, in registration order."""
    queue = deque([(prefix, root)])
    while queue:
        path, mod = queue.popleft()
        for name, child in mod.named_children():
            if child is None:
                continue
            p = f"{path}.{name}" if path else name
            yield p, child
            queue.append((p, child))


def _path_of(root: nn.Module, target: nn.Module) -> str:
    for name, mod in root.named_modules():
        if mod is target:
            return name
    raise _Missing(f"{type(target).__name__} is not inside {type(root).__name__}")


def _encoder_of(base: nn.Module) -> nn.Module:
    enc = getattr(base, "encoder", None)
    if isinstance(enc, nn.Module):
        return enc
    get = getattr(base, "get_encoder", None)
    enc = get() if callable(get) else None
    if enc is None or enc is base:
        raise _Missing("no encoder stack found in the encoder-decoder model")
    return enc


def _recorded(model: nn.Module) -> dict:
    """What the model declares it records: ``{"hidden_states": cls, "attentions": (cls, index, layer_name)}``."""
    out = {}
    for klass in type(model).__mro__:
        spec = klass.__dict__.get("_can_record_outputs")
        if spec:
            break
    else:
        return out
    for key in ("hidden_states", "attentions"):
        entry = spec.get(key)
        if entry is None:
            continue
        if isinstance(entry, type):
            out[key] = (entry, 1 if key == "attentions" else 0, None)
        else:
            out[key] = (entry.target_class, entry.index, entry.layer_name)
    return out


def _width(config) -> int:
    for name in ("hidden_size", "n_embd", "d_model", "dim"):
        v = getattr(config, name, None)
        if isinstance(v, int):
            return v
    raise _Missing("no model width in the config (hidden_size, n_embd, d_model or dim)")


def _n_layers(config) -> int | None:
    for name in ("num_hidden_layers", "n_layer", "n_layers", "num_layers"):
        v = getattr(config, name, None)
        if isinstance(v, int):
            return v
    return None


def _find_blocks(base: nn.Module, stack_path: str, recorded, config) -> str:
    root = base.get_submodule(stack_path) if stack_path else base
    cands = []
    for name, mod in _bfs(root, stack_path):
        if not isinstance(mod, nn.ModuleList) or len(mod) == 0:
            continue
        kinds = {type(m) for m in mod}
        if len(kinds) != 1 or not any(True for _ in mod[0].parameters()):
            continue
        cands.append((name, mod, kinds.pop()))
    if not cands:
        raise _Missing(f"no block list found (no nn.ModuleList of identical blocks under {type(root).__name__})")
    if recorded is not None:
        mine = [c for c in cands if issubclass(c[2], recorded[0])]
        cands = mine or cands
    # blocks are never nested in blocks: drop lists inside an element of another list
    top = [c for c in cands if not any(c[0].startswith(o[0] + ".") for o in cands if o is not c)]
    name, mod, _ = max(top, key=lambda c: (len(c[1]), -c[0].count(".")))
    n = _n_layers(config)
    if n is not None and len(mod) != n:
        raise _Missing(f"the block list {name!r} holds {len(mod)} blocks but the config has {n} layers "
                       "(blocks shared between layers, as ALBERT's, are not supported)")
    return name


def linear_widths(mod: nn.Module) -> tuple[int, int] | None:
    """``(in, out)`` of a linear map, or None.

    nn.Linear and its quantized forms (anything with ``in_features`` and
    ``out_features``), GPT-2's Conv1D, and a wrapper holding exactly one of
    those (static quantization wraps a linear between quant stubs).
    """
    if hasattr(mod, "in_features") and hasattr(mod, "out_features"):
        return int(mod.in_features), int(mod.out_features)
    w = getattr(mod, "weight", None)
    if type(mod).__name__ == "Conv1D" and isinstance(w, torch.Tensor) and w.dim() == 2:
        return int(w.shape[0]), int(w.shape[1])
    if isinstance(mod, nn.Sequential):
        inner = [x for c in mod.children() if (x := linear_widths(c)) is not None]
        if len(inner) == 1:
            return inner[0]
    return None



def _leaf(path: str) -> str:
    return path.rpartition(".")[2]


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _attention(block: nn.Module, i: int, recorded, d: int) -> tuple[str, int, str, str]:
    """Pattern module and tuple index, the attention container and its output projection (paths in the block)."""
    mods = list(_bfs(block))
    pat, index = None, 1
    if recorded is not None:
        cls, index, layer_name = recorded
        for p, m in mods:
            if isinstance(m, cls) and (not layer_name or p.endswith(layer_name.strip("."))):
                pat = p
                break
    if pat is None:
        index = 1
        pat = next((p for p, m in mods if _leaf(p) in _ATTN_NAMES and any(True for _ in m.children())), None)
        if pat is None:
            raise _Missing(f"no attention module in block {i} (looked for {', '.join(_ATTN_NAMES)})")
        while True:
            inner = next((c for c in _ATTN_CORE_NAMES if isinstance(getattr(block.get_submodule(pat), c, None),
                                                                      nn.Module)), None)
            if inner is None:
                break
            pat = f"{pat}.{inner}"
    container = pat
    while True:
        root = block.get_submodule(container) if container else block
        o = next((f"{container}.{p}" if container else p for p, m in _bfs(root)
                  if _leaf(p) in _O_NAMES and (w := linear_widths(m)) is not None and w[1] == d), None)
        if o is not None:
            break
        if not container:
            raise _Missing(f"no attention output projection in block {i} (looked for {', '.join(_O_NAMES)} "
                           f"mapping to width {d})")
        container = _parent(container)
    if not container:  # the block itself: the attention's own path is the container
        container = pat
    return pat, index, container, o


def _mlp(block: nn.Module, i: int, attn_path: str, d: int) -> dict[str, Hook]:
    def outside(p: str) -> bool:
        return p != attn_path and not p.startswith(attn_path + ".")

    mods = [(p, m) for p, m in _bfs(block) if outside(p)]
    container = next((p for p, m in mods if _leaf(p) in _MLP_NAMES and any(True for _ in m.children())), None)
    if container is not None:
        mod = block.get_submodule(container)
        router = next((n for n in _ROUTER_NAMES if isinstance(getattr(mod, n, None), nn.Module)), None)
        if router is not None and isinstance(getattr(mod, "experts", None), nn.Module):
            return {"mlp.router": Hook(f"{container}.{router}", index=0), "mlp.out": Hook(container)}
        region = [(f"{container}.{p}", m) for p, m in _bfs(mod)]
    else:
        region = mods
    lin = [(p, w) for p, m in region if (w := linear_widths(m)) is not None and w[1] == d]
    lin = [c for c in lin if not any(c[0].startswith(o[0] + ".") for o in lin)]  # a wrapper, not what it wraps
    if not lin:
        raise _Missing(f"no MLP in block {i} (looked for {', '.join(_MLP_NAMES)}, or a linear map back to width {d})")
    wide = [c for c in lin if c[1][0] != d] or lin
    named = sorted((c for c in wide if _leaf(c[0]) in _DOWN_NAMES), key=lambda c: _DOWN_NAMES.index(_leaf(c[0])))
    down = (named[0] if named else wide[-1])[0]
    return {"mlp.hidden": Hook(down, port="in", index=0), "mlp.out": Hook(down)}


def _final(base: nn.Module, layers: str, stack_path: str) -> Hook | None:
    for owner in dict.fromkeys((_parent(layers), stack_path, "")):
        mod = base.get_submodule(owner) if owner else base
        for name in _FINAL_NAMES:
            child = getattr(mod, name, None)
            if isinstance(child, nn.Module) and not isinstance(child, nn.Identity):
                return Hook(f"{owner}.{name}" if owner else name)
    return None


def _embed(model: nn.Module, base: nn.Module, stack_path: str) -> tuple[Hook, ...]:
    out = []
    for owner in dict.fromkeys((stack_path, "")):
        mod = base.get_submodule(owner) if owner else base
        out += [Hook(f"{owner}.{n}" if owner else n) for n in _EMBED_NAMES if isinstance(getattr(mod, n, None),
                                                                                     nn.Module)]
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    if isinstance(emb, nn.Module):
        try:
            out.append(Hook(_path_of(base, emb)))
        except _Missing:
            pass
    if not out:
        raise _Missing("no embedding module found (embeddings, or the model's input embeddings)")
    return tuple(dict.fromkeys(out))


def _position_offset(base: nn.Module) -> int:
    """RoBERTa-style position tables count from ``padding_idx + 1``."""
    for p, m in base.named_modules():
        if _leaf(p) == "position_embeddings" and isinstance(m, nn.Embedding) and m.padding_idx is not None:
            return int(m.padding_idx) + 1
    return 0


def _kind(config, mt: str, attention: nn.Module) -> str:
    if getattr(config, "is_encoder_decoder", False):
        return "encoder"
    causal = getattr(attention, "is_causal", None)
    for m in attention.modules():
        if isinstance(causal, bool):
            break
        causal = getattr(m, "is_causal", None)
    if isinstance(causal, bool):
        return "decoder" if causal else "encoder"
    return _config_kind(config, mt)


def _config_kind(config, mt: str) -> str:
    """Encoder or decoder from the config and transformers' model lists (a decoder has a causal-LM class and no
    masked-LM class)."""
    if getattr(config, "is_encoder_decoder", False):
        return "encoder"
    if getattr(config, "is_decoder", False):
        return "decoder"
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and mt not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "decoder"
    return "encoder"


def _runner(model: nn.Module, enc_dec: bool) -> str:
    """An encoder-decoder without a classification head runs its encoder alone on token ids."""
    if not enc_dec or type(model).__name__.endswith(("ForSequenceClassification", "ForQuestionAnswering")):
        return ""
    return _path_of(model, _encoder_of(model.base_model))
