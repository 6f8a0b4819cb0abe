"""The store manifest: format version, fingerprint, atomic JSON writes.

A store directory is only ever read through its ``manifest.json``. The
manifest names everything that determines the bytes of the store (the
*fingerprint components*): the weights, what else the forward depends on (the
module settings, the config, the attention implementation: ``forward``), the
variant recipe, the data, the sites, the tokenization and pooling settings, the
dtype, the shard layout and the store format version. The fingerprint is the SHA-256 of those components
in canonical JSON (:func:`probekit.fingerprint.hash_json`), so two
extractions with the same fingerprint produce the same bytes.

Every file of a store is covered by a checksum: the manifest carries the
SHA-256 of its own content (``manifest_sha256``), the checksum of
``examples.parquet`` (``files``) and, once complete, the SHA-256 of every
shard sidecar (``shards``); each sidecar carries its own SHA-256 and the
checksums of its shard's data files. The checksums are unkeyed: they catch
damage, not a forger, so :func:`read_manifest` reads a manifest as untrusted
input (:mod:`probekit.store._validate`): a hand-edited or forged one is a
:class:`StoreError` that names the problem, before its checksum is checked.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from probekit.fingerprint import canonical_json
from probekit.store._errors import (
    EXAMPLES,
    FORMAT_VERSION,
    MANIFEST,
    CorruptShardError,
    FingerprintMismatchError,
    StoreError,
)
from probekit.store._localfs import read_json_file
from probekit.store._validate import check_manifest, manifest_hash

logger = logging.getLogger(__name__)

__all__ = [
    "EXAMPLES",
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
    "judge_existing",
]


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
    """Read a JSON file; raise :class:`StoreError` naming the file when unreadable, not a regular file, or not
    valid JSON (also when nested deeper than any probekit file, or larger than 256 MiB).

    Opening never blocks (a FIFO named ``path`` is refused, not waited on); ``FileNotFoundError`` passes
    through. A link is followed (the path is the caller's); inside a store, files are read with
    :func:`read_manifest` and the shard readers, which refuse links.
    """
    return read_json_file(path, follow=True)


def write_manifest(path: str | os.PathLike, manifest: Mapping[str, Any]) -> dict:
    """Write ``manifest`` atomically with its own checksum (``manifest_sha256``); returns what was written."""
    out = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    out["manifest_sha256"] = manifest_hash(out)
    write_json_atomic(path, out)
    return out


def read_manifest(path: str | os.PathLike) -> dict:
    """Read and check a store's manifest (a regular file, not a link; see
    :func:`~probekit.store._validate.check_manifest`); ``FileNotFoundError`` when absent."""
    manifest = read_json_file(path)
    check_manifest(manifest, str(path))
    return manifest


def describe_mismatch(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """Name the fingerprint components that differ, in words a user can act on."""
    names = {
        "weights": "model weights",
        "forward": "module settings (the module tree and settings such as LayerNorm eps or dropout p, the config, "
                   "the attention implementation)",
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


def judge_existing(found: Any, where: str, fingerprint: str, components: Mapping[str, Any], *, overwrite: bool,
                   place: str, kind: str) -> tuple[bool, StoreError | None]:
    """What to do with the manifest ``found`` at the ``place`` (a ``kind``: directory, location) a store is about
    to be written to, read from ``where``.

    Returns ``(True, damage)`` when the store there has the ``fingerprint`` being written and this format
    version, so its complete shards may be reused (``damage``: what :func:`check_manifest` finds, ``None``
    when sound), and ``(False, None)`` when it is to be replaced (``overwrite``): its files are the caller's
    to remove.

    Raises
    ------
    StoreError
        ``found`` is not a probekit manifest (never replaced), or is damaged and not ``overwrite``.
    FingerprintMismatchError
        The store there was made from other inputs and not ``overwrite``.
    """
    if not (isinstance(found, dict) and "fingerprint" in found and "format_version" in found):
        raise StoreError(f"{where} is not a probekit manifest. Nothing was changed; write the store to a new or "
                         f"empty {kind}.")
    try:
        check_manifest(found, where)
        damage = None
    except StoreError as exc:
        damage = exc
    if found.get("fingerprint") == fingerprint and found.get("format_version") == FORMAT_VERSION:
        return True, damage
    if not overwrite:
        if damage is not None:
            raise StoreError(f"{damage} (to replace this store pass overwrite=True / --overwrite, or write the new "
                             f"one to another {kind})")
        comps = found.get("components") if isinstance(found.get("components"), dict) else {}
        raise FingerprintMismatchError(
            f"{place} holds a store made with other inputs: {describe_mismatch(comps, components)}. "
            f"Use another {kind}, or pass overwrite=True (--overwrite) to replace it.")
    logger.warning("%s: replacing a store with another fingerprint", place)
    return False, None


def _short(value: Any) -> str:
    text = canonical_json(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
