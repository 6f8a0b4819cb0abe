"""Fingerprints: canonical JSON and every hash probekit records.

Whatever a cached result depends on is hashed here, and only here:

- :func:`canonical_json` / :func:`jsonable`: the one JSON form that is hashed
  (sorted keys, no whitespace, ASCII; numpy, pandas, dataclass and path
  values converted; non-finite floats spelled out so they never collide with
  strings).
- :func:`hash_json`: SHA-256 of one value's canonical JSON (store
  fingerprints, recipes, variant lineages, pipeline stage keys, shard
  sidecars); :func:`hash_json_lines` streams many values (example tables,
  word lists, annotation inputs).
- :func:`weights_hash`: SHA-256 over a module's parameters, buffers and
  custom state (quantized packed weights), remembered per module and taken
  again as soon as anything it covers may have changed (see below).
- :func:`tokenizer_hash`: SHA-256 of a tokenizer's full specification.
- :func:`file_checksum`: damage detection for store files (XXH3-128, or
  CRC-32 where ``xxhash`` is missing), not an identity.

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
counter, e.g. ``p.data[3, 7] = 0`` at an element outside the sample. After
such an edit call ``weights_hash(module, refresh=True)``
(``HookedModel.weights_hash(refresh=True)``), or edit the parameter itself
under ``torch.no_grad()`` (``p[3, 7] = 0``), which bumps its version.

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

import dataclasses
import enum
import hashlib
import json
import math
import os
import sys
import weakref
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CHECKSUM",
    "canonical_json",
    "file_checksum",
    "hash_json",
    "hash_json_lines",
    "jsonable",
    "tokenizer_hash",
    "weights_hash",
]


# ------------------------------------------------------------ canonical JSON
def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values (dict, list, str, int, float, bool, None).

    Dataclasses and objects with ``to_dict()`` become mappings, tuples and
    sets lists (sets sorted), NumPy scalars and arrays Python values, paths
    strings, DataFrames lists of records, pandas' missing values ``None``;
    non-finite floats become ``{"__float__": "nan"}`` (never equal to the
    string ``"nan"``). Other objects are represented by their ``repr``
    unless it holds a memory address, which would differ between runs: that
    is a ``TypeError``.

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"a": np.float32(0.5), 3: (np.int64(1), None)})
    {'a': 0.5, '3': [1, None]}
    """
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj.value if isinstance(obj, enum.Enum) else obj
    if isinstance(obj, float):
        obj = float(obj)  # numpy float64 is a float subclass
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    pd = sys.modules.get("pandas")
    if pd is not None:
        if isinstance(obj, pd.DataFrame):
            return [jsonable(r) for r in obj.to_dict(orient="records")]
        if isinstance(obj, pd.Series):
            return [jsonable(v) for v in obj.tolist()]
        if obj is pd.NA or obj is pd.NaT:
            return None
        if isinstance(obj, pd.Timestamp):
            return obj.isoformat()
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.ndarray):
            return [jsonable(v) for v in obj.tolist()] if obj.ndim else jsonable(obj.item())
        if isinstance(obj, np.generic):
            return jsonable(obj.item())
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(obj, torch.Tensor):
            return jsonable(obj.detach().cpu().tolist())
        if isinstance(obj, (torch.dtype, torch.device)):
            return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((jsonable(v) for v in obj), key=canonical_json)
    if isinstance(obj, (bytes, bytearray)):
        return {"__bytes__": bytes(obj).hex()}
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict) and not isinstance(obj, type):
        return jsonable(to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    text = repr(obj)
    if " at 0x" in text:
        raise TypeError(f"cannot fingerprint a {type(obj).__name__}: its repr ({text[:60]}) holds a memory "
                        "address, which differs between runs; pass plain values (str, numbers, lists, mappings)")
    return text


def canonical_json(obj: Any) -> str:
    """The hashed JSON form of ``obj``: :func:`jsonable`, sorted keys, no whitespace, ASCII only.

    Examples
    --------
    >>> canonical_json({"b": [1, 2.5], "a": "é"})
    '{"a":"\\\\u00e9","b":[1,2.5]}'
    """
    return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def hash_json(obj: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj``.

    Examples
    --------
    >>> hash_json({"a": 1}) == hash_json({"a": 1}), hash_json({"a": 1}) == hash_json({"a": 2})
    (True, False)
    >>> hash_json(("x", 1)) == hash_json(["x", 1])
    True
    """
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def hash_json_lines(items: Iterable[Any]) -> str:
    """SHA-256 (hex) over the canonical JSON of each item, one line each, streamed.

    Used for sequences too long to hold as one JSON value (every row of an
    example table, every word list of a data set).

    Examples
    --------
    >>> hash_json_lines([["a", "b"], ["c"]]) == hash_json_lines(iter([["a", "b"], ["c"]]))
    True
    >>> hash_json_lines([["a", "b"], ["c"]]) == hash_json_lines([["a"], ["b", "c"]])
    False
    """
    h = hashlib.sha256()
    for item in items:
        h.update(canonical_json(item).encode())
        h.update(b"\n")
    return h.hexdigest()


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
_HASHERS = {"xxh3_128": _xxh3_128, "crc32": _Crc32}
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


def file_checksum(path: str | os.PathLike, algorithm: str = CHECKSUM) -> str:
    """``"<algorithm>:<hex digest>"`` of a file, read in chunks into one reused buffer.

    Checksums detect damage; they are not a cryptographic identity. XXH3-128
    is about ten times cheaper than SHA-256, which matters because store
    files are hashed beside the forward pass.

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
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return f"{algorithm}:{h.hexdigest()}"


# -------------------------------------------------------------------- weights
#: elements of every tensor compared bit for bit on each check (see the module notes)
SAMPLE = 64


def _int_view(t):
    """``t`` (1-D) reinterpreted as raw bytes, or ``None`` for dtypes without a plain byte layout."""
    import torch

    if t.is_quantized or t.is_complex() or t.layout != torch.strided or t.device.type == "meta":
        return None
    try:
        return t.view(torch.uint8)
    except RuntimeError:
        return None


def _positions(shape: tuple[int, ...]):
    """Fixed pseudo-random element positions sampled from a tensor of ``shape`` (``None`` when empty)."""
    import torch

    numel = math.prod(shape)
    if numel == 0:
        return None
    if numel <= SAMPLE:
        return torch.arange(numel)
    return torch.randint(numel, (SAMPLE,), generator=torch.Generator().manual_seed(numel))


def _custom_state_modules(module) -> list:
    """Submodules that keep state outside parameters and buffers (they override ``_save_to_state_dict``)."""
    from torch import nn

    base = nn.Module._save_to_state_dict
    return [(n, m) for n, m in module.named_modules(remove_duplicate=False)
            if type(m)._save_to_state_dict is not base]


_PLAIN_MODULE_ATTRS: frozenset = frozenset()


class _Same:
    """Identity of an object: by weak reference where it allows one, else by a strong one."""

    def __init__(self, obj):
        try:
            self._ref = weakref.ref(obj)
        except TypeError:
            self._ref = lambda: obj

    def __eq__(self, other) -> bool:
        return isinstance(other, _Same) and self._ref() is not None and self._ref() is other._ref()

    __hash__ = None


def _custom_state(m) -> list:
    """What a module keeps outside parameters and buffers: plain values by value, objects by identity.

    torch.ao quantized layers hold their packed weights in an object that is replaced, never
    changed in place, whenever the weights change (``set_weight_bias``, ``load_state_dict``).
    """
    import torch
    from torch import nn

    global _PLAIN_MODULE_ATTRS
    if not _PLAIN_MODULE_ATTRS:
        _PLAIN_MODULE_ATTRS = frozenset(vars(nn.Module()))
    out = []
    for key, v in sorted(vars(m).items()):
        if key in _PLAIN_MODULE_ATTRS:
            continue
        if v is None or isinstance(v, (bool, int, float, str, torch.dtype)):
            out.append((key, v))
        elif isinstance(v, torch.Tensor):
            out.append((key, _Same(v), v._version, tuple(v.shape), v.dtype))
        else:
            out.append((key, _Same(v)))
    return out


class _WeightsState:
    """The cheap signature of a module's weights: see the module notes."""

    def __init__(self, module):
        self.tensors = self._tensors(module)
        self.positions = [_positions(meta[3]) if meta[7] else None for _ref, meta in self.tensors]
        self._on_device: dict = {}  # positions copied to an accelerator, once per tensor size and device
        self.sample = self._sample(self.tensors)
        self.custom = [(n, _custom_state(m)) for n, m in _custom_state_modules(module)]

    @staticmethod
    def _tensors(module) -> list:
        import torch

        out = []
        for kind, items in (("p", module.named_parameters(remove_duplicate=False)),
                            ("b", module.named_buffers(remove_duplicate=False))):
            for name, t in items:
                strided = t.layout == torch.strided and t.device.type != "meta"
                meta = (kind, name, t.dtype, tuple(t.shape), t.device, t._version,
                        t.data_ptr() if strided else 0, tuple(t.stride()) if strided else ())
                out.append((weakref.ref(t), meta))
        return out

    def _sample(self, tensors: list) -> dict:
        """The sampled elements' bytes, per device (sparse and meta tensors have none)."""
        import torch

        per_device: dict = {}
        with torch.no_grad():
            for (ref, meta), pos in zip(tensors, self.positions):
                t = ref()
                if t is None or pos is None or t.layout != torch.strided or t.device.type == "meta":
                    continue
                flat = t.detach().reshape(-1)
                if flat.device.type != "cpu":
                    key = (flat.device, meta[3])
                    if key not in self._on_device:
                        self._on_device[key] = pos.to(flat.device)
                    pos = self._on_device[key]
                raw = _int_view(flat[pos])
                if raw is not None:
                    per_device.setdefault(str(flat.device), []).append(raw)
        return {dev: torch.cat(parts).cpu().numpy().tobytes() for dev, parts in per_device.items()}

    def matches(self, module) -> bool:
        now = self._tensors(module)
        if len(now) != len(self.tensors):
            return False
        for (ref_old, meta_old), (ref_new, meta_new) in zip(self.tensors, now):
            if meta_old != meta_new or ref_old() is not ref_new():
                return False
        if self._sample(now) != self.sample:
            return False
        return [(n, _custom_state(m)) for n, m in _custom_state_modules(module)] == self.custom


_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _feed(h, name: str, value, torch) -> None:
    """Feed one state entry to ``h``: tensors by dtype, shape and bytes, quantized tensors by their
    integer values and quantization parameters, packed tuples (torch.ao quantized linears) element
    by element, anything else by its canonical JSON."""
    if isinstance(value, (tuple, list)):
        for k, v in enumerate(value):
            _feed(h, f"{name}[{k}]", v, torch)
        return
    if not isinstance(value, torch.Tensor):
        h.update(f"{name}={canonical_json(value)}".encode())
        return
    t = value.detach().cpu()
    if t.is_quantized:
        if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            params = (t.q_per_channel_scales(), t.q_per_channel_zero_points(), t.q_per_channel_axis())
        else:
            params = (t.q_scale(), t.q_zero_point())
        h.update(f"{name}:q:{t.dtype}:{tuple(t.shape)}:{t.qscheme()}".encode())
        for k, p in enumerate(params):
            _feed(h, f"{name}.qparam{k}", p, torch)
        t = _quantized_values(t, torch)
    t = t.contiguous()
    h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")


def _quantized_values(t, torch):
    """The integer values of a quantized tensor; read straight from its storage when it is dense
    (``int_repr`` copies element by element: 20 ms for one 384x1536 int8 matrix)."""
    storage = t.untyped_storage()
    if t.is_contiguous() and t.storage_offset() == 0 and storage.nbytes() == t.numel() * t.element_size():
        ints = {torch.qint8: torch.int8, torch.quint8: torch.uint8, torch.qint32: torch.int32}.get(t.dtype)
        if ints is not None:
            return torch.empty(0, dtype=torch.uint8).set_(storage).view(ints).view(t.shape)
    return t.int_repr()


def _full_weights_hash(module) -> str:
    import torch

    entries = dict(module.state_dict())
    for name, b in module.named_buffers(remove_duplicate=False):  # non-persistent buffers shape outputs too
        entries.setdefault(name, b)
    h = hashlib.sha256()
    for name in sorted(entries):
        _feed(h, name, entries[name], torch)
    return h.hexdigest()


def weights_hash(module, *, refresh: bool = False) -> str:
    """SHA-256 over every parameter, buffer and custom state entry of ``module`` (names, dtypes, shapes, bytes).

    The hash is remembered per module with a cheap state signature and
    computed again whenever the signature shows a change (see the module
    notes for exactly what it notices).

    Parameters
    ----------
    module : torch.nn.Module
    refresh : bool
        Hash every byte again regardless of the signature (after a sparse
        write through ``.data``, which the signature can miss).

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Linear(3, 1)
    >>> h = weights_hash(lin)
    >>> weights_hash(lin) == h            # unchanged: not hashed again
    True
    >>> lin.weight.data.mul_(0.5)         # bypasses the version counter  # doctest: +ELLIPSIS
    tensor(...)
    >>> weights_hash(lin) == h            # caught by the sampled elements
    False
    """
    if not refresh:
        known = _WEIGHTS.get(module)
        if known is not None and known[0].matches(module):
            return known[1]
    state = _WeightsState(module)
    digest = _full_weights_hash(module)
    _WEIGHTS[module] = (state, digest)
    return digest
