"""Feature rows and their labels, from memory or from a store, read in bounded chunks.

Every eraser fits on *rows*: ``[n, d]`` features with one class label per row.
:func:`resolve_rows` turns what a user passes (an array, a tensor, an
:class:`~probekit.store.ActivationStore` with a site, or a
:class:`~probekit.store.SiteView`; labels as an array or a probing ``Task``)
into a :class:`Rows` object that yields chunks of a bounded number of rows.
Store rows are read through the store's one row reader
(:meth:`probekit.store.SiteView.reader`, as the probes read them), a chunk of
selected rows at a time (float16 rows are converted chunk by chunk), so the
whole site is never materialised.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from probekit.data import SplitWarning, Task
from probekit.fingerprint import canonical_json, hash_bytes
from probekit.labels import canonical_labels, is_missing
from probekit.model import Site
from probekit.probes import check_alignment
from probekit.store import ActivationStore, SiteView

__all__ = ["Rows", "resolve_rows", "encode_labels", "as_tensor", "labels_digest", "LEVELS"]

logger = logging.getLogger(__name__)

LEVELS = ("token", "word", "sentence")


def _is_store(obj) -> bool:
    return isinstance(obj, ActivationStore)


def _is_view(obj) -> bool:
    return isinstance(obj, SiteView)


def _is_task(obj) -> bool:
    return isinstance(obj, Task)


def encode_labels(labels, n_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check class labels (one per row) and encode them as integer codes.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Class labels; what :func:`probekit.labels.is_missing` calls missing (``None``, NaN, ``pd.NA``, an
        empty or whitespace-only string) is refused, as everywhere in probekit.
    n_rows : int, optional
        The number of feature rows the labels must match.

    Returns
    -------
    classes : ndarray
        The distinct labels, sorted.
    codes : ndarray of int64
        ``classes[codes]`` are the labels.

    Raises
    ------
    ValueError
        Missing labels, a count that differs from ``n_rows``, not one label
        per row, or fewer than two classes.

    Examples
    --------
    >>> classes, codes = encode_labels(["b", "a", "b"])
    >>> classes.tolist(), codes.tolist()
    (['a', 'b'], [1, 0, 1])
    """
    if labels is None:
        raise ValueError("labels are missing: pass one class label per row (or a probing Task with a store)")
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one class label per row (a 1-D array); got shape {y.shape}")
    if n_rows is not None and len(y) != n_rows:
        raise ValueError(f"{len(y)} labels for {n_rows} feature rows: give exactly one label per row")
    if y.dtype.kind in "fc":
        missing = np.isnan(y)
    elif y.dtype.kind in "OU":
        missing = np.fromiter((is_missing(v) for v in y.tolist()), dtype=bool, count=len(y))
        if y.dtype.kind == "O" and not missing.any():
            y = np.asarray(canonical_labels(y), dtype=str)  # 1, 1.0 and "1" are one class
    else:
        missing = np.zeros(len(y), dtype=bool)
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise ValueError(f"{int(missing.sum())} of {len(y)} labels are missing (None, NaN, NA or blank), first at row "
                         f"{first}; drop those rows (``rows=``) or label them")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        what = f"only class {classes[0]!r}" if len(classes) else "no rows"
        raise ValueError(f"erasing a concept needs labels of at least two classes; the rows have {what}")
    return classes, codes.astype(np.int64)


def labels_digest(classes: np.ndarray, codes: np.ndarray) -> str:
    """SHA-256 of the labels of the rows, in order (class names and one code per row)."""
    return hash_bytes(canonical_json([str(c) for c in classes]).encode(), np.asarray(codes, dtype="<i8").tobytes())


