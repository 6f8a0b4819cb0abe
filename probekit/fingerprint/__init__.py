"""Fingerprints: canonical JSON and every hash probekit records.

Whatever a cached result depends on is hashed here, and only here:

- :func:`canonical_json` / :func:`jsonable`: the one JSON form that is hashed
  (sorted keys, no whitespace, ASCII; numpy, pandas, dataclass and path
  values converted; non-finite floats spelled out so they never collide with
  strings).
- :func:`hash_arrays` / :func:`hash_bytes`: SHA-256 of exact array values
  (fitted erasers) and of raw bytes (label codes, row selections).
- :func:`hash_json`: SHA-256 of one value's canonical JSON (store
  fingerprints, recipes, variant lineages, pipeline stage keys, shard
  sidecars); :func:`hash_json_lines` streams many values (example tables,
  word lists, annotation inputs).
- :func:`weights_hash`: SHA-256 over a module's parameters, buffers and
  custom state (quantized packed weights), remembered per module and taken
  again as soon as anything it covers may have changed (see below).
- :func:`module_settings_hash` / :func:`config_hash`: SHA-256 of what a
  forward depends on besides the weights (every submodule's class and
  ``extra_repr()`` settings such as ``LayerNorm.eps`` or ``Dropout.p``; the
  model config without its provenance); :func:`foreign_hooks` lists the
  forward hooks on a module tree and the global ones, which cannot be hashed
  and so are refused by whatever fingerprints a forward.
- :func:`tokenizer_hash`: SHA-256 of a tokenizer's full specification.
- :func:`file_checksum`: damage detection for store files (XXH3-128, or
  CRC-32 where ``xxhash`` is missing), not an identity; ``"sha256"`` for the
  byte pins of downloaded files. :func:`file_lines_sha256`: the pin of a
  text file whose comment lines may differ between copies.

Keeping a weights hash truthful
-------------------------------
Hashing every byte of a model is slow (0.1 s for MiniLM-L6, seconds for a
billion parameters), so the hash is remembered together with a *state
signature* that is cheap to recheck (about a millisecond for MiniLM-L6; see
``benchmarks/fingerprint.py``):

- the names of every parameter and buffer and, for each, the tensor object
  itself (by weak reference, so a replaced parameter is noticed even if its
  ``id`` is reused), its storage address, dtype, shape, strides, device and
  autograd version counter. Every in-place operation on a parameter or
  buffer (``with torch.no_grad(): p.mul_(0.5)``, ``load_state_dict``,
  ``p.copy_(...)``, optimizer steps) bumps the version counter; assigning
  ``p.data = ...`` or a new ``nn.Parameter`` changes the address or object;
- 64 elements of every tensor at fixed pseudo-random positions, compared
  bit for bit. This catches writes that bypass the version counter
  (``p.data.mul_(0.5)``, ``p.data[mask] = 0``, writes through a NumPy view)
  whenever they touch any of those elements: always for whole-tensor edits
  (scaling, re-initialising, copying other weights in) and, for an edit of a
  fraction ``f`` of a tensor's elements, with probability ``1 - (1 - f)**64``
  (magnitude pruning at 10% sparsity: > 99.8% per tensor);
- for modules that keep state outside parameters and buffers (``torch.ao``
  quantized layers with packed weights), that state's plain values and the
  identity of its objects: ``torch.ao`` replaces the packed-weights object
  whenever the weights change (``set_weight_bias``, ``load_state_dict``).

What the signature cannot see is a *sparse* write that bypasses the version
counter, e.g. ``p.data[3, 7] = 0`` at an element outside the sample. Where the
hash guards work that costs far more than hashing (an extraction, whose
forward passes take seconds to hours), every byte is hashed again
(``refresh=True``: :func:`probekit.extract` does), so such an edit is never
missed there; elsewhere call ``weights_hash(module, refresh=True)``
(``HookedModel.weights_hash(refresh=True)``) after such an edit, or edit the
parameter itself under ``torch.no_grad()`` (``p[3, 7] = 0``), which bumps its
version.

One line per file:

- ``_json``: Canonical JSON: the one form of a value that is hashed (see :mod:`probekit.fingerprint`).
- ``_modules``: What a forward pass depends on besides the weights: the module tree's settings, the config, and
  hooks.
- ``_weights``: Weights hashes that stay true: SHA-256 of a module's state, re-taken only when a cheap signature
  changes.

Examples
--------
>>> hash_json({"b": 1, "a": [1, 2]}) == hash_json({"a": [1, 2], "b": 1})
True
>>> canonical_json({"x": float("nan"), "y": (1, 2)})
'{"x":{"__float__":"nan"},"y":[1,2]}'
>>> import torch
>>> lin = torch.nn.Linear(2, 2)
>>> h = weights_hash(lin)
>>> with torch.no_grad():
...     _ = lin.weight.mul_(2)
>>> weights_hash(lin) != h
True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import weakref
import zlib
from typing import BinaryIO

from probekit.fingerprint._json import canonical_json, hash_arrays, hash_bytes, hash_json, hash_json_lines, jsonable
from probekit.fingerprint._modules import config_hash, foreign_hooks, module_settings_hash
from probekit.fingerprint._weights import SAMPLE, weights_hash

__all__ = [
    "CHECKSUM",
    "canonical_json",
    "config_hash",
    "file_checksum",
    "foreign_hooks",
    "file_lines_sha256",
    "hash_arrays",
    "hash_bytes",
    "hash_json",
    "hash_json_lines",
    "jsonable",
    "module_settings_hash",
    "tokenizer_hash",
    "weights_hash",
    "SAMPLE",
]


# ---------------------------------------------------------------- tokenizers
_TOKENIZERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tokenizer_state(tokenizer) -> tuple:
    return len(tokenizer), canonical_json(sorted((k, str(v)) for k, v in tokenizer.special_tokens_map.items()))


def tokenizer_hash(tokenizer) -> str:
    """SHA-256 of a tokenizer's full specification (class, vocabulary, normalizer, special tokens).

    Serialising the specification takes a noticeable share of a short
    extraction, so the hash is remembered per tokenizer object, together with
    its size and special tokens (what adding tokens changes).
    """
    state = _tokenizer_state(tokenizer)
    try:
        known = _TOKENIZERS.get(tokenizer)
    except TypeError:  # not weak-referenceable or not hashable
        known = None
    if known is not None and known[0] == state:
        return known[1]
    digest = _tokenizer_spec_hash(tokenizer)
    try:
        _TOKENIZERS[tokenizer] = (state, digest)
    except TypeError:
        pass
    return digest


def _tokenizer_spec_hash(tokenizer) -> str:
    """:func:`tokenizer_hash` without the memory."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        # truncation/padding are per-call state the tokenizer rewrites when used
        spec.pop("truncation", None)
        spec.pop("padding", None)
    else:  # slow tokenizers: the vocabulary is what we can see
        spec = {"vocab": sorted(tokenizer.get_vocab().items())}
    return hash_json({"class": type(tokenizer).__name__, "spec": spec, "special": _tokenizer_state(tokenizer)[1]})


