"""A store is untrusted input: its JSON and every name, size, shape and dtype it declares are checked here.

A store may come from anywhere (another machine, object storage, someone else), and its checksums are
not a signature: they are unkeyed, so anyone can recompute them with :mod:`probekit.fingerprint`. They
catch damage, not a forger. So nothing read from a store is used before it passes these checks:

- JSON (:func:`parse_json`): at most :data:`MAX_JSON_BYTES`, nested at most :data:`MAX_DEPTH` deep,
  no ``NaN`` or ``Infinity``.
- Names (:func:`plain_name`): every name a manifest or sidecar holds that is joined onto a path is a
  plain file name (letters, digits, ``_``, ``.``, ``-``; not starting with a dot): no separator, no
  ``..``, no absolute path, no NUL. A stream's file is moreover exactly ``<stream>.bin``.
- Values (:func:`check_manifest`, :func:`check_sidecar`, :func:`check_sidecar_for`): every field has
  its type and range (a boolean is not an integer), and the fields agree with each other: a stream's
  byte count is its shape times its dtype's size, its rows are the token, word or example counts of
  its shard, its dtype is the store's, and a dtype is a plain little-endian number (never an object).
- Sizes (:func:`check_size`): a stream's declared size equals its file's actual size before anything
  is allocated or memory-mapped, so a declared shape of ``[10**12, 384]`` is an error, not a huge map.

These functions take parsed values and sizes, never paths, so a store read from elsewhere (object
storage) is checked by the same code as a local one; :mod:`probekit.store._localfs` opens local files
(regular files only, no symbolic links, never blocking).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from probekit.fingerprint import hash_json
from probekit.model import SENTENCE_POOLING, WORD_POOLING, Site
from probekit.store._errors import EXAMPLES, FORMAT_VERSION, CorruptShardError, StoreError

__all__ = ["MAX_JSON_BYTES", "MAX_DEPTH", "parse_json", "plain_name", "plain_dtype", "check_manifest",
           "check_sidecar", "check_stream", "check_sidecar_for", "check_sidecars", "check_size", "stream_names",
           "sidecar_hash", "manifest_hash", "describe"]

#: largest JSON file of a store read (a sidecar lists the words of its examples: megabytes, not gigabytes)
MAX_JSON_BYTES = 256 << 20
#: deepest nesting of lists and mappings in a store's JSON (probekit writes fewer than 10 levels)
MAX_DEPTH = 64
#: dtypes a stream may have: plain little-endian numbers
_DTYPES = frozenset({"<f2", "<f4", "<f8", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8"})
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")
_CHECKSUM = re.compile(r"[a-z0-9_]{1,16}:[0-9a-f]{1,128}")
_STORE_DTYPES = ("float16", "float32")
_HINT = "(edited by hand, damaged or forged); re-extract the store"


def describe(value: Any) -> str:
    """``the string '3'``, ``the boolean true``, ``null``, ``a list``...: a JSON value in words."""
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        text = str(value)
        return f"the number {text if len(text) <= 24 else text[:21] + '...'}"
    return {list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _bad(where: str, field: str, what: str, value: Any, error: type[StoreError] = StoreError) -> StoreError:
    return error(f"{where}: {field!r} must be {what}, not {describe(value)} {_HINT}")


# ---------------------------------------------------------------------- JSON
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _depth(value: Any) -> int:
    """Nesting depth of lists and mappings (iterative: a deep value cannot exhaust the stack here)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, d)
            if d > MAX_DEPTH:
                return d
            todo.extend((x, d + 1) for x in v if isinstance(x, (list, dict)))
    return deepest