@dataclass
class Rows:
    """Rows to fit on: where they come from, their width, labels and a chunked reader.

    ``codes`` index ``classes``; ``describe`` is the provenance recorded in an
    eraser's description (no machine paths: the store is named by its
    fingerprint).
    """

    d: int
    n: int
    classes: np.ndarray | None
    codes: np.ndarray | None
    site: Site | None
    describe: dict
    _array: torch.Tensor | None = None
    _view: object = None
    _level: str = "word"
    _pooling: str | None = None
    _mask: np.ndarray | None = None

    def chunks(self, chunk_rows: int, dtype: torch.dtype | None = None) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        """Yield ``(x, codes)``: at most ``chunk_rows`` selected rows at a time.

        Store rows are read through the store's one reader
        (:meth:`~probekit.store.SiteView.reader`), ``chunk_rows`` selected rows at a time.

        ``x`` is converted to ``dtype`` when given, else left in the source's
        dtype (for in-memory features: a view of the caller's data, never to be
        written).
        """
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        codes = self.codes if self.codes is not None else np.zeros(self.n, dtype=np.int64)
        if self._array is not None:
            for a in range(0, self.n, chunk_rows):
                x = self._array[a: a + chunk_rows]
                yield (x if dtype is None else x.to(dtype)), codes[a: a + chunk_rows]
            return
        reader = self._view.reader(self._level, self._pooling)
        selected = np.arange(reader.n) if self._mask is None else np.flatnonzero(self._mask)
        if len(selected) != self.n:  # the store changed under us: never fit on other rows than were checked
            raise RuntimeError(f"{self.describe.get('site')} has {len(selected)} selected rows but {self.n} were "
                               "checked")
        for a in range(0, self.n, chunk_rows):
            xs = as_tensor(reader.read(selected[a: a + chunk_rows]))
            yield (xs if dtype is None else xs.to(dtype)), codes[a: a + chunk_rows]

    def materialise(self, dtype: torch.dtype = torch.float32, chunk_rows: int = 65536) -> torch.Tensor:
        """All selected rows in memory as one ``[n, d]`` tensor of ``dtype``."""
        if self._array is not None:
            return self._array.to(dtype)
        out = torch.empty((self.n, self.d), dtype=dtype)
        a = 0
        for x, _ in self.chunks(chunk_rows, dtype):
            out[a: a + len(x)] = x
            a += len(x)
        return out


def _row_mask(rows, n_total: int) -> np.ndarray | None:
    if rows is None:
        return None
    r = np.asarray(rows)
    if r.dtype == bool:
        if r.shape != (n_total,):
            raise ValueError(f"a boolean rows mask must have one entry per row ({n_total}); got shape {r.shape}")
        return r
    if r.dtype.kind not in "iu" or r.ndim != 1:
        raise ValueError("rows must be a boolean mask or a 1-D array of row indices")
    if len(r) and (r.min() < -n_total or r.max() >= n_total):
        raise ValueError(f"row indices out of range for {n_total} rows")
    mask = np.zeros(n_total, dtype=bool)
    mask[r] = True
    if mask.sum() != len(r):
        raise ValueError("row indices must be distinct")
    return mask


def as_tensor(a) -> torch.Tensor:
    """``a`` as a tensor sharing memory where possible (a read-only memory map is only read, never written)."""
    if isinstance(a, torch.Tensor):
        return a
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a)))


