"""Token relevance from attention (raw, rollout, flow) and from input gradients, per layer.

Layers are numbered as in the paper and on probekit's layer axis: layer
``l`` (1..6) is the attention of block ``l - 1`` (raw) or the graph through
block ``l - 1`` (rollout, flow).

Two readings of "the attention to each input token" are used, one per table:

- ``"cls"`` (Tables 1-2, the agreement model: "the attention weights of the
  CLS embedding"): the [CLS] row;
- ``"max"`` (Table 3, as in the authors' released script for DistilBERT on
  SST-2): for each input token, the largest attention any position pays it
  (the maximum over the rows; for flow, over the flow into every output
  position, each normalised to sum to 1).
"""

from __future__ import annotations

import numpy as np
import torch

from probekit.attention import attention_flow, attention_rollout

__all__ = ["relevance", "input_gradients", "RELEVANCE"]

RELEVANCE = ("cls", "max")


def relevance(patterns: list[torch.Tensor], *, read: str, flow: bool, flow_max_tokens: int = 64) -> dict:
    """Raw, rollout and (with ``flow``) flow relevance of every input token: ``{source: [layers, T]}``.

    Parameters
    ----------
    patterns : list of Tensor
        ``[heads, T, T]`` per block, first block first (one example, no padding).
    read : {"cls", "max"}
        The [CLS] row, or the maximum over rows (see the module docstring).
    flow : bool
        Also compute attention flow (one max-flow problem per token, layer and, for ``"max"``, output).

    Examples
    --------
    >>> a = torch.tensor([[[0.5, 0.5], [0.0, 1.0]]])    # one head, two tokens
    >>> r = relevance([a], read="max", flow=False)
    >>> r["raw"].tolist(), r["rollout"].tolist()
    ([[0.5, 1.0]], [[0.75, 1.0]])
    """
    if read not in RELEVANCE:
        raise ValueError(f"read must be one of {RELEVANCE}, not {read!r}")
    raw = np.stack([p.double().mean(0).numpy() for p in patterns])  # [layers, T, T]
    roll = attention_rollout(patterns)
    pick = (lambda m: m[:, 0, :]) if read == "cls" else (lambda m: m.max(axis=1))
    out = {"raw": pick(raw), "rollout": pick(roll)}
    if flow:
        if read == "cls":
            out["flow"] = attention_flow(patterns, output=0, max_tokens=flow_max_tokens)
        else:
            T = raw.shape[-1]
            per_out = np.stack([attention_flow(patterns, output=u, max_tokens=flow_max_tokens) for u in range(T)])
            per_out = per_out / np.clip(per_out.sum(-1, keepdims=True), 1e-30, None)  # [outputs, layers, T]
            out["flow"] = per_out.max(axis=0)
    return out


def input_gradients(model, texts: list[str], targets: list[int]) -> list[np.ndarray]:
    """Per token: ``|sum_d d logit_target / d e_d|`` for the input word embedding ``e`` (one example at a time).

    As in the authors' script for Table 3: the gradient of the class logit
    with respect to the input embeddings, summed over the hidden dimension,
    absolute value.
    """
    if len(texts) != len(targets):
        raise ValueError(f"{len(texts)} texts but {len(targets)} targets")
    net = model.model.eval()
    emb = net.get_input_embeddings()
    batch = model.tokenize(texts)
    out = []
    for ex, target in zip(batch.examples, targets):
        ids = torch.tensor([ex.input_ids], device=model.device)
        with torch.enable_grad():
            e = emb(ids).detach().requires_grad_(True)
            logit = net(inputs_embeds=e, attention_mask=torch.ones_like(ids)).logits[0, int(target)]
            (grad,) = torch.autograd.grad(logit, e)
        out.append(grad[0].sum(-1).abs().double().cpu().numpy())
    return out