def parse_json(data: bytes, where: str) -> Any:
    """Parse a store's JSON file: bounded in size and depth, strict numbers; :class:`StoreError` naming ``where``."""
    if len(data) > MAX_JSON_BYTES:
        raise StoreError(f"{where} is {len(data):,} bytes, more than the {MAX_JSON_BYTES >> 20} MiB a store's JSON "
                         f"file may hold {_HINT}")
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise StoreError(f"{where} nests lists or mappings too deeply to be a probekit file {_HINT}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"{where} is not valid JSON ({exc})") from None
    if _depth(value) > MAX_DEPTH:
        raise StoreError(f"{where} nests lists or mappings more than {MAX_DEPTH} deep, which no probekit file does "
                         f"{_HINT}")
    return value


# --------------------------------------------------------------------- names
def plain_name(value: Any, where: str, field: str) -> str:
    """``value`` if it is a plain file name inside the store, else :class:`StoreError` naming the field.

    Examples
    --------
    >>> plain_name("L3.resid.tok.bin", "s.json", "file")
    'L3.resid.tok.bin'
    >>> plain_name("../../etc/passwd", "s.json", "file")
    Traceback (most recent call last):
    ...
    probekit.store._errors.StoreError: s.json: 'file' names '../../etc/passwd', which is not a plain file name inside \
the store (no separators, no '..', no absolute path, no leading dot); a forged or damaged store: nothing was read
    """
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    shown = repr(value[:80]) if isinstance(value, str) else describe(value)
    raise StoreError(f"{where}: {field!r} names {shown}, which is not a plain file name inside the store (no "
                     "separators, no '..', no absolute path, no leading dot); a forged or damaged store: nothing "
                     "was read")


def plain_dtype(value: Any, where: str, field: str) -> np.dtype:
    """The numpy dtype of a plain little-endian numeric dtype string; :class:`StoreError` for anything else."""
    if isinstance(value, str) and value in _DTYPES:
        return np.dtype(value)
    raise _bad(where, field, f"a plain numeric dtype ({', '.join(sorted(_DTYPES))})", value)


# -------------------------------------------------------------- field checks
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, where: str, field: str, minimum: int = 0) -> int:
    if not _is_int(value) or value < minimum:
        raise _bad(where, field, f"an integer >= {minimum}", value)
    return value


def _entry(value: list, ok) -> str:
    """``; entry 3 is the number -1``: the first entry of a list that is not ``ok``."""
    i = next(i for i, v in enumerate(value) if not ok(v))
    return f"; entry {i} is {describe(value[i])}"


def _is_count(v: Any) -> bool:
    return _is_int(v) and v >= 0


def _ints(value: Any, where: str, field: str, length: int | None = None) -> list[int]:
    if not isinstance(value, list):
        raise _bad(where, field, "a list of integers >= 0", value)
    if not all(_is_count(v) for v in value):
        raise StoreError(f"{where}: {field!r} must be a list of integers >= 0{_entry(value, _is_count)} {_HINT}")
    if length is not None and len(value) != length:
        raise StoreError(f"{where}: {field!r} has {len(value)} entries for {length} examples {_HINT}")
    return value


def _mapping(value: Any, where: str, field: str) -> dict:
    if not isinstance(value, dict):
        raise _bad(where, field, "a mapping", value)
    return value


def _checksum(value: Any, where: str, field: str) -> str:
    if not (isinstance(value, str) and _CHECKSUM.fullmatch(value)):
        raise _bad(where, field, "a checksum '<algorithm>:<hex digits>'", value)
    return value


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """The checksum a manifest records of itself (``manifest_sha256``)."""
    return hash_json({k: v for k, v in manifest.items() if k != "manifest_sha256"})


def sidecar_hash(sidecar: Mapping[str, Any]) -> str:
    """The checksum a sidecar records of itself (``sidecar_sha256``)."""
    return hash_json({k: v for k, v in sidecar.items() if k != "sidecar_sha256"})


# ------------------------------------------------------------------ manifest
#: How each type a manifest holds is named in an error.
_WHAT = {str: "a string", dict: "a mapping", bool: "true or false", int: "an integer", list: "a list"}
#: key -> type of every manifest; ``complete`` ones also need ``_COMPLETE``
_SHAPE: dict[str, type] = {
    "fingerprint": str,
    "components": dict,
    "complete": bool,
    "model": dict,
    "sites": list,
    "settings": dict,
    "n_examples": int,
    "n_shards": int,
    "files": dict,
}
_COMPLETE: dict[str, type] = {
    "n_tokens": int,
    "n_words": int,
    "shards": list,
}
_SETTINGS: dict[str, type] = {
    "dtype": str,
    "tokens": bool,
    "word_pooling": list,
    "sentence_pooling": list,
    "shard_size": int,
}


