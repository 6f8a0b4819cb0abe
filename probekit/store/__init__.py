"""On-disk activation stores: :func:`extract` writes one, :class:`ActivationStore` reads it."""

from probekit.store._extract import extract
from probekit.store._manifest import FORMAT_VERSION, CorruptShardError, FingerprintMismatchError, StoreError
from probekit.store._rows import RowReader
from probekit.store._store import ActivationStore, Batch, SiteView

__all__ = [
    "ActivationStore",
    "Batch",
    "CorruptShardError",
    "FORMAT_VERSION",
    "FingerprintMismatchError",
    "RowReader",
    "SiteView",
    "StoreError",
    "extract",
]
