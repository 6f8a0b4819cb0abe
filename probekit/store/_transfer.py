"""Moving stores between a disk and a URL: :func:`push`, :func:`pull`, :func:`verify_store`, :func:`list_stores`.

All of them handle only probekit's own files, check every byte against the manifest's and sidecars'
checksums, and are resumable and idempotent: a shard already at the destination with the same sidecar (and
files of the declared sizes) is skipped, and the manifest, which makes the copy a store, goes last.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass

from probekit.fingerprint import file_checksum
from probekit.store._errors import EXAMPLES, LOCK, MANIFEST, CorruptShardError, StoreError
from probekit.store._remote import Remote, is_store_object, local_path
from probekit.store._shards import shard_name
from probekit.store._validate import MAX_JSON_BYTES

__all__ = ["push", "pull", "verify_store", "list_stores", "Transfer"]

logger = logging.getLogger(__name__)


@dataclass
class Transfer:
    """What a push or pull did: files copied, files skipped (already there), bytes copied."""

    copied: int = 0
    skipped: int = 0
    bytes: int = 0

    def __str__(self) -> str:
        return f"{self.copied} files copied ({self.bytes:,} bytes), {self.skipped} already there"


def _remote_bytes(remote: Remote, rel: str) -> bytes | None:
    try:
        return remote.read_bytes(rel, MAX_JSON_BYTES)
    except FileNotFoundError:
        return None


def push(src: str | os.PathLike, url: str, *, overwrite: bool = False) -> Transfer:
    """Upload the local store ``src`` to ``url``, every byte verified first; returns what was copied.

    Raises
    ------
    StoreError
        ``src`` is not a complete, intact store; ``url`` holds anything probekit did not write, or another
        store and not ``overwrite``.

    Examples
    --------
    >>> import os, probekit, tempfile, transformers
    >>> os.environ["PROBEKIT_CACHE"] = tempfile.mkdtemp()  # where stores at URLs are cached when read
    >>> m = probekit.load_model(transformers.BertConfig(hidden_size=32, num_hidden_layers=2,
    ...                         num_attention_heads=4, intermediate_size=37), seed=0)
    >>> d = tempfile.mkdtemp() + "/acts"
    >>> _ = probekit.extract(m, ["a cat sat", "it rained"], ["L1.resid"], d)
    >>> print(push(d, "memory://doc-bucket/acts"))
    6 files copied (... bytes), 0 already there
    >>> print(push(d, "memory://doc-bucket/acts"))
    0 files copied (0 bytes), 6 already there
    >>> verify_store("memory://doc-bucket/acts")
    []
    >>> [where for where, _ in list_stores("memory://doc-bucket")]
    ['memory://doc-bucket/acts']
    >>> pulled = tempfile.mkdtemp() + "/copy"
    >>> print(pull("memory://doc-bucket/acts", pulled))
    6 files copied (... bytes), 0 already there
    """
    from probekit.store._remote_write import Lease
    from probekit.store._store import ActivationStore

    store = ActivationStore.open(src, verify="full")
    src = store.path
    remote = Remote(url)
    remote._writable()
    done = Transfer()
    with Lease(remote).held():
        objects = remote.listing()
        foreign = sorted(rel for rel in objects if not is_store_object(rel))
        if foreign:
            raise StoreError(f"{remote.url} holds {', '.join(foreign[:5])}, which probekit did not write; nothing "
                             "was changed: push the store to a new or empty location")
        local_manifest = (src / MANIFEST).read_bytes()
        there = _remote_bytes(remote, MANIFEST)
        if there is not None and there != local_manifest:
            import json

            try:
                other = json.loads(there).get("fingerprint")
            except (ValueError, AttributeError):
                other = None
            if other != store.fingerprint and not overwrite:
                raise StoreError(f"{remote.url} holds another store (fingerprint {str(other)[:12]}...); pass "
                                 "overwrite=True (--overwrite) to replace it, or push elsewhere")
            remote.remove([MANIFEST])  # the copy is no store until its new manifest is in place
        for k, sc in enumerate(store._sidecars):
            name = shard_name(k)
            side_rel = f"shards/{name}.json"
            local_side = (src / side_rel).read_bytes()
            files = {f"shards/{name}/{info['file']}": int(info["bytes"]) for info in sc["streams"].values()}
            if _remote_bytes(remote, side_rel) == local_side and all(objects.get(r) == n for r, n in files.items()):
                done.skipped += len(files) + 1
                continue
            remote.remove([side_rel])
            for rel, n in files.items():
                remote.upload(src / rel, rel)
                done.copied, done.bytes = done.copied + 1, done.bytes + n
            remote.put_bytes(side_rel, local_side)
            done.copied += 1
        n = store.manifest["n_shards"]
        remote.remove([rel for rel in objects if rel.startswith("shards/")
                       and int(rel[7:].split("/")[0].split(".")[0]) >= n])  # shards of a larger store there before
        if objects.get(EXAMPLES) != (src / EXAMPLES).stat().st_size or there != local_manifest:
            remote.upload(src / EXAMPLES, EXAMPLES)
            done.copied += 1
        else:
            done.skipped += 1
        if there != local_manifest:
            remote.put_bytes(MANIFEST, local_manifest)
            done.copied += 1
        else:
            done.skipped += 1
    logger.info("pushed %s to %s: %s", src, remote.url, done)
    return done


def pull(url: str, dest: str | os.PathLike) -> Transfer:
    """Download the store at ``url`` into the local folder ``dest``, every file checked against its checksum
    before it is renamed into place; returns what was copied.

    Raises
    ------
    StoreError
        ``url`` is not a complete store, a file does not match its checksum, or ``dest`` holds anything
        probekit did not write or another store.
    """
    from probekit.store._layout import prepare_dir, writing
    from probekit.store._manifest import write_manifest
    from probekit.store._shards import load_sidecar, verify_shard
    from probekit.store._store import ActivationStore

    store = ActivationStore.open(url)  # every JSON file and object size checked, in the cache's mirror
    fetcher = store._fetcher
    if fetcher is None:
        raise StoreError(f"{url} is a local path; copy it, or push it to a URL")
    dest = local_path(dest)
    if dest is None:
        raise StoreError("pull copies a store at a URL into a local folder; use push to upload")
    done = Transfer()
    with writing(dest):
        prepare_dir(dest, store.fingerprint, store.manifest["components"], overwrite=False)
        mirror = store.path
        have = (dest / MANIFEST).read_bytes() if (dest / MANIFEST).is_file() else None
        if have != (mirror / MANIFEST).read_bytes():
            # until every file is in place the copy says it is incomplete (and whose it is: a re-run resumes it)
            write_manifest(dest / MANIFEST, {**store.manifest, "complete": False})
        root = dest / "shards"
        root.mkdir(exist_ok=True)
        for k, sc in enumerate(store._sidecars):
            name = shard_name(k)
            have = load_sidecar(root, k, store.fingerprint, store.manifest)
            if have is not None and have["sidecar_sha256"] == sc["sidecar_sha256"]:
                try:
                    verify_shard(root, have)
                    done.skipped += len(sc["streams"]) + 1
                    continue
                except StoreError as exc:
                    logger.warning("pulling shard %d again: %s", k, exc)
            (root / f"{name}.json").unlink(missing_ok=True)
            tmp = root / f"{name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(root / name, ignore_errors=True)
            tmp.mkdir()
            for info in sc["streams"].values():
                rel = f"shards/{name}/{info['file']}"
                fetcher.remote.download(rel, tmp / info["file"], int(info["bytes"]))
                algorithm = str(info["checksum"]).partition(":")[0]
                if file_checksum(tmp / info["file"], algorithm) != info["checksum"]:
                    raise CorruptShardError(f"{fetcher.remote.where(rel)} does not match its {algorithm} checksum "
                                            "(damaged in the store or on the way); nothing of it was kept")
                done.copied, done.bytes = done.copied + 1, done.bytes + int(info["bytes"])
            os.replace(tmp, root / name)
            shutil.copyfile(mirror / "shards" / f"{name}.json", root / f"{name}.json")
            done.copied += 1
        store._check_examples()
        shutil.copyfile(mirror / EXAMPLES, dest / EXAMPLES)
        shutil.copyfile(mirror / MANIFEST, dest / f"{MANIFEST}.tmp")
        os.replace(dest / f"{MANIFEST}.tmp", dest / MANIFEST)
        done.copied += 2
    ActivationStore.open(dest, verify="full")
    logger.info("pulled %s into %s: %s", url, dest, done)
    return done


def verify_store(location: str | os.PathLike) -> list[str]:
    """Check every byte of the store at a path or URL against its checksums; the problems found (empty: intact).

    A store at a URL is read object by object, nothing kept (the cache is not used, so a damaged object is
    found even when a good copy is cached).
    """
    from probekit.store._store import ActivationStore

    try:
        store = ActivationStore.open(location)
    except StoreError as exc:
        return [str(exc)]
    problems = []
    if store._fetcher is None:
        try:
            store.verify()
        except StoreError as exc:
            problems.append(str(exc))
        return problems
    remote = store._fetcher.remote
    try:
        store._check_examples()
    except StoreError as exc:
        problems.append(str(exc))
    for k, sc in enumerate(store._sidecars):
        for name, info in sc["streams"].items():
            rel = f"shards/{shard_name(k)}/{info['file']}"
            algorithm = str(info["checksum"]).partition(":")[0]
            with remote.fs.open(remote.key(rel), "rb", block_size=8 << 20) as f:
                found = file_checksum(f, algorithm)
            if found != info["checksum"]:
                problems.append(f"{remote.where(rel)} (shard {k}, stream {name}) does not match its {algorithm} "
                                "checksum")
    return problems


def list_stores(url: str) -> list[tuple[str, dict | None]]:
    """The stores at or under ``url``: (URL of each, its manifest summary; ``None`` when unreadable)."""
    from probekit.store._manifest import check_manifest
    from probekit.store._validate import parse_json

    remote = Remote(url, bucket_ok=True)
    out = []
    for rel in sorted(remote.listing()):
        if rel != MANIFEST and not rel.endswith("/" + MANIFEST):
            continue
        where = remote.url if rel == MANIFEST else f"{remote.url}/{rel[: -len(MANIFEST) - 1]}"
        try:
            m = parse_json(remote.read_bytes(rel, MAX_JSON_BYTES), remote.where(rel))
            check_manifest(m, remote.where(rel))
        except StoreError as exc:
            logger.warning("%s", exc)
            out.append((where, None))
            continue
        out.append((where, {"model": m["model"]["name"], "examples": m["n_examples"], "shards": m["n_shards"],
                            "sites": len(m["sites"]), "dtype": m["settings"]["dtype"], "complete": m["complete"],
                            "fingerprint": m["fingerprint"][:12], "locked": _locked(remote, rel)}))
    return out


def _locked(remote: Remote, manifest_rel: str) -> bool:
    return remote.size(manifest_rel[: -len(MANIFEST)] + LOCK) is not None
