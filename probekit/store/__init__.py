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

One line per file:

- ``_batching``: Token-budget batches over length-sorted rows, and per-example stitching of windows.
- ``_cache``: Reading a store at a URL through a verified local cache.
- ``_data``: What :func:`probekit.extract` accepts as data, normalised to one form.
- ``_derive``: :func:`derive`: a store of pooled rows made from other stores of the same model, without the model.
- ``_distributed``: Data parallelism: rank and world size from the launcher; ranks share failures and statistics.
- ``_errors``: The store's file names, format version and errors: what every other store module shares.
- ``_extract``: :func:`extract`: run a model over data and write an :class:`ActivationStore`.
- ``_layout``: What probekit writes into a store directory, and nothing else: the only files it will ever delete.
- ``_localfs``: Opening a local store's files as untrusted input: regular files and directories only, no links.
- ``_lock``: One writer at a time: a store folder is locked while it is written.
- ``_manifest``: The store manifest: format version, fingerprint, atomic JSON writes.
- ``_remote``: Stores at fsspec URLs (``s3://bucket/run``, ``memory://x``, ``hf://...``): the object layer.
- ``_remote_write``: Writing a store at a URL: shards staged locally, uploaded, committed by their sidecar.
- ``_row_view``: :class:`RowView`, a row-sliceable view over a site's shards that never concatenates them.
- ``_rows``: The one row reader (``store[site].reader(level, how)``): stored rows chunk by chunk, unmapped after
  each read (:class:`RowReader`), or rows pooled from tokens as they are read.
- ``_shards``: Shards: one range of examples, one flat binary file per stream, a checksummed sidecar.
- ``_store``: Reading a store: :class:`ActivationStore` and its per-site memory-mapped views.
- ``_transfer``: Moving stores between a disk and a URL: :func:`push`, :func:`pull`, :func:`verify_store`.
- ``_validate``: A store is untrusted input: its JSON and every name, size, shape and dtype it declares are checked.
- ``_writer``: Background writing of captured activations into a shard (overlapped with compute).

Examples
--------
>>> from probekit.store import token_budget_batches
>>> token_budget_batches([3, 9, 4, 8], budget=18)
[[1, 3], [2, 0]]
"""

from probekit.store._batching import token_budget_batches
from probekit.store._data import ExtractData, as_data, load_source
from probekit.store._derive import MissingExamplesError, derive, find_examples
from probekit.store._errors import Float16OverflowError, StoreLockedError
from probekit.store._extract import POOLED_SHARD_SIZE, SHARD_SIZE, extract, native_bf16, resolve_sites
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
    "SHARD_SIZE",
    "POOLED_SHARD_SIZE",
    "ActivationStore",
    "Batch",
    "CorruptShardError",
    "ExtractData",
    "FORMAT_VERSION",
    "FingerprintMismatchError",
    "Float16OverflowError",
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
