"""The store's file names, format version and errors: what every other store module shares."""

from __future__ import annotations

__all__ = ["FORMAT_VERSION", "MANIFEST", "EXAMPLES", "StoreError", "FingerprintMismatchError", "CorruptShardError"]

#: Bumped whenever the on-disk layout changes; part of the fingerprint.
#: 3: the manifest is checksummed and records the checksums of examples.parquet and of every sidecar.
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
EXAMPLES = "examples.parquet"


class StoreError(RuntimeError):
    """A store directory is missing, incomplete, unreadable, or holds what a store may not."""


class FingerprintMismatchError(StoreError):
    """A store was made from other weights, data or settings than requested."""


class CorruptShardError(StoreError):
    """A shard's bytes do not match its checksum (truncated or corrupted)."""
