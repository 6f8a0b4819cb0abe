"""Writing a store at a URL: shards staged locally, uploaded, committed by their sidecar, the manifest last.

:func:`probekit.extract` with ``out="s3://bucket/run"`` writes each shard exactly as into a local store, but
into a staging folder under ``$PROBEKIT_CACHE/staging/`` (one per URL and rank), then uploads it: its data
objects first, its sidecar last (the sidecar is the shard's commit: an object store has no rename), and
deletes the staged copy. Rank 0 writes the (incomplete) manifest and the example table before any shard and
the complete manifest, which names every sidecar by its SHA-256, after all of them. So the store's objects
are at every moment a probekit store, complete or resumable:

- a data object no sidecar names yet (a run killed mid-shard) is deleted when the shard is redone;
- a shard is reused on resume when its sidecar passes every check of a local sidecar (its own hash, the
  store's fingerprint, the manifest) and each object it names has the declared size. Its bytes are checked
  against the sidecar's checksums whenever the store is read (:mod:`probekit.store._cache`) or verified
  (``probekit store verify``), not on resume: that would download the whole store;
- objects of probekit's layout that the manifest does not cover (shards beyond its shard count, the store of
  another fingerprint with ``overwrite``) are deleted; anything else under the URL makes the writer refuse.

One writer at a time is asked for with a lease object, ``probekit.lock`` (see :class:`Lease`).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from probekit.store._cache import cache_root, url_key, write_bytes_atomic
from probekit.store._errors import LOCK, StoreLockedError
from probekit.store._manifest import EXAMPLES, MANIFEST, StoreError, judge_existing, read_manifest, write_manifest
from probekit.store._remote import Remote, is_store_object
from probekit.store._shards import load_sidecar, remove_shard, shard_name
from probekit.store._validate import MAX_JSON_BYTES, check_size, parse_json

__all__ = ["RemoteTarget", "Lease"]

logger = logging.getLogger(__name__)


class Lease:
    """One writer at a time on an object store: a lease object ``probekit.lock`` renewed while the writer runs.

    Object stores have no locks, so this is a lease, with its limits: the holder writes
    ``{"owner", "host", "pid", "expires"}`` and renews it every ``ttl / 4`` seconds; another writer that
    finds an unexpired lease of another owner stops with :class:`StoreLockedError`, and takes over an
    expired one, or one whose holder ran on the same host and is no longer alive. Two writers starting
    within the same instant can both believe they hold it (there is no compare-and-swap in the S3 API probekit
    relies on): the lease is re-read after it is written and a writer that lost the race stops, which
    narrows the window to the store's own read-after-write delay without closing it. Clocks of different
    machines must agree to within the ``ttl``. Ranks of one ``torchrun`` job share rank 0's lease.
    """

    def __init__(self, remote: Remote, ttl: float = 120.0):
        self.remote, self.ttl = remote, ttl
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> bytes:
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "expires": time.time() + self.ttl,
                           "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
                           }).encode()

    def _holder(self) -> dict | None:
        try:
            found = parse_json(self.remote.read_bytes(LOCK, 1 << 16), self.remote.where(LOCK))
        except FileNotFoundError:
            return None
        except StoreError:
            return None  # unreadable: not a live lease
        return found if isinstance(found, dict) else None

    def _live(self, holder: dict) -> bool:
        if holder.get("owner") == self.owner:
            return False
        expires = holder.get("expires")
        if not isinstance(expires, (int, float)) or expires < time.time():
            return False
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            try:
                os.kill(holder["pid"], 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True

    def acquire(self) -> None:
        holder = self._holder()
        if holder is not None and self._live(holder):
            raise StoreLockedError(
                f"{self.remote.url} is being written by another probekit process (pid {holder.get('pid')} on host "
                f"{holder.get('host')}, since {holder.get('since')}; its lease runs until "
                f"{time.strftime('%H:%M:%S', time.gmtime(holder['expires']))} UTC unless renewed); wait for it "
                "to finish, or write elsewhere")
        self.remote.put_bytes(LOCK, self._record())
        time.sleep(0.05)
        holder = self._holder()
        if holder is None or holder.get("owner") != self.owner:
            raise StoreLockedError(f"{self.remote.url}: another probekit process took the lease at the same moment; "
                                   "wait for it to finish, or write elsewhere")
        self._thread = threading.Thread(target=self._renew, name="probekit-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                self.remote.put_bytes(LOCK, self._record())
            except Exception as exc:  # noqa: BLE001  (a transient failure; the next renewal tries again)
                logger.warning("%s: renewing the writer's lease failed: %s", self.remote.url, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        holder = self._holder()
        if holder is not None and holder.get("owner") == self.owner:
            self.remote.remove([LOCK])

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


class RemoteTarget:
    """One rank's side of writing the store at ``url``: its staging folder and the uploads.

    Parameters
    ----------
    url : str
        The store's URL (not ``file://``: a local path is written directly).
    rank : int
        The ``torchrun`` rank (each rank stages its shards in a folder of its own).
    """

    def __init__(self, url: str, rank: int = 0):
        self.remote = Remote(url)
        self.remote._writable()
        self.url = self.remote.url
        self.rank = rank
        self.stage = cache_root() / "staging" / f"{url_key(self.url)}.{rank}"

    # ------------------------------------------------------------ rank 0
    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the store's lease and this machine's lock of the staging folder for the block."""
        from probekit.store._layout import remove_store_files, writing

        self.stage.parent.mkdir(parents=True, exist_ok=True)
        with writing(self.stage), Lease(self.remote).held():
            remove_store_files(self.stage)  # staged files of an earlier run were uploaded or are redone
            yield

    def begin(self, manifest: dict, overwrite: bool, data) -> None:
        """Check the remote objects, then stage and upload the example table and the (incomplete) manifest."""
        from probekit.store._layout import write_examples

        self._prepare(manifest, overwrite)
        (self.stage / "shards").mkdir(parents=True, exist_ok=True)
        manifest["files"] = {EXAMPLES: write_examples(self.stage, data)}
        write_manifest(self.stage / MANIFEST, manifest)
        self.remote.upload(self.stage / EXAMPLES, EXAMPLES)
        self.remote.upload(self.stage / MANIFEST, MANIFEST)

    def _prepare(self, manifest: dict, overwrite: bool) -> None:
        objects = self.remote.listing()
        foreign = sorted(rel for rel in objects if not is_store_object(rel))
        if foreign:
            raise StoreError(f"{self.url} is not a probekit store: it holds {', '.join(foreign[:5])}, which probekit "
                             "did not write. Nothing was changed; write the store to a new or empty location.")
        ours = [rel for rel in objects if rel != LOCK]
        if not ours:
            return
        if MANIFEST not in objects:
            if not overwrite:
                raise StoreError(f"{self.url} holds no probekit manifest, only parts of a store (its manifest was "
                                 "deleted or lost); pass overwrite=True (--overwrite) to replace them, or write the "
                                 "store elsewhere")
            self._remove_all(ours)
            return
        found = parse_json(self.remote.read_bytes(MANIFEST, MAX_JSON_BYTES), self.remote.where(MANIFEST))
        reuse, _ = judge_existing(found, self.remote.where(MANIFEST), manifest["fingerprint"], manifest["components"],
                                  overwrite=overwrite, place=self.url, kind="location")
        if reuse:
            logger.info("%s: store with matching fingerprint found; reusing its committed shards", self.url)
            beyond = [rel for rel in ours if rel.startswith("shards/")
                      and int(rel[7:].split("/")[0].split(".")[0]) >= manifest["n_shards"]]
            self.remote.remove(beyond)
            return
        self._remove_all(ours)

    def _remove_all(self, rels: list[str]) -> None:
        """Delete a store's objects, the manifest first (never a store that looks complete with parts missing)."""
        self.remote.remove(sorted(rels, key=lambda r: r != MANIFEST))

    def finish(self, fingerprint: str, n_shards: int, stats: dict, what: str) -> dict:
        """Copy every committed sidecar into the staging folder, complete the manifest there, upload it last."""
        from probekit.store._layout import finish_store

        for k in range(n_shards):
            rel = f"shards/{shard_name(k)}.json"
            try:
                write_bytes_atomic(self.stage / rel, self.remote.read_bytes(rel, MAX_JSON_BYTES))
            except FileNotFoundError:
                pass  # finish_store names the missing shards
        manifest = finish_store(self.stage, fingerprint, n_shards, stats, what)
        self.remote.upload(self.stage / MANIFEST, MANIFEST)
        return manifest

    # ---------------------------------------------------------- every rank
    def read_manifest(self) -> dict:
        """The store's manifest as rank 0 wrote it (rank 0 has it staged; every other rank copies it into its
        staging folder, emptied first of anything an earlier, killed run left there)."""
        if self.rank != 0:
            self.cleanup()
            write_bytes_atomic(self.stage / MANIFEST, self.remote.read_bytes(MANIFEST, MAX_JSON_BYTES))
        (self.stage / "shards").mkdir(parents=True, exist_ok=True)
        return read_manifest(self.stage / MANIFEST)

    def reuse(self, index: int, manifest: dict[str, Any]) -> bool:
        """Whether shard ``index`` is committed in the remote store; if not, delete its remote traces."""
        name = shard_name(index)
        rel = f"shards/{name}.json"
        root = self.stage / "shards"
        try:
            write_bytes_atomic(root / f"{name}.json", self.remote.read_bytes(rel, MAX_JSON_BYTES))
        except FileNotFoundError:
            side = None
        else:
            side = load_sidecar(root, index, manifest["fingerprint"], manifest)
        if side is not None:
            sizes = self.remote.listing(f"shards/{name}/")
            try:
                for stream, info in side["streams"].items():
                    key = f"shards/{name}/{info['file']}"
                    if key not in sizes:
                        raise StoreError(f"{self.remote.where(key)} is missing")
                    check_size(info, sizes[key], f"shard {name}, stream {stream}")
                named = {f"shards/{name}/{info['file']}" for info in side["streams"].values()}
                self.remote.remove(sorted(set(sizes) - named))  # objects its sidecar does not name
                remove_shard(root, index)
                return True
            except StoreError as exc:
                logger.warning("redoing shard %d: %s", index, exc)
        remove_shard(root, index)
        stale = [rel, *self.remote.listing(f"shards/{name}/")]
        self.remote.remove(stale)  # the sidecar first: the shard is uncommitted before its data goes
        return False

    def publish(self, index: int) -> None:
        """Upload a committed staged shard (data objects, then its sidecar), then drop the staged copy."""
        root = self.stage / "shards"
        name = shard_name(index)
        for f in sorted((root / name).iterdir()):
            self.remote.upload(f, f"shards/{name}/{f.name}")
        self.remote.upload(root / f"{name}.json", f"shards/{name}.json")
        remove_shard(root, index)

    def cleanup(self) -> None:
        """Remove this rank's staging folder (rank 0's keeps its lock file until the lock is released)."""
        if self.stage.exists():
            for p in self.stage.iterdir():
                if p.name == LOCK:
                    continue
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

