"""What probekit writes into a store directory, and nothing else: the only files it will ever delete.

A store directory holds exactly::

    manifest.json            (manifest.json.tmp while it is being replaced)
    examples.parquet         (examples.parquet.tmp while it is being written)
    shards/00007.json        a shard's sidecar (00007.json.tmp while it is being written)
    shards/00007/NAME.bin    a shard's data files (in shards/00007.tmp/ until the shard is committed)
    probekit.lock            the writer's lock, while a process writes the store (see probekit.store._lock)

A run killed at any moment leaves a subset of these. :func:`foreign_entries`
lists everything else, so :func:`probekit.extract` can refuse to touch a
directory that holds anything probekit did not write, and
:func:`remove_store_files` deletes only the entries above.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from probekit.fingerprint import file_checksum
from probekit.store._errors import LOCK
from probekit.store._localfs import read_json_file
from probekit.store._lock import store_lock
from probekit.store._manifest import EXAMPLES, MANIFEST, StoreError, judge_existing, read_manifest, write_manifest
from probekit.store._shards import drop_shards_beyond, load_sidecar

__all__ = ["foreign_entries", "remove_store_files", "probekit_entries", "prepare_dir", "write_examples",
           "begin_store", "finish_store", "writing"]

logger = logging.getLogger(__name__)

_TOP_FILES = {MANIFEST, MANIFEST + ".tmp", EXAMPLES, EXAMPLES + ".tmp", LOCK}
_SHARD_DIR = re.compile(r"\d{5,}(\.tmp)?")
_SIDECAR = re.compile(r"\d{5,}\.json(\.tmp)?")
_DATA_FILE = re.compile(r"[A-Za-z0-9_.\-]+\.bin")


def _is_file(p: Path) -> bool:
    return p.is_file() and not p.is_symlink()


def _is_dir(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink()


def foreign_entries(out: str | os.PathLike, limit: int = 5) -> list[str]:
    """Up to ``limit`` paths under ``out`` (relative to it) that are not part of a probekit store.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "shards").mkdir(); (d / "notes.txt").write_text("mine")
    4
    >>> foreign_entries(d)
    ['notes.txt']
    """
    out = Path(out)
    found: list[str] = []
    for p in sorted(out.iterdir()):
        if p.name in _TOP_FILES and _is_file(p):
            continue
        if p.name == "shards" and _is_dir(p):
            found.extend(f"shards/{x}" for x in _foreign_in_shards(p))
        else:
            found.append(p.name + ("/" if p.is_dir() else ""))
        if len(found) >= limit:
            break
    return found[:limit]


def _foreign_in_shards(root: Path) -> list[str]:
    found = []
    for p in sorted(root.iterdir()):
        if _SIDECAR.fullmatch(p.name) and _is_file(p):
            continue
        if _SHARD_DIR.fullmatch(p.name) and _is_dir(p):
            found.extend(f"{p.name}/{f.name}" for f in sorted(p.iterdir())
                         if not (_DATA_FILE.fullmatch(f.name) and _is_file(f)))
            continue
        found.append(p.name + ("/" if p.is_dir() else ""))
    return found


def probekit_entries(out: str | os.PathLike) -> list[Path]:
    """The top-level entries of ``out`` that probekit writes, but the writer's lock (call :func:`foreign_entries`
    first)."""
    out = Path(out)
    return [p for p in sorted(out.iterdir()) if (p.name in _TOP_FILES and p.name != LOCK) or p.name == "shards"]


def _not_ours(out: Path, foreign: list[str]) -> StoreError:
    return StoreError(f"{out} is not a probekit store: it holds {', '.join(foreign)}, which probekit did not "
                      "write. Nothing was changed; write the store to a new or empty directory.")


@contextlib.contextmanager
def writing(out: Path) -> Iterator[None]:
    """Hold the writer's lock of ``out`` for the block, creating the directory if needed.

    A directory that is not a store (it holds anything probekit did not write) is refused before the
    lock file is created in it, so nothing is ever written into someone else's folder.

    Raises
    ------
    StoreError
        ``out`` is a file, or holds files probekit did not write.
    StoreLockedError
        Another process is writing ``out``.
    """
    if out.exists() and not _is_dir(out):
        raise StoreError(f"{out} exists and is not a directory; write the store to a new or empty directory")
    if out.exists():
        foreign = foreign_entries(out)
        if foreign:
            raise _not_ours(out, foreign)
    else:
        out.mkdir(parents=True, exist_ok=True)
    with store_lock(out):
        yield


def remove_store_files(out: str | os.PathLike) -> None:
    """Delete a store's files, keeping the directory itself; refuses if anything foreign is there.

    The manifest goes first, so a store is never left looking complete with
    parts of it missing.
    """
    out = Path(out)
    foreign = foreign_entries(out)
    if foreign:  # checked by the caller too: never delete around someone else's files
        raise StoreError(f"{out} holds files probekit did not write ({', '.join(foreign)}); not removing it")
    entries = probekit_entries(out)
    for p in sorted(entries, key=lambda p: p.name != MANIFEST):
        if _is_dir(p):
            shutil.rmtree(p)
        else:
            p.unlink()


def prepare_dir(out: Path, fp: str, components: dict, overwrite: bool) -> None:
    """Make ``out`` ready for the store ``fp``: new, resumed, repaired, or replaced (only when ours).

    Raises
    ------
    StoreError
        ``out`` is a file, or holds anything probekit did not write, or a
        manifest that is not probekit's (never deleted, whatever
        ``overwrite`` says); or holds a damaged store and not ``overwrite``.
    FingerprintMismatchError
        ``out`` holds a store made from other inputs and not ``overwrite``.
    """
    if out.exists() and not _is_dir(out):
        raise StoreError(f"{out} exists and is not a directory; write the store to a new or empty directory")
    if not out.exists():
        out.mkdir(parents=True)
        return
    names = {p.name for p in out.iterdir()} - {LOCK}
    if not names:
        return
    foreign = foreign_entries(out)
    if foreign:
        raise _not_ours(out, foreign)
    mpath = out / MANIFEST
    if not _is_file(mpath):
        _without_manifest(out, names, overwrite)
        return
    try:
        found = read_json_file(mpath)
    except StoreError as exc:
        raise StoreError(f"{exc}. probekit cannot tell whether it wrote {out}, so nothing was changed: delete the "
                         "directory yourself if it is a damaged store, or write the store elsewhere") from None
    reuse, damage = judge_existing(found, str(mpath), fp, components, overwrite=overwrite, place=str(out),
                                   kind="directory")
    if not reuse:
        remove_store_files(out)
    elif damage is None:
        logger.info("%s: store with matching fingerprint found; reusing its complete shards", out)
    else:
        logger.warning("%s: %s; rewriting it and verifying every shard before reuse", out, damage)


def _without_manifest(out: Path, names: set[str], overwrite: bool) -> None:
    """A directory of probekit names but no manifest: remains of a run killed before the manifest, or a store
    whose manifest was lost."""
    if names <= {MANIFEST + ".tmp"}:
        logger.info("%s: remains of an extraction stopped before its manifest existed; starting it afresh", out)
        remove_store_files(out)
        return
    if "shards" not in names:  # e.g. a lone examples.parquet: nothing shows it is probekit's
        raise StoreError(f"{out} holds {', '.join(sorted(names))} but no probekit manifest; probekit cannot tell "
                         "whether it wrote them, so nothing was changed: write the store to a new or empty directory")
    if not overwrite:
        raise StoreError(f"{out} holds no probekit manifest, only parts of a store (its manifest was deleted or "
                         "lost); pass overwrite=True (--overwrite) to replace them, or write the store elsewhere")
    logger.warning("%s: replacing the parts of a store without a manifest", out)
    remove_store_files(out)


def write_examples(out: Path, data) -> str:
    """Write the example table (``examples.parquet``) atomically; returns its checksum."""
    tmp = out / (EXAMPLES + ".tmp")
    data.frame.to_parquet(tmp, index=False)
    checksum = file_checksum(tmp)
    os.replace(tmp, out / EXAMPLES)
    return checksum


def begin_store(out: Path, manifest: dict, overwrite: bool, data) -> None:
    """Check or create ``out`` for the (incomplete) ``manifest``, then write it and the example table
    (call inside :func:`writing`).

    The manifest comes first, so anything in the directory after this point is recognisably probekit's;
    shards numbered beyond ``manifest["n_shards"]`` (left by a lost manifest) are removed.
    """
    prepare_dir(out, manifest["fingerprint"], manifest["components"], overwrite)
    write_manifest(out / MANIFEST, manifest)
    (out / "shards").mkdir(exist_ok=True)
    drop_shards_beyond(out / "shards", manifest["n_shards"])
    manifest["files"] = {EXAMPLES: write_examples(out, data)}
    write_manifest(out / MANIFEST, manifest)


def finish_store(out: Path, fingerprint: str, n_shards: int, stats: dict, what: str) -> dict:
    """Mark the store complete once every shard is committed: totals, shard checksums and ``stats``.

    Raises :class:`StoreError` naming the missing shards (``what``: the work that should have written them).
    """
    root = out / "shards"
    manifest = read_manifest(out / MANIFEST)
    sidecars = [load_sidecar(root, k, fingerprint, manifest) for k in range(n_shards)]
    missing = [k for k, side in enumerate(sidecars) if side is None]
    if missing:
        raise StoreError(f"{out}: shards {missing[:5]} are missing after {what}; re-run to complete them")
    manifest.update(complete=True, n_tokens=sum(sum(side["n_tokens"]) for side in sidecars),
                    n_words=sum(sum(side["n_words"]) for side in sidecars),
                    shards=[side["sidecar_sha256"] for side in sidecars], stats=stats)
    write_manifest(out / MANIFEST, manifest)
    return manifest