def _check_features(x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D array [rows, d]; got shape {tuple(x.shape)}")
    if not (x.dtype.is_floating_point or x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64)):
        raise ValueError(f"features must be numeric; got {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"features are empty (shape {tuple(x.shape)})")
    return x


def _task_rows(task, level: str | None, split: str | None):
    if task.level not in ("word", "sentence"):
        raise ValueError(f"task {task.name!r} is {task.level}-level: an eraser is fitted on the rows of one site, so "
                         "it needs a word- or sentence-level task (one label per row)")
    if level is not None and level != task.level:
        raise ValueError(f"task {task.name!r} labels {task.level} rows, not {level} rows")
    ds = task.dataset
    labels = np.asarray(canonical_labels(ds.flat_labels()), dtype=str)
    splits = np.asarray(ds.splits)
    if task.level == "word":
        splits = np.repeat(splits, [len(r) for r in ds.labels])
    if split is None:
        split = "train" if "train" in set(ds.splits) else None
        if split is None:
            warnings.warn(SplitWarning(f"task {task.name!r} has no 'train' split (it has "
                                       f"{', '.join(sorted(set(ds.splits)))}): the eraser is fitted on every row; "
                                       "pass split=... to choose"), stacklevel=4)
    mask = None
    if split is not None:
        if split not in set(ds.splits):
            raise ValueError(f"task {task.name!r} has no {split!r} split (it has {sorted(set(ds.splits))})")
        mask = splits == split
    return task.level, labels, mask, split


def store_model(store) -> dict:
    """The identity of the model a store was extracted from: its weights hash, name and width."""
    manifest = store.manifest
    model = manifest.get("model") or {}
    return {"name": model.get("name"), "weights": (manifest.get("components") or {}).get("weights"),
            "d_model": model.get("d_model")}


def resolve_rows(X, y=None, *, site=None, level: str | None = None, pooling: str | None = None, rows=None,
                 split: str | None = None, need_labels: bool = True) -> Rows:
    """Normalise what an eraser is fitted on into :class:`Rows`.

    Parameters
    ----------
    X : array-like [n, d], torch.Tensor, ActivationStore or SiteView
        In-memory features, or a store (read at ``site``) or one site's view.
    y : array-like, Task or None
        One label per row of ``X`` (per row of the chosen level for a store),
        or a word/sentence-level ``Task`` whose examples the store holds
        (checked with :func:`probekit.probes.check_alignment`).
    site : Site or str, optional
        The site to read from a store; recorded for in-memory features.
    level : {"token", "word", "sentence"}, optional
        Store rows to read (default: the task's level, else ``"word"``).
    pooling : str, optional
        Word/sentence pooling of the stored rows (default ``"mean"``).
    rows : bool mask or indices, optional
        The rows to use (default: all rows, or the task's ``split``).
    split : str, optional
        With a ``Task``: the split whose rows to use (default ``"train"``).
    need_labels : bool
        Labels are required (erasers fitted on a concept) or ignored.
    """
    site = Site.parse(site) if site is not None else None
    if _is_view(X):
        if site is not None and site != X.site:
            raise ValueError(f"site {site} given for a view of site {X.site}")
        view, store, site = X, X.store, X.site
    elif _is_store(X):
        if site is None:
            raise ValueError("fitting from a store needs the site to read: set the eraser's site (e.g. 'L3.resid')")
        store = X
        if site not in store:
            raise KeyError(f"site {site} is not in store {store.path}; stored: {', '.join(map(str, store.sites))}")
        view = store[site]
    else:
        return _array_rows(X, y, site, rows, need_labels, level, pooling, split)
    if site.is_attention:
        raise ValueError(f"{site} is an attention pattern, not feature rows: erase at a token-level site")
    task = y if _is_task(y) else None
    labels, mask = None, None
    if task is not None:
        level, labels, mask, split = _task_rows(task, level, split)
        check_alignment(store, task)
    elif split is not None:
        raise ValueError("split= selects the rows of a Task's split; with plain labels pass rows= instead")
    else:
        labels = y
    level = level or "word"
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    if level == "token":
        if pooling is not None:
            raise ValueError("token rows are not pooled: leave pooling unset for level='token'")
        per = np.asarray(store.n_tokens, dtype=np.int64)
    else:
        pooling = pooling or "mean"
        per = np.asarray(store.n_words if level == "word" else np.ones(store.n_examples), dtype=np.int64)
    n_total = int(per.sum())
    if labels is not None or need_labels:
        if labels is None:
            raise ValueError("labels are missing: pass one label per row or a Task")
        labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError(f"labels must be one class label per row (a 1-D array); got shape {labels.shape}")
        if len(labels) != n_total:
            raise ValueError(f"{len(labels)} labels for the {n_total} {level} rows of {store.path} at {site}: give one "
                             f"label per {level} row (in store order), or a Task")
    user_mask = _row_mask(rows, n_total)
    if user_mask is not None:
        mask = user_mask if mask is None else mask & user_mask
    n = n_total if mask is None else int(mask.sum())
    if n < 2:
        raise ValueError(f"{n} rows selected: an eraser needs at least two rows")
    classes = codes = None
    if labels is not None and need_labels:
        classes, codes = encode_labels(labels if mask is None else labels[mask], n)
    describe = {"source": "store", "store_fingerprint": store.fingerprint, "site": str(site), "level": level,
                "pooling": pooling, "rows": n, "model": store_model(store)}
    if task is not None:
        describe.update(task=task.name, task_seed=int(task.seed), split=split)
    if user_mask is not None:
        describe["rows_sha256"] = hash_bytes(np.flatnonzero(mask).astype("<i8").tobytes())
    if codes is not None:
        describe["labels_sha256"] = labels_digest(classes, codes)
    return Rows(view.d, n, classes, codes, site, describe, _view=view, _level=level, _pooling=pooling, _mask=mask)


def _array_rows(X, y, site, rows, need_labels, level, pooling, split) -> Rows:
    if _is_task(y):
        raise ValueError("a Task labels the rows of a store: pass the store (or store[site]) as X, or plain labels")
    if level is not None or pooling is not None or split is not None:
        raise ValueError("level, pooling and split select store rows; for in-memory features pass rows= instead")
    x = as_tensor(X)
    x = _check_features(x.detach().cpu())
    mask = _row_mask(rows, x.shape[0])
    if mask is not None:
        x = x[torch.from_numpy(mask)]
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"{n} rows given: an eraser needs at least two rows")
    classes = codes = None
    if need_labels or y is not None:
        if y is None:
            raise ValueError("labels are missing: pass one class label per row")
        yy = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if yy.ndim == 1 and mask is not None and len(yy) == len(mask):
            yy = yy[mask]
        if need_labels:
            classes, codes = encode_labels(yy, n)
    describe = {"source": "array", "rows": n}
    if codes is not None:
        describe["labels_sha256"] = labels_digest(classes, codes)
    return Rows(x.shape[1], n, classes, codes, site, describe, _array=x)
