"""Opening a local store's files as untrusted input: regular files and directories only, no links, never blocking.

Every file of a store is looked at with ``lstat`` before it is opened, so a symbolic link (which could
lead anywhere), a FIFO (whose ``open`` would wait for a writer forever), a socket or a device is refused
by name. The file is then opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked again with ``fstat``, so
nothing swapped in between the two looks is read either. The directories on the way (``shards/``,
``shards/00007/``) must be real directories, not links. :func:`read_json_file` reads a store's JSON
through :func:`probekit.store._validate.parse_json` (bounded size and depth).
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import Any

from probekit.store._errors import StoreError
from probekit.store._validate import MAX_JSON_BYTES, parse_json

__all__ = ["check_dir", "stat_file", "open_file", "read_json_file"]

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NOTE = "a store holds only regular files and directories (forged, or damaged?); nothing was read from it"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"), (stat.S_ISREG, "a file")):
        if test(mode):
            return name
    return "not a regular file"


def check_dir(path: str | os.PathLike) -> None:
    """:class:`StoreError` unless ``path`` is a real directory (not a link); ``FileNotFoundError`` when absent."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path} is {_kind(st.st_mode)}, not a directory: {_NOTE}")


def stat_file(path: str | os.PathLike) -> os.stat_result:
    """``lstat`` of a regular file; :class:`StoreError` naming what else it is; ``FileNotFoundError`` when absent."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path} is {_kind(st.st_mode)}, not a regular file: {_NOTE}")
    return st


def open_file(path: str | os.PathLike, *, follow: bool = False) -> io.FileIO:
    """Open a regular file for reading without ever blocking; with ``follow=False`` (a store's files) no links.

    ``follow=True`` is for files a user names directly (they may be links), which must still be regular.
    """
    before = None if follow else stat_file(path)
    try:
        fd = os.open(path, _FLAGS | (0 if follow else _NOFOLLOW))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{path} is a symbolic link, not a regular file: {_NOTE}") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{path} is {_kind(st.st_mode)}, not a regular file: {_NOTE}")
        if before is not None and (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise StoreError(f"{path} was replaced while it was being opened; nothing was read from it")
    except BaseException:
        os.close(fd)
        raise
    return io.FileIO(fd, "rb", closefd=True)


def read_json_file(path: str | os.PathLike, *, follow: bool = False) -> Any:
    """Read and parse a JSON file of a store (see :func:`open_file` and :func:`~probekit.store._validate.parse_json`).

    ``FileNotFoundError`` passes through; everything else is a :class:`StoreError` naming the file.
    """
    try:
        with open_file(path, follow=follow) as f:
            chunks, size = [], 0
            while size <= MAX_JSON_BYTES:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except (FileNotFoundError, StoreError):
        raise
    except OSError as exc:
        raise StoreError(f"{path} is unreadable ({exc})") from exc
    return parse_json(b"".join(chunks), str(Path(path)))