# ------------------------------------------------------------------ checksums
class _Crc32:
    """CRC-32 with the ``update``/``hexdigest`` interface of hashlib."""

    def __init__(self):
        self.value = 0

    def update(self, data) -> None:
        self.value = zlib.crc32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


def _xxh3_128():
    try:
        import xxhash
    except ImportError:
        return None
    return xxhash.xxh3_128()


#: algorithm name -> new hasher (``None`` when unavailable here)
_HASHERS = {"xxh3_128": _xxh3_128, "crc32": _Crc32, "sha256": hashlib.sha256}
#: the algorithm new files are checksummed with
CHECKSUM = "xxh3_128" if _xxh3_128() is not None else "crc32"
# read size of the checksum pass: one reused buffer small enough to stay in cache between the copy and the hash
_CHUNK = 1 << 20


def _checksummer(algorithm: str):
    make = _HASHERS.get(algorithm)
    if make is None:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}; known: {', '.join(_HASHERS)}")
    h = make()
    if h is None:
        raise ImportError(f"checksum algorithm {algorithm!r} needs the xxhash package (pip install xxhash)")
    return h


def file_checksum(path: str | os.PathLike | BinaryIO, algorithm: str = CHECKSUM) -> str:
    """``"<algorithm>:<hex digest>"`` of a file, read in chunks into one reused buffer.

    Checksums detect damage; they are not a cryptographic identity (nor a
    signature: anyone can recompute them). XXH3-128 is about ten times
    cheaper than SHA-256, which matters because store files are hashed beside
    the forward pass.

    Parameters
    ----------
    path : path or binary file
        A path, or a file already opened for reading (read from its current
        position to its end, not closed).
    algorithm : str
        ``"xxh3_128"``, ``"crc32"`` or ``"sha256"``.

    Examples
    --------
    >>> import tempfile, os
    >>> fd, p = tempfile.mkstemp(); os.write(fd, b"abc"); os.close(fd)
    3
    >>> file_checksum(p, "crc32")
    'crc32:352441c2'
    """
    h = _checksummer(algorithm)
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with contextlib.nullcontext(path) if hasattr(path, "readinto") else open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return f"{algorithm}:{h.hexdigest()}"


def file_lines_sha256(path: str | os.PathLike, *, skip_prefix: bytes = b"#") -> str:
    """SHA-256 (hex) of a text file's lines, leaving out lines starting with ``skip_prefix``.

    A trailing ``\\r`` is dropped from every line, so the value does not
    depend on line ends either; every other byte counts. The same value in a
    shell: ``sed -e 's/\\r$//' -e '/^#/d' FILE | sha256sum``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a").write_bytes(b"# one\\nx\\n"); _ = (d / "b").write_bytes(b"# two\\r\\nx\\r\\n")
    >>> file_lines_sha256(d / "a") == file_lines_sha256(d / "b")
    True
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(skip_prefix):
                continue
            if line.endswith(b"\r\n"):
                line = line[:-2] + b"\n"
            elif line.endswith(b"\r"):
                line = line[:-1]
            h.update(line)
    return h.hexdigest()
