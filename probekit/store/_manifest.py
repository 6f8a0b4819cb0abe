"""The store manifest: format version, fingerprint, atomic JSON writes.

A store directory is only ever read through its ``manifest.json``. The
manifest names everything that determines the bytes of the store (the
*fingerprint components*): the weights, the variant recipe, the data, the
sites, the tokenization and pooling settings, the dtype, the shard layout and
the store format version. The fingerprint is the SHA-256 of those components
in canonical JSON (:func:`probekit.fingerprint.hash_json`), so two
extractions with the same fingerprint produce the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from probekit.fingerprint import canonical_json

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "StoreError",
    "FingerprintMismatchError",
    "CorruptShardError",
    "read_json",
    "write_json_atomic",
    "describe_mismatch",
]

#: Bumped whenever the on-disk layout changes; part of the fingerprint.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"


class StoreError(RuntimeError):
    """A store directory is missing, incomplete or unreadable."""


class FingerprintMismatchError(StoreError):
    """A store was made from other weights, data or settings than requested."""


class CorruptShardError(StoreError):
    """A shard's bytes do not match its checksum (truncated or corrupted)."""


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path.tmp``, fsync, then rename over ``path``.

    A reader sees either the old file or the complete new one, never a
    partial write, also when the process is killed mid-way.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(obj, sort_keys=True, indent=1, allow_nan=False).encode()
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; raise :class:`StoreError` naming the file when unreadable."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path} is unreadable or not valid JSON ({exc})") from exc


def describe_mismatch(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """Name the fingerprint components that differ, in words a user can act on."""
    names = {
        "weights": "model weights",
        "recipe": "variant recipe",
        "data": "data",
        "sites": "sites",
        "tokenization": "tokenization settings",
        "pooling": "pooling settings",
        "dtype": "dtype",
        "layout": "shard layout (shard size; the batch token budget for batch-dependent models such as dynamic int8)",
        "format_version": "store format version",
    }
    diffs = []
    for key in sorted(set(found) | set(wanted)):
        a, b = found.get(key), wanted.get(key)
        if a == b:
            continue
        what = names.get(key, key)
        if isinstance(a, dict) and isinstance(b, dict):
            sub = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            diffs.append(f"{what} [{', '.join(sub)}] (store: {_short({k: a.get(k) for k in sub})}; "
                         f"requested: {_short({k: b.get(k) for k in sub})})")
        else:
            diffs.append(f"{what} (store: {_short(a)}; requested: {_short(b)})")
    return "; ".join(diffs) if diffs else "no component differs"


def _short(value: Any) -> str:
    text = canonical_json(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
