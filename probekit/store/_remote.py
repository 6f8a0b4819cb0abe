"""Stores at fsspec URLs (``s3://bucket/run``, ``memory://x``, ``hf://datasets/org/repo``): the object layer.

A store at a URL has the layout of a local one (see :mod:`probekit.store._layout`), one object per file.
Object stores have no rename and no directories, so nothing is ever staged under a temporary name there: a
shard's data objects are uploaded first and its sidecar last, and the manifest, written last of all, names
the sidecars (their SHA-256) that make the store. An object no manifest or sidecar names is not part of the
store: readers never look at it and writers delete it (only names of probekit's own layout; anything else
under the URL makes a writer refuse, as a local folder holding foreign files does).

``file://`` URLs are local paths (:func:`local_path`); every other scheme goes through fsspec, whose driver
for it must be installed (``pip install 'probekit[remote]'`` brings ``s3fs``). Credentials and endpoints come
from the driver's usual configuration (for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL`` or ``FSSPEC_S3_ENDPOINT_URL``, ``~/.aws/config``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from probekit.store._errors import LOCK, StoreError
from probekit.store._manifest import EXAMPLES, MANIFEST

__all__ = ["is_url", "local_path", "Remote", "is_store_object", "READ_ONLY"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
#: schemes probekit reads but never writes (a Hugging Face dataset repository changes by commits, not objects)
READ_ONLY = ("hf", "http", "https")
_SIDECAR = re.compile(r"shards/\d{5,}\.json")
_DATA = re.compile(r"shards/\d{5,}/[A-Za-z0-9_.\-]+\.bin")


def is_url(location: object) -> bool:
    """Whether ``location`` is a URL (``scheme://...``) rather than a local path.

    Examples
    --------
    >>> is_url("s3://bucket/run"), is_url("runs/acts"), is_url("file:///tmp/acts")
    (True, False, True)
    """
    return isinstance(location, str) and _SCHEME.match(location) is not None


def local_path(location: str | os.PathLike) -> Path | None:
    """The local path of ``location`` (a path or a ``file://`` URL), ``None`` for any other URL.

    Examples
    --------
    >>> local_path("file:///tmp/acts"), local_path("s3://b/run")
    (PosixPath('/tmp/acts'), None)
    """
    if not is_url(location):
        return Path(location)
    parts = urlsplit(str(location))
    if parts.scheme.lower() != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        raise StoreError(f"{location}: a file:// URL names a path on this machine (file:///abs/path), not on "
                         f"host {parts.netloc!r}")
    return Path(unquote(parts.path))


def is_store_object(rel: str) -> bool:
    """Whether ``rel`` (a key relative to the store URL) is a name probekit writes into a remote store."""
    return rel in (MANIFEST, EXAMPLES, LOCK) or bool(_SIDECAR.fullmatch(rel) or _DATA.fullmatch(rel))


class Remote:
    """One store's objects under a URL, through fsspec.

    Parameters
    ----------
    url : str
        ``scheme://...`` of the store (its "folder").
    storage_options : dict, optional
        Passed to the fsspec driver (e.g. ``{"endpoint_url": ...}`` for S3).
    bucket_ok : bool
        Accept a bucket's root (only to list the stores in it; a store is always a folder inside a bucket).

    Examples
    --------
    >>> r = Remote("memory://probekit-doc/store")
    >>> r.put_bytes("manifest.json", b"{}")
    >>> r.listing()
    {'manifest.json': 2}
    >>> r.remove(["manifest.json"]); r.listing()
    {}
    """

    def __init__(self, url: str, storage_options: dict | None = None, *, bucket_ok: bool = False):
        try:
            import fsspec
        except ImportError:
            raise StoreError(f"{url}: stores at URLs need fsspec and the driver of the URL's scheme; "
                             "pip install 'probekit[remote]'") from None
        self.url = url.rstrip("/")
        self.scheme = urlsplit(self.url).scheme.lower()
        try:
            self.fs, root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise StoreError(f"{url}: no fsspec driver for {self.scheme}:// ({exc}); for S3 pip install "
                             "'probekit[remote]'") from None
        self.root = root.rstrip("/")
        bucket_root = not self.root or self.root.count("/") == 0
        if not bucket_ok and bucket_root and self.scheme in ("s3", "gs", "gcs", "az", "abfs"):
            raise StoreError(f"{url}: a store needs a folder inside the bucket (s3://bucket/NAME), not a bucket "
                             "root, so that probekit's objects never mix with others")

    def __repr__(self) -> str:
        return f"Remote({self.url!r})"

    @property
    def read_only(self) -> bool:
        return self.scheme in READ_ONLY

    def key(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def where(self, rel: str) -> str:
        """How messages name an object: its full URL."""
        return f"{self.url}/{rel}"

    def listing(self, prefix: str = "") -> dict[str, int]:
        """Every object under the store URL (whose key starts with ``prefix``, a folder such as
        ``"shards/00007/"``): key relative to the store -> size in bytes (fresh, never a cached listing)."""
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(f"{self.root}/{prefix}".rstrip("/"), detail=True)
        except FileNotFoundError:
            return {}
        out = {}
        prefix = self.root + "/"
        for key, info in found.items():
            key = key.rstrip("/")
            if info.get("type") == "directory" or not key.startswith(prefix):
                continue
            out[key[len(prefix):]] = int(info.get("size") or 0)
        return out

    def size(self, rel: str) -> int | None:
        """Size of one object, ``None`` when absent."""
        try:
            info = self.fs.info(self.key(rel))
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            raise StoreError(f"{self.where(rel)} is a folder, not an object: a store holds only probekit's files")
        return int(info.get("size") or 0)

    def read_bytes(self, rel: str, limit: int) -> bytes:
        """The bytes of a small object (a manifest, a sidecar), refused unread beyond ``limit`` bytes.

        Raises ``FileNotFoundError`` when absent.
        """
        self.fs.invalidate_cache()
        size = self.size(rel)
        if size is None:
            raise FileNotFoundError(self.where(rel))
        if size > limit:
            raise StoreError(f"{self.where(rel)} is {size} bytes, more than the {limit} a probekit file of its kind "
                             "may have (forged or damaged); nothing was read from it")
        data = self.fs.cat_file(self.key(rel))
        if len(data) > limit:
            raise StoreError(f"{self.where(rel)} grew beyond {limit} bytes while it was read; nothing was used")
        return bytes(data)

    def download(self, rel: str, dest: Path, size: int) -> None:
        """Copy an object of ``size`` bytes into the local file ``dest`` (created; checked to have that size)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        got = 0
        with self.fs.open(self.key(rel), "rb", block_size=8 << 20) as src, open(dest, "wb") as out:
            while True:
                chunk = src.read(min(8 << 20, size - got + 1))
                if not chunk:
                    break
                got += len(chunk)
                if got > size:
                    raise StoreError(f"{self.where(rel)} holds more than the {size} bytes its sidecar declares "
                                     "(changed while it was read, or forged); nothing of it was used")
                out.write(chunk)
        if got != size:
            raise StoreError(f"{self.where(rel)} holds {got} bytes, not the {size} its sidecar declares (changed "
                             "while it was read, or damaged); nothing of it was used")

    def put_bytes(self, rel: str, data: bytes) -> None:
        self._writable()
        self.fs.pipe_file(self.key(rel), data)

    def upload(self, src: Path, rel: str) -> None:
        self._writable()
        self.fs.put_file(str(src), self.key(rel))

    def remove(self, rels: Iterable[str]) -> None:
        """Delete objects (only probekit's own names; absent ones are skipped)."""
        self._writable()
        for rel in rels:
            if not is_store_object(rel):
                raise StoreError(f"refusing to delete {self.where(rel)}: not a name probekit writes")
            try:
                self.fs.rm_file(self.key(rel))
            except FileNotFoundError:
                pass

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.url}: {self.scheme}:// stores are read-only in probekit; write the store "
                             "locally or to an object store, then upload it with the repository's own tools")
