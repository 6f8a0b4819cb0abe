"""On-disk activation stores: :func:`extract` writes one, :class:`ActivationStore` reads it.

:func:`derive` writes pooled rows of some of a store's examples from its
token rows (or from several stores of one model), without running the model
again: extract once, analyse many.

Besides the store itself, the helpers other packages and research scripts
build on: :func:`resolve_sites` (what ``sites="resid"`` means for a model),
:func:`load_source` (data named on the command line), :func:`native_bf16`
(whether bf16 autocast is native on a device), :func:`token_budget_batches`
(the batch plan of an extraction), :class:`RowView` (rows sliced shard by
shard, from :meth:`SiteView.row_view`) and the atomic JSON files every probekit
folder uses (:func:`write_json_atomic`, :func:`read_json`).

Examples
--------
>>> from probekit.store import token_budget_batches
>>> token_budget_batches([3, 9, 4, 8], budget=18)
[[1, 3], [2, 0]]
"""

from probekit.store._batching import token_budget_batches
from probekit.store._data import ExtractData, as_data, load_source
from probekit.store._derive import MissingExamplesError, derive, find_examples
from probekit.store._errors import StoreLockedError
from probekit.store._extract import extract, native_bf16, resolve_sites
from probekit.store._manifest import (
    FORMAT_VERSION,
    CorruptShardError,
    FingerprintMismatchError,
    StoreError,
    read_json,
    write_json_atomic,
)
from probekit.store._row_view import RowView
from probekit.store._rows import RowReader
from probekit.store._store import ActivationStore, Batch, SiteView
from probekit.store._transfer import Transfer, list_stores, pull, push, verify_store

__all__ = [
    "ActivationStore",
    "Batch",
    "CorruptShardError",
    "ExtractData",
    "FORMAT_VERSION",
    "FingerprintMismatchError",
    "MissingExamplesError",
    "RowReader",
    "RowView",
    "SiteView",
    "StoreError",
    "StoreLockedError",
    "Transfer",
    "as_data",
    "derive",
    "extract",
    "find_examples",
    "list_stores",
    "load_source",
    "native_bf16",
    "pull",
    "push",
    "read_json",
    "resolve_sites",
    "token_budget_batches",
    "verify_store",
    "write_json_atomic",
]
