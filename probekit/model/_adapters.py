"""Architecture adapters: where each site lives in each model family.

An adapter is a small data table, not a re-implementation of the model. Each
entry names a module path (relative to a block for per-layer components, to
the base model otherwise), whether the hook reads the module's output or its
input, and which element of a tuple to take. Adding a family is adding one
:class:`Adapter` to :data:`ADAPTERS`; see the README ("Adding a model family").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import nn

__all__ = ["Hook", "Adapter", "ADAPTERS", "adapter_for"]


@dataclass(frozen=True)
class Hook:
    """Where one component is read.

    Parameters
    ----------
    path : str
        Dotted module path; ``""`` is the block (or base model) itself.
    port : {"out", "in"}
        Read the module's output (forward hook) or its first input
        (forward pre-hook).
    index : int or None
        Element of a tuple output to take; ``None`` takes the output as is. A
        plain-tensor output is taken whole whatever the index.
    """

    path: str
    port: Literal["out", "in"] = "out"
    index: int | None = 0


@dataclass(frozen=True)
class Adapter:
    """Site-to-module table for one model family."""

    family: str
    model_types: tuple[str, ...]
    kind: Literal["encoder", "decoder"]
    layers: str
    #: candidates for the ``emb`` site; the first path that exists is used
    embed: tuple[Hook, ...]
    components: dict[str, Hook] = field(default_factory=dict)
    final: Hook | None = None
    #: positions taken by a padding offset in the position table (RoBERTa, MPNet)
    position_offset: int = 0
    #: output projection of the attention sublayer (relative to a block); its
    #: input is the per-head context ``[batch, tokens, heads * head_dim]``
    attn_output_proj: str = ""
    #: the attention module returns its weights only when the forward call asks
    #: for ``output_attentions`` (older code paths such as MPNet's)
    weights_on_request: bool = False

    def blocks(self, base: nn.Module) -> nn.ModuleList:
        return base.get_submodule(self.layers)

    def embed_hook(self, base: nn.Module) -> Hook:
        for hook in self.embed:
            try:
                base.get_submodule(hook.path)
            except AttributeError:
                continue
            return hook
        raise LookupError(f"{self.family}: none of the embedding modules {[h.path for h in self.embed]} exist")


_BERT_LIKE = {
    "resid": Hook(""),
    "attn.pattern": Hook("attention.self", index=1),
    "attn.out": Hook("attention.output.dense"),
    "mlp.hidden": Hook("intermediate"),
    "mlp.out": Hook("output.dense"),
}

ADAPTERS: tuple[Adapter, ...] = (
    Adapter("bert", ("bert",), "encoder", "encoder.layer", (Hook("embeddings"),), _BERT_LIKE,
            attn_output_proj="attention.output.dense"),
    Adapter("roberta", ("roberta", "xlm-roberta", "camembert"), "encoder", "encoder.layer",
            (Hook("embeddings"),), _BERT_LIKE, position_offset=2, attn_output_proj="attention.output.dense"),
    Adapter("electra", ("electra",), "encoder", "encoder.layer",
            (Hook("embeddings_project"), Hook("embeddings")), _BERT_LIKE, attn_output_proj="attention.output.dense"),
    Adapter("distilbert", ("distilbert",), "encoder", "transformer.layer", (Hook("embeddings"),), {
        "resid": Hook(""),
        "attn.pattern": Hook("attention", index=1),
        "attn.out": Hook("attention", index=0),
        "mlp.hidden": Hook("ffn.activation"),
        "mlp.out": Hook("ffn"),
    }, attn_output_proj="attention.out_lin"),
    Adapter("mpnet", ("mpnet",), "encoder", "encoder.layer", (Hook("embeddings"),), {
        "resid": Hook(""),
        "attn.pattern": Hook("attention.attn", index=1),
        "attn.out": Hook("attention.attn", index=0),
        "mlp.hidden": Hook("intermediate"),
        "mlp.out": Hook("output.dense"),
    }, position_offset=2, weights_on_request=True, attn_output_proj="attention.attn.o"),
    Adapter("gpt2", ("gpt2",), "decoder", "h", (Hook("drop"),), {
        "resid": Hook(""),
        "attn.pattern": Hook("attn", index=1),
        "attn.out": Hook("attn", index=0),
        "mlp.hidden": Hook("mlp.act"),
        "mlp.out": Hook("mlp"),
    }, final=Hook("ln_f"), attn_output_proj="attn.c_proj"),
    Adapter("llama", ("llama", "mistral", "qwen2"), "decoder", "layers", (Hook("embed_tokens"),), {
        "resid": Hook(""),
        "attn.pattern": Hook("self_attn", index=1),
        "attn.out": Hook("self_attn", index=0),
        "mlp.hidden": Hook("mlp.down_proj", port="in"),
        "mlp.out": Hook("mlp"),
    }, final=Hook("norm"), attn_output_proj="self_attn.o_proj"),
)


def adapter_for(model_type: str) -> Adapter:
    """The adapter of a ``config.model_type``.

    Raises
    ------
    NotImplementedError
        Naming the supported families, when none matches.
    """
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    known = sorted(t for a in ADAPTERS for t in a.model_types)
    raise NotImplementedError(
        f"no probekit adapter for model_type {model_type!r}; supported: {', '.join(known)}. "
        "Adding one is a small table in probekit/model/_adapters.py (see the README)."
    )
