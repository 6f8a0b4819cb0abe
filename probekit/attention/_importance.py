"""Head importance for a classifier (Michel, Levy & Neubig 2019).

``I_h = E_x |dL/d xi_h|`` where ``xi_h`` multiplies head ``h``'s context
vector (a head mask fixed at 1). The mask is applied by a pre-hook on each
block's attention output projection, whose input is the concatenation of the
heads' contexts, so it works for every adapter without re-implementing
attention. Scores are normalised per layer by their L2 norm, as in the paper.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from probekit.model import HookedModel, as_hooked_model, resolve_module

__all__ = ["head_importance", "head_mask"]


@contextlib.contextmanager
def head_mask(model: HookedModel, mask: torch.Tensor):
    """Multiply each head's context by ``mask[layer, head]`` inside the block.

    ``mask`` is ``[layers, heads]``; it may require grad (for importance) or
    hold zeros (to switch heads off). Hooks are removed on exit.
    """
    model = as_hooked_model(model)
    if mask.shape != (model.n_layers, model.n_heads):
        raise ValueError(f"head mask must be [{model.n_layers}, {model.n_heads}], got {tuple(mask.shape)}")
    if set(model.heads_per_layer()) != {model.n_heads}:
        raise NotImplementedError(f"head masks need every layer to have {model.n_heads} heads; this model has "
                                  f"{model.heads_per_layer()} (structurally head-pruned)")
    path = model.adapter.attn_output_proj
    if not path:
        raise NotImplementedError(f"the {model.adapter.family} adapter names no attention output projection")
    handles = []

    def make(layer: int):
        def pre(_module, args):
            ctx = args[0]
            shape = ctx.shape
            scaled = ctx.view(*shape[:-1], model.n_heads, -1) * mask[layer][:, None].to(ctx.dtype)
            return (scaled.view(shape),) + tuple(args[1:])
        return pre

    try:
        for layer, block in enumerate(model.blocks):
            handles.append(resolve_module(block, path).register_forward_pre_hook(make(layer)))
        yield
    finally:
        for h in handles:
            h.remove()


def head_importance(model: HookedModel, texts: Sequence, labels: Sequence[int] | None = None, *,
                    batch_size: int = 16, normalise: bool = True, progress: bool = False) -> pd.DataFrame:
    """Michel et al. head importance of a sequence classifier on ``texts``.

    Parameters
    ----------
    model : HookedModel
        A sequence-classification model.
    texts : list of str or word lists
    labels : list of int, optional
        Gold labels; default the model's own predictions.
    normalise : bool
        Divide each layer's scores by their L2 norm (the paper's choice).

    Returns
    -------
    DataFrame
        ``layer, block, head, importance`` (one row per head; ``block`` ``i``
        is the pattern ``L{i}.attn.pattern``, ``layer = i + 1`` the layer
        axis of every results table), ready to pivot into a block x head
        table or to hand to structured head pruning.
    """
    model = as_hooked_model(model)
    if not type(model.model).__name__.endswith("ForSequenceClassification"):
        raise TypeError("head importance needs a sequence-classification model")
    if labels is not None and len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    batch = model.tokenize(texts)
    xi = torch.ones(model.n_layers, model.n_heads, requires_grad=True, device=model.device)
    total = torch.zeros(model.n_layers, model.n_heads, dtype=torch.float64)
    steps = range(0, len(batch.examples), batch_size)
    for start in tqdm(steps, desc="head importance", unit="batch", disable=not progress):
        exs = batch.examples[start: start + batch_size]
        with model.evaluating(), head_mask(model, xi), torch.enable_grad():
            logits = model.forward_rows([e.input_ids for e in exs]).logits
            y = (torch.tensor(labels[start: start + len(exs)], device=logits.device) if labels is not None
                 else logits.argmax(-1).detach())
            loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xi)
        total += grad.detach().abs().double().cpu()
    scores = total / len(batch.examples)
    if normalise:
        scores = scores / scores.norm(dim=-1, keepdim=True).clamp_min(1e-20)
    rows = [(block + 1, block, head, float(scores[block, head])) for block in range(model.n_layers)
            for head in range(model.n_heads)]
    return pd.DataFrame(rows, columns=["layer", "block", "head", "importance"])
