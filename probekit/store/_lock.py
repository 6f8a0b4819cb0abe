"""One writer at a time: a store folder is locked while it is written.

The lock is an OS lock (``fcntl.flock``) on the file ``probekit.lock`` in the store folder, so the
kernel releases it when its holder exits, however it exits: the lock of a killed writer is simply
taken by the next one, with no guess about whether a process is still alive. The holder writes who it
is into the file (pid, host, since when, its command line) for the message a second writer gets::

    StoreLockedError: runs/rt is being written by another probekit process (pid 4242 on host gpu-3,
    since 2025-01-31 09:12:44 UTC: probekit extract ...); wait for it to finish, or write elsewhere

Readers take no lock. The lock file is probekit's own: the folder checks know it, and the holder
removes it when done (a killed holder leaves it behind, which harms nothing: the next writer takes
it over). A folder that holds anything probekit did not write is refused before the lock file is
created, so nothing is ever written into someone else's folder.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from probekit.store._errors import LOCK, StoreError, StoreLockedError

__all__ = ["store_lock", "lock_holder"]

logger = logging.getLogger(__name__)


def _me() -> dict:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    command = " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]]) if sys.argv else "python"
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": now, "command": command[:200]}


def lock_holder(fd: int) -> dict | None:
    """What a lock file says of its holder, or ``None`` when it says nothing readable (a holder starting up)."""
    try:
        data = os.pread(fd, 4096, 0)
        info = json.loads(data)
    except (OSError, ValueError, RecursionError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict | None) -> str:
    if info is None:
        return "a process that is just starting"
    text = f"pid {info.get('pid')} on host {info.get('host')}, since {info.get('since')}"
    command = info.get("command")
    return f"{text}: {str(command)[:120]}" if command else text


def _open_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_NONBLOCK", 0), 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"{path} is not a regular file; it cannot be probekit's lock")
    return fd


@contextlib.contextmanager
def store_lock(out: str | os.PathLike) -> Iterator[None]:
    """Hold the writer's lock of the store folder ``out`` (which must exist) for the block.

    Raises
    ------
    StoreLockedError
        Another process holds it; the message names the holder (pid, host, since when).
    """
    out = Path(out)
    path = out / LOCK
    while True:
        try:
            fd = _open_lock(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(f"{path} is a symbolic link; it cannot be probekit's lock") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(fd)
            os.close(fd)
            raise StoreLockedError(f"{out} is being written by another probekit process ({_describe(holder)}); "
                                   "wait for it to finish, or write the store to another directory") from None
        except OSError as exc:  # a filesystem without locks (some network mounts)
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
            logger.warning("%s: this filesystem cannot lock files (%s); make sure no other process writes this "
                           "store at the same time", out, exc)
            break
        # the previous holder removes the file as it finishes: a lock on a file no longer at `path` holds nothing
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    left = lock_holder(fd)
    if left is not None:
        logger.warning("%s: taking over the lock left by %s, which is no longer running; resuming its work", out,
                       _describe(left))
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(_me()).encode(), 0)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # removed while still held, so no one locks the file after we let go of it
        os.close(fd)
