"""A row-sliceable view over a site's shards that never concatenates them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["RowView"]


class RowView:
    """All rows of one site level, read shard by shard.

    ``view[a:b]`` copies only rows ``a`` to ``b`` out of the memory-mapped
    shards that hold them, so streaming computations (e.g. CKA over a store
    larger than memory) slice it chunk by chunk. Made by
    :meth:`probekit.store.SiteView.row_view`.

    Examples
    --------
    >>> import numpy as np
    >>> v = RowView([np.arange(6).reshape(3, 2), np.arange(6, 10).reshape(2, 2)])
    >>> len(v), v[2:4].tolist()
    (5, [[4, 5], [6, 7]])
    """

    def __init__(self, parts: Sequence[np.ndarray]):
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, sl: slice) -> np.ndarray:
        if not isinstance(sl, slice) or sl.step not in (None, 1):
            raise TypeError("a RowView takes a contiguous slice of rows, e.g. view[a:b]")
        a, b, _ = sl.indices(len(self))
        out = []
        for k, p in enumerate(self.parts):
            lo, hi = max(a, self.starts[k]), min(b, self.starts[k + 1])
            if lo < hi:
                out.append(np.asarray(p[lo - self.starts[k]: hi - self.starts[k]]))
        if not out:
            shape = self.parts[0].shape[1:] if self.parts else (0,)
            return np.empty((0, *shape), dtype=self.parts[0].dtype if self.parts else np.float32)
        return np.concatenate(out) if len(out) > 1 else out[0]
