"""Shards: one range of examples, one flat binary file per stream, a checksummed sidecar.

Layout of shard ``k`` inside a store::

    shards/00007/L3.resid.tok.bin     raw little-endian array, C order
    shards/00007/...
    shards/00007.json                 sidecar: example range, lengths, per-file size and checksum

A shard is written into ``shards/00007.tmp/`` with positioned writes
(``os.pwrite``, so nothing is held in memory and nothing is memory-mapped
while writing), hashed, renamed to ``shards/00007/`` and only then is its
sidecar written (atomically). A shard is complete exactly when its sidecar
exists and every file matches the size and checksum it names; the sidecar
also carries a SHA-256 of itself and the store fingerprint, so a damaged or
foreign sidecar is never trusted.

The data files are not fsynced: a killed process loses nothing the kernel
has accepted, and after a power loss a shard whose pages never reached the
disk fails its checksum, which is checked when a run resumes and when a
stream is first read, so it is redone rather than read. (Waiting on the
disk for every shard cost ~4% of a CPU extraction.)

File checksums detect damage, they are not a cryptographic identity: they
are XXH3-128 (``xxhash``; about ten times cheaper than SHA-256, which
matters because the hash runs beside the forward pass) or CRC-32 where
``xxhash`` is missing, written as ``"xxh3_128:<hex>"`` so a reader knows
which to recompute (:func:`probekit.fingerprint.file_checksum`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from probekit.fingerprint import CHECKSUM, file_checksum
from probekit.store._localfs import check_dir, open_file, read_json_file, stat_file
from probekit.store._manifest import (
    EXAMPLES,
    FORMAT_VERSION,
    MANIFEST,
    CorruptShardError,
    StoreError,
    write_json_atomic,
)
from probekit.store._validate import (
    check_sidecar,
    check_sidecar_for,
    check_sidecars,
    check_size,
    check_stream,
    sidecar_hash,
)

__all__ = ["ShardWriter", "shard_name", "load_sidecar", "read_sidecar", "verify_file", "open_stream",
           "remove_shard", "verify_shard", "drop_shards_beyond", "reuse_shard", "stream_path",
           "read_store_sidecars"]

logger = logging.getLogger(__name__)


def shard_name(index: int) -> str:
    """Directory and sidecar stem of shard ``index`` (``"00007"``)."""
    return f"{index:05d}"


class ShardWriter:
    """Write one shard's streams with positioned writes, then commit it atomically.

    Parameters
    ----------
    root : Path
        The store's ``shards`` directory.
    index : int
        Shard number.
    streams : mapping name -> (dtype, shape)
        Every stream's numpy dtype and full shape in this shard.
    meta : dict
        Extra sidecar content (example range, lengths, fingerprint, ...).
    """

    def __init__(self, root: Path, index: int, streams: Mapping[str, tuple[np.dtype, tuple[int, ...]]],
                 meta: Mapping[str, Any]):
        self.root = Path(root)
        self.index = index
        self.name = shard_name(index)
        self.tmp = self.root / (self.name + ".tmp")
        self.final = self.root / self.name
        self.meta = dict(meta)
        remove_shard(self.root, index)
        self.tmp.mkdir(parents=True)
        self._streams: dict[str, dict[str, Any]] = {}
        self._fds: dict[str, int] = {}
        for name, (dtype, shape) in streams.items():
            dtype = np.dtype(dtype)
            row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize if len(shape) > 1 else dtype.itemsize
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            fd = os.open(self.tmp / f"{name}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.ftruncate(fd, nbytes)
            self._fds[name] = fd
            self._streams[name] = {"file": f"{name}.bin", "dtype": dtype.str, "shape": list(shape),
                                   "bytes": nbytes, "row_bytes": row}

    def write(self, name: str, row: int, array: np.ndarray) -> None:
        """Write ``array`` at row ``row`` of stream ``name`` (rows along axis 0)."""
        info = self._streams[name]
        data = np.ascontiguousarray(array, dtype=np.dtype(info["dtype"]))
        offset = row * info["row_bytes"]
        if offset + data.nbytes > info["bytes"]:
            raise ValueError(f"write past the end of stream {name} in shard {self.name}")
        view = memoryview(data).cast("B")
        while view:
            n = os.pwrite(self._fds[name], view, offset)
            view, offset = view[n:], offset + n

    def commit(self) -> dict[str, Any]:
        """Hash, rename into place and write the sidecar; returns the sidecar."""
        files = {}
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        for name, info in self._streams.items():
            path = self.tmp / info["file"]
            files[name] = {k: v for k, v in info.items() if k != "row_bytes"}
            files[name]["checksum"] = file_checksum(path, CHECKSUM)
        os.replace(self.tmp, self.final)
        sidecar = {**self.meta, "shard": self.index, "format_version": FORMAT_VERSION, "streams": files}
        sidecar["sidecar_sha256"] = sidecar_hash(sidecar)
        write_json_atomic(self.root / f"{self.name}.json", sidecar)
        return sidecar

    def abort(self) -> None:
        """Close and remove the partial shard."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def remove_shard(root: Path, index: int) -> None:
    """Delete every trace of shard ``index`` (sidecar first, so it is never half-present)."""
    name = shard_name(index)
    for p in (root / f"{name}.json", root / f"{name}.json.tmp"):
        if p.exists():
            p.unlink()
    for d in (root / name, root / f"{name}.tmp"):
        if d.exists():
            shutil.rmtree(d)


