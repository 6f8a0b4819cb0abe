"""Reading selected rows of one level of a site, chunk by chunk, without keeping them mapped.

:meth:`SiteView.numpy` returns the memory map itself: every page a reader touches stays resident
(and counts in the process's RSS) for as long as the store is open. A :class:`RowReader` maps a
stream only for the duration of one read, copies the requested rows out in the store's dtype (or
the one asked for) and unmaps it again, so the memory of a computation that reads a store chunk by
chunk is the size of a chunk, whatever the size of the store.
"""

from __future__ import annotations

import logging

import numpy as np

from probekit.store._shards import open_stream

__all__ = ["RowReader", "PooledRows", "row_reader"]

logger = logging.getLogger(__name__)


class RowReader:
    """Rows of one stored level (``"token"``, ``"word"`` or ``"sentence"``) of one site.

    Obtain one with ``store[site].rows(level, how)``. Rows are numbered across
    shards in store order, as in ``store[site].numpy(level, how)``.

    Attributes
    ----------
    n : int
        Number of rows.
    d : int
        Row width.
    dtype : numpy.dtype
        The stored dtype (``float16`` rows stay ``float16`` unless
        :meth:`read` is asked for another dtype).

    Examples
    --------
    >>> import probekit, tempfile, transformers
    >>> m = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> store = probekit.extract(m, [["the", "cats", "slept"], ["it", "rained"]], ["L1.resid"],
    ...                          tempfile.mkdtemp() + "/acts", word_pooling=("mean",))
    >>> reader = store["L1.resid"].rows("word", "mean")
    >>> reader.n, reader.d
    (5, 32)
    >>> reader.read(np.arange(3), dtype=np.float32).shape
    (3, 32)
    """

    def __init__(self, store, name: str):
        self._store = store
        self._name = name
        infos = [sc["streams"][name] for sc in store._sidecars]
        counts = np.array([int(info["shape"][0]) for info in infos], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self.n = int(self._starts[-1])
        self.d = int(infos[0]["shape"][1])
        self.dtype = np.dtype(infos[0]["dtype"])
        self.name = name

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"RowReader({self._name}, {self.n} rows x {self.d}, {self.dtype})"

    @property
    def itemsize(self) -> int:
        """Bytes of one stored row."""
        return self.d * self.dtype.itemsize

    def read(self, rows, dtype=None) -> np.ndarray:
        """Rows ``rows`` (any order, repeats allowed) as a new ``[len(rows), d]`` array.

        Parameters
        ----------
        rows : array-like of int
        dtype : numpy dtype, optional
            Default: the stored dtype.
        """
        rows = np.asarray(rows, dtype=np.int64).ravel()
        out = np.empty((len(rows), self.d), dtype=self.dtype if dtype is None else dtype)
        if len(rows) == 0:
            return out
        if rows.min() < 0 or rows.max() >= self.n:
            raise IndexError(f"row {int(rows.min() if rows.min() < 0 else rows.max())} is out of range; "
                             f"{self._name} has {self.n} rows")
        shard = np.searchsorted(self._starts, rows, side="right") - 1
        for k in np.unique(shard):
            k = int(k)
            where = np.flatnonzero(shard == k)
            local = rows[where] - self._starts[k]
            self._store._check(k, self._name)
            mm = open_stream(self._store.path / "shards", self._store._sidecars[k], self._name)
            try:
                lo, hi = int(local.min()), int(local.max()) + 1
                if hi - lo == len(local) and np.all(np.diff(local) == 1):
                    out[where] = mm[lo:hi]  # one contiguous span: a plain sequential read
                else:
                    out[where] = mm[local]
            finally:
                del mm  # unmapped here: the pages read do not stay resident in this process
        return out


class PooledRows:
    """Rows of a level the store did not keep, pooled from each example's token rows when read.

    The same interface as :class:`RowReader` (``n``, ``d``, ``dtype``,
    :meth:`read`): only the examples holding the requested rows are pooled,
    so reading in chunks stays within the memory of a chunk.
    """

    def __init__(self, view, level: str, how: str):
        self._view, self._level, self._how = view, level, how
        store = view.store
        per = np.ones(store.n_examples, dtype=np.int64) if level == "sentence" else np.asarray(store.n_words)
        self._starts = np.concatenate([[0], np.cumsum(per, dtype=np.int64)])
        self.n = int(self._starts[-1])
        self.d = int(view.d)
        self.dtype = np.dtype(store.dtype)
        self.name = f"{view.site} {level} rows pooled by {how!r}"

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"PooledRows({self.name}, {self.n} rows x {self.d}, {self.dtype})"

    def _example(self, i: int) -> np.ndarray:
        if self._level == "sentence":
            return np.asarray(self._view._sentence(i, self._how))[None]
        return np.asarray(self._view.words(i, self._how))

    def read(self, rows, dtype=None) -> np.ndarray:
        """Rows ``rows`` (any order, repeats allowed) as a new ``[len(rows), d]`` array, as :meth:`RowReader.read`."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        out = np.empty((len(rows), self.d), dtype=self.dtype if dtype is None else dtype)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n):
            raise IndexError(f"row {int(rows.min() if rows.min() < 0 else rows.max())} is out of range; "
                             f"{self.name} has {self.n} rows")
        example = np.searchsorted(self._starts, rows, side="right") - 1
        for e in np.unique(example):
            where = np.flatnonzero(example == e)
            out[where] = self._example(int(e))[rows[where] - self._starts[e]]
        return out


def row_reader(view, level: str, how: str | None) -> RowReader | PooledRows:
    """The one reader of a site's rows at ``level``: the stored rows, else rows pooled from tokens on read."""
    try:
        return view.rows(level, how)
    except KeyError:
        if level == "token":
            raise
        logger.info("%s: %s rows pooled by %r are not stored; pooling them from the token rows as they are read",
                    view.site, level, how)
        return PooledRows(view, level, how)
