"""Attention rollout and attention flow (Abnar & Zuidema 2020).

Both treat the network as a graph whose layer-to-layer edges are the
head-averaged attention with the residual connection added:
``A_res = 0.5 * mean_heads(A) + 0.5 * I``, rows renormalised.

- rollout multiplies these matrices up the layers;
- flow solves a maximum-flow problem from each input token to an output
  token through the layered graph (edge capacities ``A_res``). It costs one
  max-flow per input token, so inputs are bounded in length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

__all__ = ["residual_attention", "attention_rollout", "attention_flow", "MAX_FLOW_TOKENS"]

#: longest input :func:`attention_flow` accepts by default
MAX_FLOW_TOKENS = 64
# max-flow runs on integer capacities: attention weights (at most 1) in units of 2**-24
_FLOW_SCALE = 1 << 24


def residual_attention(patterns: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Head-averaged ``[T, T]`` attention of each layer with the residual added, rows summing to 1."""
    out = []
    for p in patterns:
        a = p.detach().double().mean(0).numpy() if p.dim() == 3 else p.detach().double().numpy()
        a = 0.5 * a + 0.5 * np.eye(a.shape[-1])
        out.append(a / a.sum(-1, keepdims=True))
    return out


def attention_rollout(patterns: Sequence[torch.Tensor]) -> np.ndarray:
    """Rollout after every layer: ``[layers, T, T]``, row ``i`` of layer ``l`` the mix of inputs in token ``i``.

    Parameters
    ----------
    patterns : sequence of Tensor
        ``[heads, T, T]`` per layer, first layer first (one example, no padding).

    Examples
    --------
    >>> p = [torch.eye(3).expand(2, 3, 3)] * 2
    >>> attention_rollout(p)[-1].round(3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    mats = residual_attention(patterns)
    if not mats:
        raise ValueError("no layers given")
    out = [mats[0]]
    for a in mats[1:]:
        out.append(a @ out[-1])
    return np.stack(out)


def attention_flow(patterns: Sequence[torch.Tensor], *, output: int = 0,
                   max_tokens: int = MAX_FLOW_TOKENS) -> np.ndarray:
    """Attention flow from every input token to token ``output`` after every layer.

    Returns
    -------
    ndarray
        ``[layers, T]``: row ``l`` is the max-flow value from each input token to
        ``output`` at the top of layer ``l``.

    Raises
    ------
    ValueError
        When the input is longer than ``max_tokens`` (flow costs ``T`` max-flow
        problems on a graph of ``layers * T^2`` edges): shorten it, raise the
        bound, or use :func:`attention_rollout`.
    """
    mats = residual_attention(patterns)
    T = mats[0].shape[-1]
    if T > max_tokens:
        raise ValueError(f"attention flow on {T} tokens exceeds max_tokens={max_tokens}; it solves {T} max-flow "
                         f"problems per layer. Shorten the input, raise max_tokens, or use attention_rollout.")
    if not 0 <= output < T:
        raise ValueError(f"output token {output} is outside the {T} tokens")
    caps = [np.rint(np.asarray(m, dtype=np.float64) * _FLOW_SCALE).astype(np.int64) for m in mats]
    result = np.zeros((len(mats), T))
    rows, cols, vals = [], [], []
    for top in range(len(mats)):
        j, i = np.nonzero(caps[top].T)  # node (top + 1, i) reads from node (top, j)
        rows.append(top * T + j)
        cols.append((top + 1) * T + i)
        vals.append(caps[top][i, j])
        n = (top + 2) * T
        g = csr_matrix((np.concatenate(vals).astype(np.int32), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(n, n))
        g.sort_indices()
        sink = (top + 1) * T + output
        for src in range(T):
            result[top, src] = maximum_flow(g, src, sink).flow_value / _FLOW_SCALE
    return result
