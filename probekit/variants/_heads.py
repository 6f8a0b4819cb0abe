"""Structured pruning: attention heads and feed-forward neurons, physically removed.

transformers 5 has no ``prune_heads``, so this slices the ``nn.Linear``
weights itself: the rows of Q, K and V and the columns of the attention output
projection that belong to the removed heads, then updates the attention
module's head count attributes. The attention forwards of the supported
families (BERT, RoBERTa, ELECTRA, DistilBERT in transformers 5.24) reshape
with ``view(..., -1, head_size)``, so fewer heads just work. FFN neurons are
rows of the first and columns of the second feed-forward linear.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from probekit.attention import head_importance
from probekit.model import HookedModel, adapter_for
from probekit.variants._data import as_frame
from probekit.variants._recipes import HeadPruneRecipe
from probekit.variants._recover import recover
from probekit.variants._variant import LayerMap, ModelVariant, parent_info, wrap

__all__ = ["prune_heads", "apply_structure", "ATTENTION_TABLES", "head_magnitudes"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttentionTable:
    """Where a family's attention and FFN weights live, relative to a block."""

    attn: str               # module holding the head-count attributes
    q: str
    k: str
    v: str
    o: str
    count_attrs: tuple[str, ...]   # set to the new number of heads
    size_attrs: tuple[str, ...]    # set to heads * head_size
    ffn_in: str
    ffn_out: str


_BERT = AttentionTable("attention.self", "attention.self.query", "attention.self.key", "attention.self.value",
                       "attention.output.dense", ("num_attention_heads",), ("all_head_size",),
                       "intermediate.dense", "output.dense")
ATTENTION_TABLES: dict[str, AttentionTable] = {
    "bert": _BERT, "roberta": _BERT, "xlm-roberta": _BERT, "camembert": _BERT, "electra": _BERT,
    "distilbert": AttentionTable("attention", "attention.q_lin", "attention.k_lin", "attention.v_lin",
                                 "attention.out_lin", ("n_heads",), (), "ffn.lin1", "ffn.lin2"),
}


def _table(family: str) -> AttentionTable:
    if family not in ATTENTION_TABLES:
        raise NotImplementedError(
            f"structured head pruning supports {sorted(ATTENTION_TABLES)}; not {family!r} (MPNet shares one "
            "relative-position bias over all layers; GPT-2 fuses Q/K/V; Llama groups K/V heads)")
    return ATTENTION_TABLES[family]


def _head_size(model: nn.Module) -> int:
    c = model.config
    d = getattr(c, "hidden_size", None) or c.dim
    n = getattr(c, "num_attention_heads", None) or c.n_heads
    return d // n


