"""Attention heads as dependency parsers (Clark et al. 2019, section 4).

For each head and relation, the prediction for a word is the word it attends
to most (itself excluded, since no word heads itself). Two directions are
scored: ``dep->head`` (the dependent's most attended word is its head) and
``head->dep`` (the head's most attended word is the dependent). The baseline
predicts a fixed offset ``head = i + k`` with the best ``k`` per relation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

__all__ = ["DependencyHeadAccuracy", "fixed_offset_baseline"]


@dataclass
class DependencyHeadAccuracy:
    """Accumulates per (block, head, relation, direction) accuracy over sentences.

    ``heads`` follow UD: 1-based head index per word, 0 for the root (roots
    are not scored).

    Examples
    --------
    >>> acc = DependencyHeadAccuracy()
    >>> attn = torch.tensor([[[0., 1., 0.], [0., 0., 1.], [0., 1., 0.]]])  # 1 head, 3 words
    >>> acc.update(0, attn, heads=[2, 0, 2], relations=["det", "root", "obj"])
    >>> acc.to_frame().query("direction == 'dep->head'")[["relation", "accuracy"]].values.tolist()
    [['det', 1.0], ['obj', 1.0]]
    """

    _hits: dict = field(default_factory=lambda: defaultdict(float))
    _totals: dict = field(default_factory=lambda: defaultdict(int))

    def update(self, block: int, word_attn: torch.Tensor, *, heads: Sequence[int], relations: Sequence[str]) -> None:
        """Add one sentence: ``word_attn`` is ``[n_heads, W, W]``, the pattern ``L{block}.attn.pattern``."""
        a = word_attn.detach().double().clone()
        W = a.shape[-1]
        if len(heads) != W or len(relations) != W:
            raise ValueError(f"{W} words in the attention but {len(heads)} heads and {len(relations)} relations")
        idx = torch.arange(W)
        a[:, idx, idx] = -np.inf
        pred = a.argmax(-1).numpy()  # [n_heads, W]: most attended other word of each word
        for i, (h, rel) in enumerate(zip(heads, relations)):
            if h == 0:
                continue
            if not 1 <= h <= W:
                raise ValueError(f"word {i}: head {h} outside 1..{W}")
            gold = h - 1
            for d, hits in (("dep->head", pred[:, i] == gold), ("head->dep", pred[:, gold] == i)):
                for head_idx, hit in enumerate(hits):
                    key = (block, head_idx, rel, d)
                    self._hits[key] += float(hit)
                    self._totals[key] += 1

    def to_frame(self) -> pd.DataFrame:
        """Tidy rows ``layer, block, head, relation, direction, accuracy, n`` (``layer = block + 1``)."""
        rows = [(k[0] + 1, *k, self._hits[k] / n, n) for k, n in sorted(self._totals.items())]
        return pd.DataFrame(rows, columns=["layer", "block", "head", "relation", "direction", "accuracy", "n"])

    def best_heads(self) -> pd.DataFrame:
        """For each relation, the best (block, head, direction) and its accuracy (with its ``layer``)."""
        df = self.to_frame()
        if df.empty:
            return df
        best = df.loc[df.groupby("relation")["accuracy"].idxmax()]
        return best.sort_values("n", ascending=False).reset_index(drop=True)


def fixed_offset_baseline(sentences: Sequence[tuple[Sequence[int], Sequence[str]]],
                          offsets: Sequence[int] = tuple(k for k in range(-5, 6) if k)) -> pd.DataFrame:
    """Best fixed-offset accuracy per relation: predict ``head = i + k``.

    Parameters
    ----------
    sentences : sequence of (heads, relations)
        UD heads (1-based, 0 = root) and relation labels per sentence.
    offsets : sequence of int
        Offsets tried.

    Returns
    -------
    DataFrame
        ``relation, offset, accuracy, n``.
    """
    hits: dict = defaultdict(lambda: np.zeros(len(offsets)))
    totals: dict = defaultdict(int)
    for heads, relations in sentences:
        for i, (h, rel) in enumerate(zip(heads, relations)):
            if h == 0:
                continue
            hits[rel] += np.array([(i + k) == h - 1 for k in offsets], dtype=float)
            totals[rel] += 1
    rows = []
    for rel, n in sorted(totals.items()):
        best = int(np.argmax(hits[rel]))
        rows.append((rel, offsets[best], hits[rel][best] / n, n))
    return pd.DataFrame(rows, columns=["relation", "offset", "accuracy", "n"])
