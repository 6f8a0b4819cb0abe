"""Architecture adapters: where each site lives in a model, as data.

An :class:`Adapter` is a small table, never a re-implementation of the model:
module paths (relative to a block for per-layer components, to the base model
otherwise), whether a hook reads a module's output or its input, and which
tuple element to take. Adapters are not written by hand per family: they are
found by :func:`probekit.model.adapter_for` from Hugging Face's modeling
conventions (see :mod:`probekit.model._discovery`), with a small table of
overrides for the exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from torch import nn

__all__ = ["Hook", "Adapter"]


@dataclass(frozen=True)
class Hook:
    """Where one component is read.

    Parameters
    ----------
    path : str
        Dotted module path; ``""`` is the block (or base model) itself.
    port : {"out", "in"}
        Read the module's output (forward hook) or its input (forward
        pre-hook).
    index : int or None
        Element of a tuple output (or of the positional inputs) to take;
        ``None`` takes the output as is. A plain-tensor output is taken whole
        whatever the index.
    keyword : str or None
        For ``port="in"``: the keyword the input arrives under when the caller
        passes it by name (e.g. ``"hidden_states"``).
    """

    path: str
    port: Literal["out", "in"] = "out"
    index: int | None = 0
    keyword: str | None = None


@dataclass(frozen=True)
class Adapter:
    """Site-to-module table of one architecture.

    ``components`` holds what every block has; ``layer_components`` (when
    not empty) holds one table per block, for models whose blocks differ
    (mixture-of-experts models with some dense layers).
    """

    family: str
    model_types: tuple[str, ...]
    kind: Literal["encoder", "decoder"]
    layers: str
    #: the embedding module(s) whose output is the input embedding (attribution
    #: interpolates there); the first path that exists is used
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
    #: where the ``emb`` site is read (relative to the base model); default the
    #: output of the embedding module
    emb: Hook | None = None
    layer_components: tuple[Mapping[str, Hook], ...] = ()
    #: the module run on token ids, relative to the top model, when the model
    #: itself cannot run on them alone (an encoder-decoder's encoder); "" = the model
    runner: str = ""
    #: True when probekit's reference test proves this architecture exact
    verified: bool = False

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

    def emb_hook(self, base: nn.Module) -> Hook:
        """Where the ``emb`` site is read."""
        return self.emb if self.emb is not None else self.embed_hook(base)

    def components_of(self, layer: int) -> Mapping[str, Hook]:
        """The component table of block ``layer``."""
        if self.layer_components:
            return self.layer_components[layer]
        return self.components