def _slice_linear(lin: nn.Linear, keep: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping output rows (dim=0) or input columns (dim=1)."""
    w = lin.weight.detach().index_select(dim, keep).clone()
    b = None
    if lin.bias is not None:
        b = lin.bias.detach().index_select(0, keep).clone() if dim == 0 else lin.bias.detach().clone()
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device=w.device, dtype=w.dtype)
    new.weight = nn.Parameter(w, requires_grad=lin.weight.requires_grad)
    if b is not None:
        new.bias = nn.Parameter(b, requires_grad=lin.bias.requires_grad)
    return new


def _set(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def _blocks(model: nn.Module, family: str) -> nn.ModuleList:
    return adapter_for(model).blocks(model.base_model)


def _n_heads_now(block: nn.Module, t: AttentionTable) -> int:
    return int(getattr(block.get_submodule(t.attn), t.count_attrs[0]))


def slice_heads_(model: nn.Module, family: str, keep: dict[int, list[int]]) -> None:
    """In place: keep only heads ``keep[layer]`` (indices into the current heads) in each listed layer."""
    t = _table(family)
    hs = _head_size(model)
    for layer, heads in keep.items():
        block = _blocks(model, family)[layer]
        if len(heads) == 0:
            raise ValueError(f"layer {layer} would have no attention head left")
        idx = torch.tensor([h * hs + j for h in heads for j in range(hs)], dtype=torch.long)
        for path in (t.q, t.k, t.v):
            _set(block, path, _slice_linear(block.get_submodule(path), idx, 0))
        _set(block, t.o, _slice_linear(block.get_submodule(t.o), idx, 1))
        attn = block.get_submodule(t.attn)
        for a in t.count_attrs:
            setattr(attn, a, len(heads))
        for a in t.size_attrs:
            setattr(attn, a, len(heads) * hs)


def slice_ffn_(model: nn.Module, family: str, keep: dict[int, list[int]]) -> None:
    """In place: keep only FFN neurons ``keep[layer]`` in each listed layer."""
    t = _table(family)
    for layer, neurons in keep.items():
        block = _blocks(model, family)[layer]
        idx = torch.tensor(sorted(neurons), dtype=torch.long)
        _set(block, t.ffn_in, _slice_linear(block.get_submodule(t.ffn_in), idx, 0))
        _set(block, t.ffn_out, _slice_linear(block.get_submodule(t.ffn_out), idx, 1))


def apply_structure(model: nn.Module, structure: dict) -> None:
    """Rebuild pruned shapes on a freshly built model (used when loading a saved variant)."""
    family = _family(model)
    if structure.get("heads"):
        slice_heads_(model, family, {i: list(h) for i, h in enumerate(structure["heads"])})
    if structure.get("ffn"):
        slice_ffn_(model, family, {i: list(range(n)) for i, n in enumerate(structure["ffn"])})


def _family(model: nn.Module) -> str:
    return adapter_for(model).family


def head_magnitudes(model: nn.Module) -> pd.DataFrame:
    """L2 norm of each head's Q, K, V rows and output-projection columns (the magnitude fallback).

    Columns ``layer, block, head, importance`` as :func:`probekit.attention.head_importance`.
    """
    family = _family(model)
    t = _table(family)
    hs = _head_size(model)
    rows = []
    for layer, block in enumerate(_blocks(model, family)):
        w = [block.get_submodule(p).weight.detach().float() for p in (t.q, t.k, t.v)]
        o = block.get_submodule(t.o).weight.detach().float()
        for h in range(_n_heads_now(block, t)):
            sl = slice(h * hs, (h + 1) * hs)
            sq = sum(float(x[sl].pow(2).sum()) for x in w) + float(o[:, sl].pow(2).sum())
            rows.append((layer + 1, layer, h, sq ** 0.5))
    return pd.DataFrame(rows, columns=["layer", "block", "head", "importance"])


def _choose_heads(scores: pd.DataFrame, n_heads: dict[int, int], fraction: float) -> list[tuple[int, int]]:
    """Lowest-importance heads, ``fraction`` of all, never emptying a layer."""
    missing = {"block", "head", "importance"} - set(scores.columns)
    if missing:
        raise ValueError(f"head scores need columns block, head, importance (block i is L{{i}}.attn.pattern); "
                         f"missing {sorted(missing)}")
    total = sum(n_heads.values())
    n_prune = int(round(fraction * total))
    left = dict(n_heads)
    chosen = []
    for r in scores.sort_values(["importance", "block", "head"]).itertuples():
        if len(chosen) == n_prune:
            break
        if left[int(r.block)] > 1:
            chosen.append((int(r.block), int(r.head)))
            left[int(r.block)] -= 1
    return chosen


def prune_heads(src: HookedModel | ModelVariant, recipe: HeadPruneRecipe | None = None, *, data=None,
                scores: pd.DataFrame | None = None, eval_data=None, out=None, **recipe_kwargs) -> ModelVariant:
    """Remove attention heads (and FFN neurons) for good; optional recovery fine-tune.

    Parameters
    ----------
    src : HookedModel or ModelVariant
        A model of a family in :data:`ATTENTION_TABLES`. Not modified.
    recipe : HeadPruneRecipe, optional
        Or give its fields as keyword arguments.
    data : texts + labels, DataFrame or datasets.Dataset, optional
        Needed for Michel importance (if missing, magnitude is used, with a
        warning) and for the recovery fine-tune.
    scores : DataFrame, optional
        Precomputed ``block, head, importance`` (e.g. from
        :func:`probekit.attention.head_importance`).
    eval_data, out
        Validation data and output folder of the recovery fine-tune.

    Returns
    -------
    ModelVariant
        ``layer_map.heads[i]`` lists the original heads that survive in layer
        ``i``, in the order they appear in the pruned model's attention
        patterns.

    Examples
    --------
    >>> import probekit, transformers
    >>> model = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> v = prune_heads(model, heads=[(0, 1), (1, 3)], importance="magnitude")
    >>> v.layer_map.heads
    ((0, 2, 3), (0, 1, 2))
    """
    recipe = recipe or HeadPruneRecipe(**recipe_kwargs)
    parent, base, lineage, pmap, structure = parent_info(src)
    family = parent.adapter.family
    t = _table(family)
    blocks = parent.blocks
    n_heads = {i: _n_heads_now(b, t) for i, b in enumerate(blocks)}
    # ------- validate before any work
    if recipe.heads is not None:
        for layer, head in recipe.heads:
            if layer not in n_heads or not 0 <= head < n_heads[layer]:
                raise ValueError(f"head ({layer}, {head}) does not exist; layers 0-{len(n_heads) - 1}, "
                                 f"heads per layer {n_heads}")
        for layer in n_heads:
            if sum(1 for a, _ in recipe.heads if a == layer) >= n_heads[layer]:
                raise ValueError(f"the recipe prunes every head of layer {layer}; keep at least one")
    if recipe.recover_epochs > 0 and data is None:
        raise ValueError("recover_epochs > 0 needs data=... for the recovery fine-tune")
    # ------- choose
    if recipe.heads is not None:
        to_prune = list(recipe.heads)
    elif recipe.fraction > 0:
        if scores is None:
            scores = _importance(parent, recipe, data)
        to_prune = _choose_heads(scores, n_heads, recipe.fraction)
    else:
        to_prune = []
    keep = {i: [h for h in range(n) if (i, h) not in set(to_prune)] for i, n in n_heads.items()}
    model = copy.deepcopy(parent.model)
    slice_heads_(model, family, {i: k for i, k in keep.items() if len(k) < n_heads[i]})
    ffn_keep = None
    if recipe.ffn_fraction > 0:
        ffn_keep = {}
        for i, block in enumerate(_blocks(model, family)):
            w_in = block.get_submodule(t.ffn_in).weight.detach().float()
            w_out = block.get_submodule(t.ffn_out).weight.detach().float()
            norm = w_in.pow(2).sum(1) + w_out.pow(2).sum(0)
            n_keep = max(1, len(norm) - int(round(recipe.ffn_fraction * len(norm))))
            ffn_keep[i] = sorted(norm.topk(n_keep).indices.tolist())
        slice_ffn_(model, family, ffn_keep)
    # ------- structure (config numbering) and layer map (base numbering)
    old_heads = structure.get("heads") or [list(range(n)) for n in n_heads.values()]
    structure = dict(structure)
    structure["heads"] = [[old_heads[i][h] for h in keep[i]] for i in range(len(keep))]
    if ffn_keep is not None:
        structure["ffn"] = [len(ffn_keep[i]) for i in range(len(ffn_keep))]
    child = LayerMap(tuple(range(len(keep))), tuple(tuple(keep[i]) for i in range(len(keep))),
                     None if ffn_keep is None else tuple(tuple(ffn_keep[i]) for i in range(len(ffn_keep))))
    report = {"pruned_heads": sorted(to_prune), "heads_before": sum(n_heads.values()),
              "heads_after": sum(len(k) for k in keep.values())}
    logger.info("pruned %d of %d heads", len(to_prune), sum(n_heads.values()))
    variant = wrap(model, parent, recipe=recipe, base=base, lineage=lineage, layer_map=pmap.compose(child),
                   structure=structure, report=report)
    if recipe.recover_epochs > 0:
        variant.report["recovery"] = recover(variant, epochs=recipe.recover_epochs, lr=recipe.recover_lr, data=data,
                                             eval_data=eval_data, out=out)
    return variant


def _importance(parent: HookedModel, recipe: HeadPruneRecipe, data) -> pd.DataFrame:
    if recipe.importance == "michel":
        if data is None:
            logger.warning("Michel importance needs data; falling back to weight magnitude")
        else:
            df = as_frame(data)
            return head_importance(parent, list(df["text"]), [int(x) for x in df["label"]])
    return head_magnitudes(parent.model)
