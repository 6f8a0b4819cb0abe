"""The store's file names, format version and errors: what every other store module shares."""

from __future__ import annotations

__all__ = ["FORMAT_VERSION", "MANIFEST", "EXAMPLES", "LOCK", "StoreError", "FingerprintMismatchError",
           "CorruptShardError", "StoreLockedError", "Float16OverflowError"]

#: Bumped whenever the on-disk layout or the fingerprint components change; part of the fingerprint.
#: 3: the manifest is checksummed and records the checksums of examples.parquet and of every sidecar.
#: 4: the fingerprint covers the module tree's settings, the config and the attention implementation
#:    (component ``forward``), and the weights are hashed in full at every extraction.
FORMAT_VERSION = 4
MANIFEST = "manifest.json"
EXAMPLES = "examples.parquet"
#: the writer's lock file, present only while a process writes the store (or after one was killed)
LOCK = "probekit.lock"


class StoreError(RuntimeError):
    """A store directory is missing, incomplete, unreadable, or holds what a store may not."""


class FingerprintMismatchError(StoreError):
    """A store was made from other weights, data or settings than requested."""


class CorruptShardError(StoreError):
    """A shard's bytes do not match its checksum (truncated or corrupted)."""


class StoreLockedError(StoreError):
    """Another process is writing the store directory (its lock names the holder)."""


class Float16OverflowError(ValueError):
    """Rows bound for a float16 store hold values beyond its range (they would be stored as inf)."""
