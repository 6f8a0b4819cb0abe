"""Reading a store at a URL through a verified local cache.

Opening ``ActivationStore.open("s3://bucket/run")`` copies the store's small files into a local mirror
under ``$PROBEKIT_CACHE/stores/<hash of the URL>/`` (default cache: ``~/.cache/probekit``): the manifest,
every sidecar (each at most :data:`~probekit.store._validate.MAX_JSON_BYTES`, its size asked before it is
read) and the example table (fetched again unless the cached copy matches the manifest's checksum). They
are checked by the same code as a local store's, and every data object's size is compared with what its
sidecar declares before anything is fetched. The data files are fetched one at a time when first read (or
ahead of time by :meth:`ShardCache.prefetch`), into a temporary name, hashed, and renamed into the mirror
only when every byte matches the sidecar's checksum; then they are memory-mapped like a local store's.
A cached file is hashed again when a store opened later first reads it, exactly as a local store is.

The data files of all cached stores share a size budget (``$PROBEKIT_CACHE_BYTES``, e.g. ``20GB``;
default 20 GiB): before a file is fetched, the least recently used cached files are deleted until it fits.
The files of the two latest reads are never evicted, so the cache may exceed the budget by them: a read
never fails for the budget (a file larger than the whole budget is fetched all the same, with a warning).
A sidecar that changed in the remote store (the store was re-extracted) drops its shard's cached files.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from probekit.fingerprint import file_checksum, hash_bytes
from probekit.store._errors import EXAMPLES, MANIFEST, CorruptShardError, StoreError
from probekit.store._remote import Remote
from probekit.store._shards import shard_name, verify_file
from probekit.store._validate import MAX_JSON_BYTES

__all__ = ["cache_root", "cache_budget", "ShardCache", "mirror_store", "open_remote", "write_bytes_atomic", "url_key"]

logger = logging.getLogger(__name__)

DEFAULT_BUDGET = 20 << 30
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}
#: the example table is a parquet file of the texts and labels: far below this
MAX_EXAMPLES_BYTES = 16 << 30


def cache_root() -> Path:
    """``$PROBEKIT_CACHE``, or ``~/.cache/probekit``."""
    return Path(os.environ.get("PROBEKIT_CACHE") or Path.home() / ".cache" / "probekit").expanduser()


def cache_budget() -> int:
    """Bytes of shard data the cache may hold: ``$PROBEKIT_CACHE_BYTES`` (``"20GB"``, ``"512MiB"``, ``1000000``).

    Examples
    --------
    >>> import os; os.environ["PROBEKIT_CACHE_BYTES"] = "1.5 GB"; cache_budget()
    1610612736
    >>> del os.environ["PROBEKIT_CACHE_BYTES"]; cache_budget() == DEFAULT_BUDGET
    True
    """
    text = os.environ.get("PROBEKIT_CACHE_BYTES", "").strip()
    if not text:
        return DEFAULT_BUDGET
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", text)
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(f"PROBEKIT_CACHE_BYTES must be a size such as 20GB or 512MiB, not {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def url_key(url: str) -> str:
    """The cache folder name of a store URL."""
    return hash_bytes(url.rstrip("/").encode())[:32]


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name and a rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except FileNotFoundError:
        return False


def mirror_store(remote: Remote, mirror: Path) -> tuple[dict[str, int], bool]:
    """Copy a remote store's manifest, sidecars and example table into ``mirror`` (its local layout).

    Returns the sizes of the remote objects (key -> bytes) and whether the manifest says the store is complete.
    Nothing is parsed here beyond the manifest's shard count: the caller reads the mirror with the checks of
    a local store. Raises ``FileNotFoundError`` when there is no manifest.
    """
    from probekit.store._manifest import read_manifest

    (mirror / "shards").mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(mirror / MANIFEST, remote.read_bytes(MANIFEST, MAX_JSON_BYTES))
    manifest = read_manifest(mirror / MANIFEST)
    if not manifest["complete"]:
        return {}, False
    sizes = remote.listing()
    for k in range(manifest["n_shards"]):
        rel = f"shards/{shard_name(k)}.json"
        local = mirror / rel
        if rel not in sizes:
            local.unlink(missing_ok=True)
            continue
        data = remote.read_bytes(rel, MAX_JSON_BYTES)
        if not _same_bytes(local, data):
            _drop_files(mirror / "shards" / shard_name(k))
            write_bytes_atomic(local, data)
    recorded = manifest["files"].get(EXAMPLES)
    if isinstance(recorded, str) and EXAMPLES in sizes:
        local = mirror / EXAMPLES
        if not (local.is_file() and file_checksum(local, recorded.partition(":")[0]) == recorded):
            size = sizes[EXAMPLES]
            if size > MAX_EXAMPLES_BYTES:
                raise StoreError(f"{remote.where(EXAMPLES)} is {size} bytes, more than any example table "
                                 f"({MAX_EXAMPLES_BYTES}); forged or damaged, nothing was read from it")
            tmp = mirror / f"{EXAMPLES}.{os.getpid()}.part"
            remote.download(EXAMPLES, tmp, size)
            os.replace(tmp, local)
    return sizes, True


def open_remote(url: str) -> tuple[Path, dict[str, int], ShardCache]:
    """Mirror the small files of the store at ``url`` into the cache; its mirror folder, object sizes and fetcher."""
    remote = Remote(url)
    mirror = cache_root() / "stores" / url_key(remote.url)
    try:
        sizes, _complete = mirror_store(remote, mirror)
    except FileNotFoundError:
        raise StoreError(f"{remote.url} has no {MANIFEST}: it is not a probekit activation store") from None
    return mirror, sizes, ShardCache(remote, mirror, sizes)


def _drop_files(folder: Path) -> None:
    if folder.is_dir():
        for p in folder.iterdir():
            p.unlink(missing_ok=True)


class _Budget:
    """The shared size budget of every cached store's data files (least recently used go first)."""

    def __init__(self, root: Path, limit: int):
        self.root, self.limit = root, limit

    def make_room(self, nbytes: int, keep: Path, pinned=()) -> None:
        files = []
        for p in self.root.glob("stores/*/shards/*/*.bin"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            files.append((st.st_mtime, st.st_size, p))
        total = sum(f[1] for f in files)
        if total + nbytes <= self.limit:
            return
        if nbytes > self.limit:
            logger.warning("%s: %d bytes, more than the whole cache budget (%d bytes, $PROBEKIT_CACHE_BYTES); "
                           "fetching it anyway", keep, nbytes, self.limit)
        for _mtime, size, p in sorted(files):
            if total + nbytes <= self.limit:
                break
            if p == keep or p in pinned:
                continue
            p.unlink(missing_ok=True)  # a process that has it mapped keeps reading it (POSIX)
            total -= size
            logger.info("cache budget: evicted %s (%d bytes)", p, size)


class ShardCache:
    """Fetches a remote store's data files into its local mirror, verified, on demand or ahead of time."""

    def __init__(self, remote: Remote, mirror: Path, sizes: Mapping[str, int]):
        self.remote, self.mirror, self.sizes = remote, mirror, dict(sizes)
        self.budget = _Budget(cache_root(), cache_budget())
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: dict[str, concurrent.futures.Future] = {}
        self.fetched = 0  # bytes fetched by this cache (a figure for benchmarks and logs)
        #: the files of the latest reads: never evicted to make room for a prefetch or the next read
        self._pinned: collections.deque[Path] = collections.deque(maxlen=2)

    def _lock(self, rel: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(rel, threading.Lock())

    def fetch(self, sidecar: Mapping[str, Any], name: str, pin: bool = True) -> bool:
        """Make stream ``name`` of the shard ``sidecar`` describes present in the mirror; ``True`` when it was
        fetched now (and so verified), ``False`` when a cached copy was already there (the caller hashes it).

        Raises :class:`CorruptShardError` when the fetched bytes do not match the sidecar's checksum.
        """
        info = sidecar["streams"][name]
        rel = f"shards/{shard_name(sidecar['shard'])}/{info['file']}"
        path = self.mirror / rel
        if pin:
            self._pinned.append(path)
        with self._lock(rel):
            try:
                os.utime(path)  # most recently used
                return False
            except FileNotFoundError:
                pass
            size = int(info["bytes"])
            if self.sizes.get(rel) != size:
                raise CorruptShardError(f"{self.remote.where(rel)} is {self.sizes.get(rel, 'missing')}"
                                        f"{' bytes' if rel in self.sizes else ''}, not the {size} bytes its sidecar "
                                        "declares; re-run probekit.extract with the same arguments to repair it")
            self.budget.make_room(size, path, set(self._pinned))
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
            try:
                self.remote.download(rel, tmp, size)
                algorithm = str(info["checksum"]).partition(":")[0]
                found = file_checksum(tmp, algorithm)
                if found != info["checksum"]:
                    raise CorruptShardError(f"{self.remote.where(rel)} does not match its {algorithm} checksum "
                                            "(damaged in the store or on the way); nothing of it was used")
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            self.fetched += size
            logger.debug("fetched %s (%d bytes)", self.remote.where(rel), size)
            return True

    def check(self, store, k: int, name: str) -> None:
        """What :class:`~probekit.store.ActivationStore` does before it maps stream ``name`` of shard ``k`` of a
        store at a URL: fetch it (verified on the way) or hash the cached copy once (fetched again when damaged),
        then start fetching the same stream of the next shard."""
        sidecars = store._sidecars
        if self.fetch(sidecars[k], name):
            store._checked.add((k, name))
        elif (k, name) not in store._checked:
            try:
                verify_file(store.path / "shards", sidecars[k], name)
            except CorruptShardError as exc:
                logger.warning("cached copy of %s: %s; fetching it again", self.remote.url, exc)
                self.drop(sidecars[k], name)
                self.fetch(sidecars[k], name)
            store._checked.add((k, name))
        if k + 1 < len(sidecars):
            self.prefetch(sidecars[k + 1], name)

    def drop(self, sidecar: Mapping[str, Any], name: str) -> None:
        """Delete the cached copy of a stream (it failed its checksum: fetched again on the next read)."""
        info = sidecar["streams"][name]
        (self.mirror / "shards" / shard_name(sidecar["shard"]) / info["file"]).unlink(missing_ok=True)

    def prefetch(self, sidecar: Mapping[str, Any], name: str) -> None:
        """Start fetching a stream in a background thread (errors surface when it is read)."""
        rel = f"{sidecar['shard']}/{name}"
        with self._guard:
            if rel in self._pending:  # fetched or being fetched (a later read fetches it again if evicted)
                return
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="probekit-prefetch")
            self._pending[rel] = self._pool.submit(self._quiet_fetch, sidecar, name)

    def _quiet_fetch(self, sidecar: Mapping[str, Any], name: str) -> None:
        try:
            self.fetch(sidecar, name, pin=False)
        except Exception as exc:  # noqa: BLE001  (the read of the same file raises it again)
            logger.debug("prefetch of shard %s stream %s failed: %s", sidecar["shard"], name, exc)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
