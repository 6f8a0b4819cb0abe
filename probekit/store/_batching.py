"""Token-budget batches over length-sorted rows, and per-example stitching of windows."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from probekit.model import Example, Window

__all__ = ["token_budget_batches", "stitch_example"]


def token_budget_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Group row indices into batches whose padded size stays within ``budget`` tokens.

    Rows are sorted by length, longest first (ties by index, so the plan is a
    pure function of the lengths), then cut greedily: a batch grows while
    ``rows * longest <= budget``. A row longer than the budget runs alone.

    Examples
    --------
    >>> token_budget_batches([3, 10, 4, 9], 20)
    [[1, 3], [2, 0]]
    """
    if budget < 1:
        raise ValueError(f"batch_tokens must be >= 1, got {budget}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        n = lengths[i]
        if current and (len(current) + 1) * max(width, n) > budget:
            batches.append(current)
            current, width = [], 0
        current.append(i)
        width = max(width, n)
    if current:
        batches.append(current)
    return batches


def stitch_example(ex: Example, windows: Sequence[Window], rows: Sequence[torch.Tensor]) -> torch.Tensor:
    """One example's token rows from its windows' rows (as ``HookedModel.run_with_cache``)."""
    pieces = [rows[0][: ex.n_prefix]]
    for w, t in zip(windows, rows):
        a = ex.n_prefix + w.keep_start - w.start
        pieces.append(t[a: a + w.keep_stop - w.keep_start])
    last, t = windows[-1], rows[-1]
    pieces.append(t[len(last.row_ids) - ex.n_suffix: len(last.row_ids)])
    return torch.cat(pieces)
