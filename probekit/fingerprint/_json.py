"""Canonical JSON: the one form of a value that is hashed (see :mod:`probekit.fingerprint`)."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["jsonable", "canonical_json", "hash_json", "hash_json_lines", "hash_bytes", "hash_arrays"]


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


def hash_bytes(*parts: bytes) -> str:
    """SHA-256 (hex) of byte strings, each prefixed by its length (so parts never run into each other).

    Examples
    --------
    >>> hash_bytes(b"ab", b"c") == hash_bytes(b"a", b"bc")
    False
    """
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def hash_arrays(named: Iterable[tuple[str, Any]]) -> str:
    """SHA-256 (hex) of named arrays: each name, dtype, shape and little-endian bytes, in the given order.

    Takes NumPy arrays or torch tensors (moved to the CPU); the values are
    hashed exactly, so two arrays hash alike only when they are equal
    element for element in the same dtype.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(3.0)
    >>> hash_arrays([("a", a)]) == hash_arrays([("a", a.copy())]), hash_arrays([("a", a)]) == hash_arrays([("b", a)])
    (True, False)
    """
    np = sys.modules.get("numpy")
    if np is None:
        import numpy as np
    h = hashlib.sha256()
    for name, arr in named:
        if hasattr(arr, "detach"):  # a torch tensor
            arr = arr.detach().cpu().numpy()
        arr = np.ascontiguousarray(arr)
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        h.update(canonical_json([name, arr.dtype.str, list(arr.shape)]).encode())
        h.update(arr.tobytes())
    return h.hexdigest()
