"""The store manifest: format version, fingerprint, atomic JSON writes.

A store directory is only ever read through its ``manifest.json``. The
manifest names everything that determines the bytes of the store (the
*fingerprint components*): the weights, the variant recipe, the data, the
sites, the tokenization and pooling settings, the dtype, the shard layout and
the store format version. The fingerprint is the SHA-256 of those components
in canonical JSON (:func:`probekit.fingerprint.hash_json`), so two
extractions with the same fingerprint produce the same bytes.

Every file of a store is covered by a checksum: the manifest carries the
SHA-256 of its own content (``manifest_sha256``), the checksum of
``examples.parquet`` (``files``) and, once complete, the SHA-256 of every
shard sidecar (``shards``); each sidecar carries its own SHA-256 and the
checksums of its shard's data files. :func:`read_manifest` checks the shape
of a manifest (so a hand-edited one is a :class:`StoreError` that names the
problem) and then its checksum.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from probekit.fingerprint import canonical_json, hash_json

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "StoreError",
    "FingerprintMismatchError",
    "CorruptShardError",
    "check_manifest",
    "read_json",
    "read_manifest",
    "write_json_atomic",
    "write_manifest",
    "describe_mismatch",
]

#: Bumped whenever the on-disk layout changes; part of the fingerprint.
#: 3: the manifest is checksummed and records the checksums of examples.parquet and of every sidecar.
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
EXAMPLES = "examples.parquet"


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


def _manifest_hash(manifest: Mapping[str, Any]) -> str:
    return hash_json({k: v for k, v in manifest.items() if k != "manifest_sha256"})


def write_manifest(path: str | os.PathLike, manifest: Mapping[str, Any]) -> dict:
    """Write ``manifest`` atomically with its own checksum (``manifest_sha256``); returns what was written."""
    out = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    out["manifest_sha256"] = _manifest_hash(out)
    write_json_atomic(path, out)
    return out


#: key -> (accepted types, description) of every manifest; ``complete`` ones also need ``_COMPLETE``
_SHAPE: dict[str, tuple[tuple[type, ...], str]] = {
    "fingerprint": ((str,), "a string"),
    "components": ((dict,), "a mapping"),
    "complete": ((bool,), "true or false"),
    "model": ((dict,), "a mapping"),
    "sites": ((list,), "a list"),
    "settings": ((dict,), "a mapping"),
    "n_examples": ((int,), "an integer"),
    "n_shards": ((int,), "an integer"),
    "files": ((dict,), "a mapping"),
}
_COMPLETE: dict[str, tuple[tuple[type, ...], str]] = {
    "n_tokens": ((int,), "an integer"),
    "n_words": ((int,), "an integer"),
    "shards": ((list,), "a list"),
}
_SETTINGS: dict[str, tuple[tuple[type, ...], str]] = {
    "dtype": ((str,), "a string"),
    "tokens": ((bool,), "true or false"),
    "word_pooling": ((list,), "a list"),
    "sentence_pooling": ((list,), "a list"),
    "shard_size": ((int,), "an integer"),
}


def _is_type(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _describe(value: Any) -> str:
    """``the string '3'``, ``the boolean true``, ``null``, ``a list``...: a manifest value in words."""
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return {list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def check_manifest(manifest: Any, where: str) -> None:
    """Raise :class:`StoreError` naming the first problem of a manifest's shape, version or checksum."""
    if not isinstance(manifest, dict):
        raise StoreError(f"{where} is not a probekit manifest: it holds {_describe(manifest)}, not a mapping")
    version = manifest.get("format_version", None)
    if "format_version" not in manifest:
        raise StoreError(f"{where} has no 'format_version': it is not a probekit manifest, or was edited by hand")
    if not _is_type(version, (int,)):
        raise StoreError(f"{where}: 'format_version' must be an integer, not {_describe(version)} "
                         "(edited by hand?); re-extract the store")
    if version != FORMAT_VERSION:
        raise StoreError(f"{where} has store format version {version}; this probekit reads version "
                         f"{FORMAT_VERSION}. Re-extract it.")
    shape = dict(_SHAPE, **(_COMPLETE if manifest.get("complete") is True else {}))
    for key, (types, what) in shape.items():
        if key not in manifest:
            raise StoreError(f"{where} has no {key!r} (edited by hand or damaged); re-extract the store")
        if not _is_type(manifest[key], types):
            raise StoreError(f"{where}: {key!r} must be {what}, not {_describe(manifest[key])} "
                             "(edited by hand or damaged); re-extract the store")
    for key, (types, what) in _SETTINGS.items():
        value = manifest["settings"].get(key)
        if not _is_type(value, types):
            raise StoreError(f"{where}: 'settings.{key}' must be {what}, not {_describe(value)} "
                             "(edited by hand or damaged); re-extract the store")
    for key in ("weights", "data"):
        if key not in manifest["components"]:
            raise StoreError(f"{where}: 'components' has no {key!r} (edited by hand or damaged); re-extract the store")
    if "name" not in manifest["model"]:
        raise StoreError(f"{where}: 'model' has no 'name' (edited by hand or damaged); re-extract the store")
    if not all(isinstance(s, str) for s in manifest["sites"]) or not manifest["sites"]:
        raise StoreError(f"{where}: 'sites' must be a non-empty list of site names (edited by hand or damaged)")
    if manifest["n_examples"] < 1 or manifest["n_shards"] < 1:
        raise StoreError(f"{where}: 'n_examples' and 'n_shards' must be at least 1 (edited by hand or damaged)")
    if manifest.get("complete") and len(manifest["shards"]) != manifest["n_shards"]:
        raise StoreError(f"{where} records {len(manifest['shards'])} shard checksums for "
                         f"{manifest['n_shards']} shards (edited by hand or damaged)")
    if hash_json(manifest["components"]) != manifest["fingerprint"]:
        raise StoreError(f"{where}: 'fingerprint' is not the hash of 'components' (edited by hand or damaged); "
                         "re-extract the store")
    if "manifest_sha256" not in manifest:
        raise StoreError(f"{where} carries no checksum ('manifest_sha256'; edited by hand?); re-extract the store")
    if manifest["manifest_sha256"] != _manifest_hash(manifest):
        raise StoreError(f"{where} does not match its checksum (edited by hand or damaged); re-extract the store, "
                         "or re-run the same extraction to repair it")


def read_manifest(path: str | os.PathLike) -> dict:
    """Read and check a manifest (see :func:`check_manifest`); ``FileNotFoundError`` when absent."""
    manifest = read_json(path)
    check_manifest(manifest, str(path))
    return manifest


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