def drop_shards_beyond(root: Path, n_shards: int) -> None:
    """Remove shards numbered ``n_shards`` or more (left by a store of another size whose manifest was lost)."""
    for p in list(root.iterdir()):
        k = p.name.split(".", 1)[0]
        if k.isdigit() and int(k) >= n_shards:
            remove_shard(root, int(k))


def read_sidecar(root: Path, index: int, manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The sidecar of shard ``index``, read as untrusted input; with ``manifest``, checked against its store.

    Raises
    ------
    FileNotFoundError
        No sidecar.
    CorruptShardError
        The sidecar does not match its checksum, or belongs to another store or format.
    StoreError
        The sidecar is not a regular file, or a field holds what no probekit sidecar does (a path
        instead of a plain file name, a size its shape does not make, an object dtype, ...).
    """
    path = root / f"{shard_name(index)}.json"
    sidecar = check_sidecar(read_json_file(path), str(path), index)
    if manifest is not None:
        check_sidecar_for(sidecar, str(path), manifest, index)
    return sidecar


def load_sidecar(root: Path, index: int, fingerprint: str | None = None,
                 manifest: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """:func:`read_sidecar`, or ``None`` when absent, damaged or foreign (the shard is then redone).

    Checks the sidecar's shape, own hash and format version, and (when given)
    the store fingerprint and the manifest; the data files are not hashed here
    (see :func:`verify_file`).
    """
    try:
        sidecar = read_sidecar(root, index, manifest)
    except FileNotFoundError:
        return None
    except StoreError as exc:
        logger.warning("shard %s: %s", shard_name(index), exc)
        return None
    if fingerprint is not None and sidecar.get("fingerprint") != fingerprint:
        logger.warning("shard %s: belongs to another fingerprint", shard_name(index))
        return None
    return sidecar


def stream_path(root: Path, sidecar: Mapping[str, Any], name: str) -> tuple[Path, str]:
    """The path of stream ``name`` and how errors name it, its entry checked again (a plain file name, a size
    its shape and dtype make) and its shard folder checked to be a real directory."""
    info = sidecar["streams"][name]
    shard = shard_name(sidecar["shard"])
    check_stream(name, info, str(root / f"{shard}.json"))
    path = root / shard / info["file"]
    where = f"shard {shard}, stream {name} ({path})"
    try:
        check_dir(root / shard)
    except FileNotFoundError:
        raise CorruptShardError(f"{where} is missing") from None
    return path, where


def verify_file(root: Path, sidecar: Mapping[str, Any], name: str, *, checksum: bool = True) -> None:
    """Raise :class:`CorruptShardError` unless stream ``name`` matches its sidecar (size, then checksum).

    Only a regular file is looked at (a link, FIFO or device is a :class:`StoreError`), and its size is
    compared before anything is read.
    """
    info = sidecar["streams"][name]
    path, where = stream_path(root, sidecar, name)
    try:
        check_size(info, stat_file(path).st_size, where)
    except FileNotFoundError:
        raise CorruptShardError(f"{where} is missing") from None
    if not checksum:
        return
    algorithm = str(info["checksum"]).partition(":")[0]
    try:
        with open_file(path) as f:
            found = file_checksum(f, algorithm)
    except (ValueError, ImportError) as exc:
        raise CorruptShardError(f"{where} cannot be checked: {exc}") from exc
    if found != info["checksum"]:
        raise CorruptShardError(f"{where} does not match its {algorithm} checksum (corrupted)")


def reuse_shard(root: Path, index: int, manifest: Mapping[str, Any]) -> bool:
    """Whether shard ``index`` of the store ``manifest`` describes is committed and intact; if not, remove its
    traces."""
    side = load_sidecar(root, index, manifest["fingerprint"], manifest)
    if side is not None:
        try:
            verify_shard(root, side)
            return True
        except StoreError as exc:
            logger.warning("redoing shard %d: %s", index, exc)
    remove_shard(root, index)
    return False


def verify_shard(root: Path, sidecar: Mapping[str, Any]) -> None:
    """Verify every stream file of a shard (sizes and checksums)."""
    for name in sidecar["streams"]:
        verify_file(root, sidecar, name)


def open_stream(root: Path, sidecar: Mapping[str, Any], name: str, mode: str = "r") -> np.ndarray:
    """Memory map of a stream (``mode`` ``"r"``, or ``"c"`` copy-on-write); call :func:`verify_file` first.

    The file's actual size is compared with the size the sidecar declares before it is mapped.
    """
    info = sidecar["streams"][name]
    path, where = stream_path(root, sidecar, name)
    shape = tuple(info["shape"])
    dtype = np.dtype(info["dtype"])
    if info["bytes"] == 0:
        return np.empty(shape, dtype=dtype)
    try:
        f = open_file(path)
    except FileNotFoundError:
        raise CorruptShardError(f"{where} is missing") from None
    with f:
        check_size(info, os.fstat(f.fileno()).st_size, where)
        return np.memmap(f, dtype=dtype, mode=mode, shape=shape)


def read_store_sidecars(path: Path, manifest: Mapping[str, Any], sizes: Mapping[str, int] | None = None) -> list[dict]:
    """Every sidecar of a complete store, checked against the manifest, and every file they name looked at
    (a regular file of the declared size) before anything is read or mapped.

    ``sizes`` (key relative to the store -> bytes) are the objects of a store at a URL whose sidecars were
    copied into ``path`` (see :mod:`probekit.store._cache`): each data file's declared size is compared with
    its object's instead of a local file's.
    """
    root = path / "shards"
    try:
        check_dir(root)
    except FileNotFoundError:
        raise CorruptShardError(f"{path} has no shards folder; re-run probekit.extract with the same arguments "
                                "to repair the store") from None
    sidecars = []
    for k in range(manifest["n_shards"]):
        try:
            sc = read_sidecar(root, k, manifest)
        except FileNotFoundError:
            raise CorruptShardError(f"{path}: shard {k} is missing; re-run probekit.extract with the same arguments "
                                    "to repair the store") from None
        except CorruptShardError as exc:
            raise CorruptShardError(f"shard {k}: {exc}; re-run probekit.extract with the same arguments to repair "
                                    "the store") from None
        if sc["sidecar_sha256"] != manifest["shards"][k]:
            raise CorruptShardError(f"{path}: the sidecar of shard {k} is not the one the manifest records; "
                                    "re-run probekit.extract with the same arguments to repair the store")
        sidecars.append(sc)
    check_sidecars(sidecars, manifest, str(path / MANIFEST))
    for sc in sidecars:
        for name, info in sc["streams"].items():
            if sizes is not None:
                check_stream(name, info, str(root / f"{shard_name(sc['shard'])}.json"))
                rel = f"shards/{shard_name(sc['shard'])}/{info['file']}"
                if rel not in sizes:
                    raise CorruptShardError(f"shard {shard_name(sc['shard'])}, stream {name} ({rel}) is missing; "
                                            "re-run probekit.extract with the same arguments to repair the store")
                check_size(info, sizes[rel], f"shard {shard_name(sc['shard'])}, stream {name} ({rel})")
                continue
            file, where = stream_path(root, sc, name)
            try:
                check_size(info, stat_file(file).st_size, where)
            except FileNotFoundError:
                raise CorruptShardError(f"{where} is missing; re-run probekit.extract with the same arguments to "
                                        "repair the store") from None
    try:
        stat_file(path / EXAMPLES)
    except FileNotFoundError:
        raise CorruptShardError(f"{path / EXAMPLES} is missing; re-run probekit.extract with the same arguments "
                                "to repair the store") from None
    return sidecars
