"""Per-head attention statistics over a whole dataset.

Following Clark et al. 2019 ("What does BERT look at?") and Kovaleva et al.
2019: for every head, the mean over real query tokens and over examples of
the attention entropy, the mass on [CLS], on [SEP], on punctuation, on the
token itself, on the previous and on the next token, and the mean attended
distance ``sum_k p(q, k) |q - k|``.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

__all__ = ["HeadStatistics", "HEAD_METRICS", "punctuation_mask", "word_attention"]

HEAD_METRICS: tuple[str, ...] = ("entropy", "cls", "sep", "punct", "self", "prev", "next", "distance")
_PUNCT = set(string.punctuation) | {"``", "''", "--", "...", "…", "“", "”", "‘", "’", "–", "—"}


def punctuation_mask(tokens: Sequence[str]) -> torch.Tensor:
    """True for tokens made only of punctuation (WordPiece ``##`` and BPE ``Ġ`` marks stripped)."""
    out = []
    for t in tokens:
        core = t.removeprefix("##").lstrip("Ġ▁")
        out.append(bool(core) and all(c in _PUNCT for c in core))
    return torch.tensor(out, dtype=torch.bool)


@dataclass
class HeadStatistics:
    """Accumulates :data:`HEAD_METRICS` per (block, head) over examples.

    Each query token counts once: the dataset mean is over all real query
    tokens of all examples.

    Examples
    --------
    >>> acc = HeadStatistics()
    >>> p = torch.eye(3).expand(2, 3, 3)          # 2 heads attending to themselves
    >>> acc.update(0, p, cls=torch.tensor([1, 0, 0]).bool(), sep=torch.tensor([0, 0, 1]).bool())
    >>> acc.to_frame().query("metric == 'self'")["value"].tolist()
    [1.0, 1.0]
    """

    _sums: dict[int, np.ndarray] = field(default_factory=dict)
    _counts: dict[int, int] = field(default_factory=dict)

    def update(self, block: int, pattern: torch.Tensor, *, cls: torch.Tensor, sep: torch.Tensor,
               punct: torch.Tensor | None = None) -> None:
        """Add one example's ``[heads, T, T]`` pattern of ``block`` (``L{block}.attn.pattern``; no padding)."""
        p = pattern.detach().to(torch.float64)
        if p.dim() != 3 or p.shape[1] != p.shape[2]:
            raise ValueError(f"pattern must be [heads, T, T], got {tuple(p.shape)}")
        T = p.shape[-1]
        punct = torch.zeros(T, dtype=torch.bool) if punct is None else punct
        for name, m in (("cls", cls), ("sep", sep), ("punct", punct)):
            if m.shape != (T,):
                raise ValueError(f"{name} mask has shape {tuple(m.shape)}, expected ({T},)")
        idx = torch.arange(T, dtype=torch.float64)
        eye = torch.eye(T, dtype=torch.float64)
        entropy = -(p * p.clamp_min(1e-30).log()).sum(-1)
        values = [
            entropy,
            (p * cls).sum(-1),
            (p * sep).sum(-1),
            (p * punct).sum(-1),
            (p * eye).sum(-1),
            torch.nn.functional.pad(torch.diagonal(p, offset=-1, dim1=-2, dim2=-1), (1, 0)),
            torch.nn.functional.pad(torch.diagonal(p, offset=1, dim1=-2, dim2=-1), (0, 1)),
            (p * (idx[:, None] - idx[None, :]).abs()).sum(-1),
        ]
        sums = torch.stack([v.sum(-1) for v in values], dim=-1).numpy()  # [heads, metrics]
        self._sums[block] = self._sums.get(block, 0) + sums
        self._counts[block] = self._counts.get(block, 0) + T

    def to_frame(self) -> pd.DataFrame:
        """Tidy rows ``layer, block, head, metric, value`` (``layer = block + 1``, the layer axis)."""
        rows = []
        for block in sorted(self._sums):
            means = self._sums[block] / self._counts[block]
            for head in range(means.shape[0]):
                for k, metric in enumerate(HEAD_METRICS):
                    rows.append((block + 1, block, head, metric, float(means[head, k])))
        return pd.DataFrame(rows, columns=["layer", "block", "head", "metric", "value"])


def word_attention(pattern: torch.Tensor, spans: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Word-level attention from subword attention (Clark et al. 2019).

    Attention *to* a word is the sum over its pieces; attention *from* a word
    is the mean over its pieces. Special tokens (outside every span) are
    dropped, so rows need not sum to one.

    Parameters
    ----------
    pattern : Tensor
        ``[..., T, T]``.
    spans : sequence of (start, stop)
        Token span of every word.

    Returns
    -------
    Tensor
        ``[..., words, words]``.
    """
    T = pattern.shape[-1]
    W = len(spans)
    assign = torch.zeros(T, W, dtype=pattern.dtype)
    for w, (s, e) in enumerate(spans):
        if not 0 <= s < e <= T:
            raise ValueError(f"word {w} has span {(s, e)} outside the {T} tokens")
        assign[s:e, w] = 1
    to_words = pattern @ assign  # sum over the attended word's pieces
    return (assign / assign.sum(0)).transpose(0, 1) @ to_words  # mean over the attending word's pieces
