"""Token-budget batches over length-sorted rows, and per-example stitching of windows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from probekit.model import Example, Window

__all__ = ["token_budget_batches", "stitch_example"]


def token_budget_batches(lengths: Sequence[int], budget: int, *, overhead: int | None = None) -> list[list[int]]:
    """Group row indices into batches whose padded size stays within ``budget`` tokens, padding as little as
    the cost of an extra forward call allows.

    Rows are sorted by length, longest first (ties by index, so the plan is a
    pure function of the lengths), and cut where the total cost is least:
    each batch costs its padded size (``rows * longest``) plus ``overhead``
    tokens for the call itself (default ``budget // 32``, at least 1: 64
    tokens at the default budget, about what a forward call of MiniLM costs on
    a CPU beyond its tokens). Filling every batch to the budget instead pads short
    rows to the length of much longer ones wherever a few hundred rows span a
    wide range of lengths (a 512-sentence shard of treebank sentences: 25%
    padding against 6%). A row longer than the budget runs alone.

    Examples
    --------
    >>> token_budget_batches([3, 10, 4, 9], 20)
    [[1, 3], [2, 0]]
    >>> token_budget_batches([30, 3, 3, 3, 3], 40, overhead=1)  # the long row does not pad the short ones
    [[0], [1, 2, 3, 4]]
    """
    if budget < 1:
        raise ValueError(f"batch_tokens must be >= 1, got {budget}")
    if overhead is None:
        overhead = max(1, budget // 32)
    order = np.array(sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)), dtype=np.int64)
    n = len(order)
    if n == 0:
        return []
    widths = np.asarray(lengths, dtype=np.int64)[order]  # non-increasing: a batch order[i:j] is widths[i] wide
    best = np.zeros(n + 1, dtype=np.float64)  # best[j]: least cost of the first j sorted rows
    cut = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        # a batch order[i:j] fits when (j - i) * widths[i] <= budget; widths[i] grows as i falls, so the
        # starts that fit are a range ending at j - 1 (a single row always runs)
        lo = j - 1
        step = 1
        while lo - step >= 0 and (j - (lo - step)) * widths[lo - step] <= budget:
            lo -= step
            step *= 2
        while step > 1:  # the range is a prefix-closed set: narrow the last doubling step down
            step //= 2
            if lo - step >= 0 and (j - (lo - step)) * widths[lo - step] <= budget:
                lo -= step
        starts = np.arange(lo, j)
        costs = best[starts] + (j - starts) * widths[starts] + overhead
        k = int(np.argmin(costs))  # the first least cost: the longest batch among ties
        best[j], cut[j] = costs[k], starts[k]
    plan: list[list[int]] = []
    j = n
    while j > 0:
        i = int(cut[j])
        plan.append(order[i:j].tolist())
        j = i
    return plan[::-1]


def stitch_example(ex: Example, windows: Sequence[Window], rows: Sequence[torch.Tensor]) -> torch.Tensor:
    """One example's token rows from its windows' rows (as ``HookedModel.run_with_cache``)."""
    pieces = [rows[0][: ex.n_prefix]]
    for w, t in zip(windows, rows):
        a = ex.n_prefix + w.keep_start - w.start
        pieces.append(t[a: a + w.keep_stop - w.keep_start])
    last, t = windows[-1], rows[-1]
    pieces.append(t[len(last.row_ids) - ex.n_suffix: len(last.row_ids)])
    return torch.cat(pieces)