def _is_type(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def check_manifest(manifest: Any, where: str) -> None:
    """Raise :class:`StoreError` naming the first problem of a manifest's shape, values, version or checksum."""
    if not isinstance(manifest, dict):
        raise StoreError(f"{where} is not a probekit manifest: it holds {describe(manifest)}, not a mapping")
    if "format_version" not in manifest:
        raise StoreError(f"{where} has no 'format_version': it is not a probekit manifest, or was edited by hand")
    version = manifest["format_version"]
    if not _is_int(version):
        raise StoreError(f"{where}: 'format_version' must be an integer, not {describe(version)} "
                         "(edited by hand?); re-extract the store")
    if version != FORMAT_VERSION:
        raise StoreError(f"{where} has store format version {version}; this probekit reads version "
                         f"{FORMAT_VERSION}. Re-extract it.")
    shape = dict(_SHAPE, **(_COMPLETE if manifest.get("complete") is True else {}))
    for key, kind in shape.items():
        if key not in manifest:
            raise StoreError(f"{where} has no {key!r} (edited by hand or damaged); re-extract the store")
        if not _is_type(manifest[key], (kind,)):
            raise _bad(where, key, _WHAT[kind], manifest[key])
    settings = manifest["settings"]
    for key, kind in _SETTINGS.items():
        if not _is_type(settings.get(key), (kind,)):
            raise _bad(where, f"settings.{key}", _WHAT[kind], settings.get(key))
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
    _check_manifest_values(manifest, where)
    if hash_json(manifest["components"]) != manifest["fingerprint"]:
        raise StoreError(f"{where}: 'fingerprint' is not the hash of 'components' (edited by hand or damaged); "
                         "re-extract the store")
    if "manifest_sha256" not in manifest:
        raise StoreError(f"{where} carries no checksum ('manifest_sha256'; edited by hand?); re-extract the store")
    if manifest["manifest_sha256"] != manifest_hash(manifest):
        raise StoreError(f"{where} does not match its checksum (edited by hand or damaged); re-extract the store, "
                         "or re-run the same extraction to repair it")


def _check_manifest_values(manifest: dict, where: str) -> None:
    """The values every reader relies on: settings among the known ones, sites parse, counts agree."""
    settings = manifest["settings"]
    if settings["dtype"] not in _STORE_DTYPES:
        raise _bad(where, "settings.dtype", f"one of {', '.join(_STORE_DTYPES)}", settings["dtype"])
    for key, allowed in (("word_pooling", WORD_POOLING), ("sentence_pooling", SENTENCE_POOLING)):
        values = settings[key]
        if not all(isinstance(v, str) and v in allowed for v in values) or len(set(values)) != len(values):
            raise _bad(where, f"settings.{key}", f"a list of distinct names among {', '.join(allowed)}", values)
    if "chat" in settings and settings["chat"] is not True:
        raise _bad(where, "settings.chat", "true (a store of conversations) or absent", settings["chat"])
    shard_size = _int(settings["shard_size"], where, "settings.shard_size", 1)
    sites = []
    for s in manifest["sites"]:
        try:
            site = Site.parse(s)
        except ValueError as exc:
            raise StoreError(f"{where}: 'sites' holds {s[:40]!r}, not a site ({exc}) {_HINT}") from None
        if str(site) != s or site.head is not None:
            raise StoreError(f"{where}: 'sites' holds {s[:40]!r}, which is not a site's canonical name {_HINT}")
        sites.append(site)
    if len(set(sites)) != len(sites):
        raise StoreError(f"{where}: 'sites' names a site twice {_HINT}")
    n = manifest["n_examples"]
    if manifest["n_shards"] != -(-n // shard_size):
        raise StoreError(f"{where}: 'n_shards' is {manifest['n_shards']}, but {n} examples in shards of {shard_size} "
                         f"make {-(-n // shard_size)} {_HINT}")
    model = manifest["model"]
    if not isinstance(model["name"], str):
        raise _bad(where, "model.name", "a string", model["name"])
    attention = [s for s in sites if s.is_attention]
    if attention:
        per_layer = model.get("heads_per_layer")
        if per_layer is None:
            _int(model.get("n_heads"), where, "model.n_heads", 1)
        else:
            _ints(per_layer, where, "model.heads_per_layer")
            deepest = max(s.layer for s in attention)
            if len(per_layer) <= deepest:
                raise StoreError(f"{where}: 'model.heads_per_layer' has {len(per_layer)} entries but the store "
                                 f"holds attention of block {deepest} {_HINT}")
    files = manifest["files"]
    if EXAMPLES in files:
        _checksum(files[EXAMPLES], where, f"files.{EXAMPLES}")
    if manifest.get("complete") is True:
        _int(manifest["n_tokens"], where, "n_tokens")
        _int(manifest["n_words"], where, "n_words")
        for k, h in enumerate(manifest["shards"]):
            if not isinstance(h, str):
                raise _bad(where, f"shards[{k}]", "a string", h)


# ------------------------------------------------------------------ sidecars
def stream_names(sites: Sequence[Site], settings: Mapping[str, Any]) -> dict[Site, dict[str, tuple[str, str | None]]]:
    """Stream names of every site of a store: ``{site: {name: (level, pooling)}}`` (files are ``<name>.bin``)."""
    out: dict[Site, dict[str, tuple[str, str | None]]] = {}
    for s in sites:
        if s.is_attention:
            out[s] = {str(s): ("attention", None)}
            continue
        names: dict[str, tuple[str, str | None]] = {}
        if settings["tokens"]:
            names[f"{s}.tok"] = ("token", None)
        for how in settings["word_pooling"]:
            names[f"{s}.words-{how}"] = ("word", how)
        for how in settings["sentence_pooling"]:
            names[f"{s}.sent-{how}"] = ("sentence", how)
        out[s] = names
    return out


def check_sidecar(sidecar: Any, where: str, index: int | None = None) -> dict:
    """Check a sidecar's own shape (names, dtypes, sizes agree) and checksum, without its store; returns it.

    Raises :class:`CorruptShardError` when the sidecar does not match its checksum (damage) or belongs to
    another format, :class:`StoreError` naming the field when a value is of the wrong kind.
    """
    if not isinstance(sidecar, dict):
        raise StoreError(f"{where} is not a shard sidecar: it holds {describe(sidecar)}, not a mapping {_HINT}")
    if "sidecar_sha256" not in sidecar:
        raise CorruptShardError(f"{where} carries no checksum ('sidecar_sha256') {_HINT}")
    if sidecar.get("format_version") != FORMAT_VERSION:
        raise CorruptShardError(f"{where} has format version {describe(sidecar.get('format_version'))}; this "
                                f"probekit reads version {FORMAT_VERSION} {_HINT}")
    shard = _int(sidecar.get("shard"), where, "shard")
    if index is not None and shard != index:
        raise CorruptShardError(f"{where} is the sidecar of shard {shard}, not of shard {index} {_HINT}")
    streams = _mapping(sidecar.get("streams"), where, "streams")
    for name, info in streams.items():
        check_stream(name, info, where)
    if sidecar["sidecar_sha256"] != sidecar_hash(sidecar):
        raise CorruptShardError(f"{where} does not match its checksum ('sidecar_sha256'; damaged)")
    return sidecar


def check_stream(name: Any, info: Any, where: str) -> None:
    """Check one stream's entry of a sidecar: plain names, a plain dtype, a shape whose size is the declared bytes."""
    plain_name(name, where, "streams")
    field = f"streams.{name}"
    info = _mapping(info, where, field)
    file = plain_name(info.get("file"), where, f"{field}.file")
    if file != f"{name}.bin":
        raise StoreError(f"{where}: {field + '.file'!r} is {file!r}; stream {name} is always stored in "
                         f"{name + '.bin'!r} (a forged or damaged store: nothing was read)")
    dtype = plain_dtype(info.get("dtype"), where, f"{field}.dtype")
    shape = info.get("shape")
    if not isinstance(shape, list) or not 1 <= len(shape) <= 3:
        raise _bad(where, f"{field}.shape", "a list of 1 to 3 integers >= 0", shape)
    if not all(_is_count(v) for v in shape):
        raise StoreError(f"{where}: '{field}.shape' must be a list of 1 to 3 integers >= 0{_entry(shape, _is_count)} "
                         f"{_HINT}")
    nbytes = _int(info.get("bytes"), where, f"{field}.bytes")
    if nbytes != math.prod(shape) * dtype.itemsize:
        raise StoreError(f"{where}: {field!r} declares {nbytes:,} bytes, but shape {shape} of {dtype.str} makes "
                         f"{math.prod(shape) * dtype.itemsize:,} {_HINT}")
    _checksum(info.get("checksum"), where, f"{field}.checksum")


def check_sidecar_for(sidecar: dict, where: str, manifest: Mapping[str, Any], index: int) -> None:
    """Check a (shape-checked) sidecar against its store's manifest: examples, counts, streams, shapes, dtypes."""
    if sidecar.get("fingerprint") != manifest["fingerprint"]:
        raise CorruptShardError(f"{where} belongs to another store (fingerprint {describe(sidecar.get('fingerprint'))}"
                                f", not {manifest['fingerprint'][:12]}...) {_HINT}")
    settings = manifest["settings"]
    size, total = settings["shard_size"], manifest["n_examples"]
    start, stop = index * size, min((index + 1) * size, total)
    for key, want in (("start", start), ("stop", stop)):
        if sidecar.get(key) != want or not _is_int(sidecar.get(key)):
            raise _bad(where, key, f"{want} (shard {index} of {total} examples in shards of {size})", sidecar.get(key))
    n = stop - start
    n_tok = _ints(sidecar.get("n_tokens"), where, "n_tokens", n)
    n_words = _ints(sidecar.get("n_words"), where, "n_words", n)
    words = sidecar.get("words")
    if not isinstance(words, list) or len(words) != n or not all(
            isinstance(w, list) and len(w) == k and all(isinstance(x, str) for x in w) for w, k in zip(words, n_words)):
        raise _bad(where, "words", f"a list of {n} lists of strings, as many as 'n_words' says", words)
    sites = [Site.parse(s) for s in manifest["sites"]]
    heads = manifest["model"].get("heads_per_layer")
    tokens, word_rows = sum(n_tok), sum(n_words)
    want: dict[str, tuple[str, list[int] | None]] = {"input_ids": ("<i4", [tokens]), "word_ids": ("<i4", [tokens])}
    if settings.get("chat") is True:  # a store of conversations: every token's turn, role and mark
        want.update({"turn_ids": ("<i4", [tokens]), "role_ids": ("|i1", [tokens]), "marked": ("|i1", [tokens])})
    for site, names in stream_names(sites, settings).items():
        for name, (level, _how) in names.items():
            if level == "attention":
                h = heads[site.layer] if heads is not None else manifest["model"]["n_heads"]
                want[name] = (np.dtype(settings["dtype"]).str, [h * sum(k * k for k in n_tok)])
            else:
                rows = {"token": tokens, "word": word_rows, "sentence": n}[level]
                want[name] = (np.dtype(settings["dtype"]).str, [rows, None])
    streams = sidecar["streams"]
    for name in streams:
        if name not in want:
            raise StoreError(f"{where} names a stream {name!r} that a store of these sites and settings does not have "
                             f"{_HINT}")
    widths: dict[str, int] = {}
    for name, (dtype, shape) in want.items():
        if name not in streams:
            raise StoreError(f"{where} has no stream {name!r} {_HINT}")
        info = streams[name]
        if info["dtype"] != dtype:
            raise _bad(where, f"streams.{name}.dtype", repr(dtype), info["dtype"])
        got = info["shape"]
        if len(got) != len(shape) or any(w is not None and g != w for g, w in zip(got, shape)) or (
                len(got) == 2 and got[1] < 1):
            shown = "[" + ", ".join("d" if w is None else str(w) for w in shape) + "]"
            raise StoreError(f"{where}: 'streams.{name}.shape' is {got}, but this shard's counts make {shown} "
                             f"{_HINT}")
        if len(got) == 2:
            site = name.rsplit(".", 1)[0]
            if widths.setdefault(site, got[1]) != got[1]:
                raise StoreError(f"{where}: the streams of {site} differ in width {_HINT}")


def check_sidecars(sidecars: Sequence[dict], manifest: Mapping[str, Any], where: str) -> None:
    """Check the sidecars of a complete store against each other and the manifest's totals."""
    first = sidecars[0]["streams"]
    for k, sc in enumerate(sidecars[1:], start=1):
        for name, info in sc["streams"].items():
            if len(info["shape"]) == 2 and info["shape"][1] != first[name]["shape"][1]:
                raise StoreError(f"{where}: stream {name} is {info['shape'][1]} wide in shard {k} but "
                                 f"{first[name]['shape'][1]} in shard 0 {_HINT}")
    for key in ("n_tokens", "n_words"):
        total = sum(sum(sc[key]) for sc in sidecars)
        if manifest.get(key) != total:
            raise StoreError(f"{where}: the manifest's {key!r} is {describe(manifest.get(key))}, but its shards hold "
                             f"{total} {_HINT}")


def check_size(info: Mapping[str, Any], size: int, where: str) -> None:
    """:class:`CorruptShardError` unless a stream file's actual ``size`` is the size its sidecar declares."""
    if size != info["bytes"]:
        raise CorruptShardError(f"{where} is truncated or padded: {size} bytes, expected {info['bytes']}")
