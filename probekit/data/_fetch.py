"""Fetch pinned datasets into the probekit cache, verified and atomic.

Every file is written under a temporary name in the dataset's folder,
checked against its pin (:mod:`probekit.data._pins`), and only then renamed
to its real name; a file that does not match is deleted and reported by
name, so an interrupted or tampered download never leaves a file that looks
complete. A manifest, ``probekit-fetch.json``, is written last (also
atomically) and lists the verified files: a folder without it was never
fetched completely.

Where: ``$PROBEKIT_CACHE/data/<name>-<release>/`` (``PROBEKIT_CACHE``
defaults to ``~/.cache/probekit``). Sources: the release URL of the spec,
or ``source=`` a local folder or the base URL of a mirror (``https://``,
``http://``, ``file://``), checked against the same pins.
"""

from __future__ import annotations

import datetime as _dt
import http.client
import json
import logging
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from probekit.data._pins import ChecksumError, DatasetSpec, FilePin, check_file, dataset_spec
from probekit.version import __version__

__all__ = ["FetchError", "data_home", "fetch", "fetched_path", "verify_fetched"]

logger = logging.getLogger(__name__)

MANIFEST = "probekit-fetch.json"
_PART = ".part"
_CHUNK = 1 << 20
_STALE_PART_S = 24 * 3600


class FetchError(OSError):
    """A file of a dataset could not be read from its source (the message names file and location)."""


def data_home(path: str | os.PathLike | None = None) -> Path:
    """The folder holding fetched datasets: ``path``, else ``$PROBEKIT_CACHE/data`` (``~/.cache/probekit/data``)."""
    if path is not None:
        return Path(path).expanduser()
    root = os.environ.get("PROBEKIT_CACHE") or Path.home() / ".cache" / "probekit"
    return Path(root).expanduser() / "data"


def verify_fetched(dataset: str | DatasetSpec = "ud_ewt", *, data_dir: str | os.PathLike | None = None) -> Path:
    """Check every file of a fetched copy against its pin again; return its folder.

    Raises
    ------
    FileNotFoundError
        When the dataset was not fetched (the message says how to fetch it).
    ChecksumError
        Naming the first file that no longer matches.
    """
    spec = dataset_spec(dataset)
    folder = fetched_path(spec, data_dir=data_dir, required=True)
    listed = _read_manifest(folder)["files"]
    for pin in spec.files:
        if pin.split in listed:
            check_file(folder / pin.name, pin, str(folder))
    return folder


# ------------------------------------------------------------------ where
def _read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _fetch_hint(spec: DatasetSpec) -> str:
    return (f"run `probekit data fetch {spec.name}` (in Python: probekit.data.fetch({spec.name!r})); offline, "
            f"`probekit data fetch {spec.name} --from DIR_OR_URL` copies and verifies a local copy or a mirror")


def fetched_path(dataset: str | DatasetSpec = "ud_ewt", *, data_dir: str | os.PathLike | None = None,
                 required: bool = False) -> Path | None:
    """The folder of a fetched copy, or ``None`` when there is none (or it is incomplete).

    A copy counts when its manifest is there, was written for the pins of
    ``dataset``, and every file it lists is present with the size it had
    when verified (:func:`verify_fetched` re-checks the checksums).

    Parameters
    ----------
    dataset : str or DatasetSpec
    data_dir : path-like, optional
        Default ``$PROBEKIT_CACHE/data``.
    required : bool
        Raise ``FileNotFoundError`` saying which command to run instead of returning ``None``.

    Examples
    --------
    >>> import tempfile
    >>> fetched_path("ud_ewt", data_dir=tempfile.mkdtemp()) is None
    True
    """
    spec = dataset_spec(dataset)
    folder = data_home(data_dir) / spec.folder
    man = _read_manifest(folder)
    problem = None
    if not man:
        problem = f"{spec.name} ({spec.release}) has not been fetched into {folder}"
    elif man.get("dataset") != spec.name or man.get("release") != spec.release or not man.get("files"):
        problem = f"{folder / MANIFEST} does not describe {spec.name} {spec.release}"
    else:
        pins = {p.split: p for p in spec.files}
        for split, rec in man["files"].items():
            pin = pins.get(split)
            if pin is None or not isinstance(rec, dict) or any(
                    rec.get(k) != getattr(pin, k) for k in ("name", "sha256", "content_sha256") if getattr(pin, k)):
                problem = f"{folder / MANIFEST} lists {split} files other than the ones {spec.name} pins"
                break
            f = folder / pin.name
            if not f.is_file() or f.stat().st_size != rec.get("size"):
                problem = f"the fetched copy in {folder} is incomplete or changed ({pin.name}, {split})"
                break
    if problem is None:
        return folder
    if required:
        raise FileNotFoundError(f"{problem}; {_fetch_hint(spec)}")
    return None


# ------------------------------------------------------------------ fetch
def _location(source: str | os.PathLike | None, spec: DatasetSpec, name: str) -> tuple[str, Path | None]:
    """``(text naming the location, local path or None for a URL)`` of file ``name``."""
    if source is None:
        return spec.base_url.rstrip("/") + "/" + urllib.parse.quote(name), None
    src = str(source)
    scheme = urllib.parse.urlsplit(src).scheme.lower()
    if scheme in ("http", "https", "file"):
        return src.rstrip("/") + "/" + urllib.parse.quote(name), None
    if scheme and len(scheme) > 1:  # a Windows drive letter is not a scheme
        raise ValueError(f"--from takes a folder or an http(s):// or file:// URL, not {src!r}")
    folder = Path(src).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"--from {src}: no such folder")
    return str(folder / name), folder / name


def _open(where: str, local: Path | None, pin: FilePin):
    """``(stream, total bytes or None)``; a missing or unreachable file is a :class:`FetchError` naming it."""
    try:
        if local is not None:
            return open(local, "rb"), local.stat().st_size
        resp = urllib.request.urlopen(where, timeout=60)  # noqa: S310 (http, https or file, checked above)
        length = resp.headers.get("Content-Length")
        return resp, int(length) if length and length.isdigit() else pin.size
    except FileNotFoundError:
        raise FetchError(f"{pin.name} is not in {local.parent if local else where}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = (f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError)
                  else getattr(exc, "reason", None) or exc)
        raise FetchError(f"cannot read {pin.name} from {where}: {reason}") from None


def _download(where: str, local: Path | None, pin: FilePin, folder: Path, progress: bool) -> None:
    """Copy one file to ``folder`` under a temporary name, verify it, then rename it into place."""
    from tqdm.auto import tqdm

    stream, total = _open(where, local, pin)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{pin.name}.", suffix=_PART)
    except BaseException:
        stream.close()
        raise
    tmp = Path(tmp_name)
    try:
        with stream, os.fdopen(fd, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                                      desc=pin.name, disable=not progress) as bar:
            while True:
                try:
                    chunk = stream.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise FetchError(f"reading {pin.name} from {where} failed: {exc}") from None
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        check_file(tmp, pin, where)
        _publish(tmp, folder / pin.name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _publish(tmp: Path, dest: Path) -> None:
    """Rename a verified temporary file into place, readable as any file the user creates.

    ``mkstemp`` makes files private (0600); a data cache is shared like any
    download, so the final file gets the mode the user's umask gives new files.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, dest)


def _remove_stale_parts(folder: Path, spec: DatasetSpec) -> None:
    """Delete temporary files of this dataset left by a fetch killed more than a day ago."""
    now = time.time()
    for pin in spec.files:
        for p in folder.glob(f".{pin.name}.*{_PART}"):
            try:
                if now - p.stat().st_mtime > _STALE_PART_S:
                    p.unlink()
                    logger.info("removed %s, left by an interrupted fetch", p)
            except OSError:
                pass


def _write_manifest(folder: Path, spec: DatasetSpec, files: dict[str, FilePin], sources: dict[str, str]) -> None:
    old = _read_manifest(folder).get("files") or {}
    recs = {}
    for split, pin in files.items():
        rec = {"name": pin.name, "size": (folder / pin.name).stat().st_size}
        rec.update({k: v for k, v in (("sha256", pin.sha256), ("content_sha256", pin.content_sha256)) if v})
        rec["source"] = sources.get(split) or (old.get(split) or {}).get("source") or "found in the folder"
        recs[split] = rec
    man = {"dataset": spec.name, "release": spec.release, "files": recs,
           "license": spec.license, "fetched": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "probekit_version": __version__}
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{MANIFEST}.", suffix=_PART)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(man, fh, indent=2)
        _publish(Path(tmp), folder / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch(dataset: str | DatasetSpec = "ud_ewt", *, source: str | os.PathLike | None = None,
          splits: Iterable[str] | None = None, data_dir: str | os.PathLike | None = None, force: bool = False,
          progress: bool = True) -> Path:
    """Download a pinned dataset into the cache, verifying every file; return its folder.

    Parameters
    ----------
    dataset : str or DatasetSpec
        A name from :data:`DATASETS` (``"ud_ewt"``), or a spec of one's own.
    source : str or path-like, optional
        Where to read the files instead of the release URL: a local folder, or
        the base URL of a mirror (``https://``, ``http://`` or ``file://``)
        holding the files under their names. The same pins are checked.
    splits : iterable of str, optional
        Fetch only these files (e.g. ``("train", "dev")``); default all.
    data_dir : path-like, optional
        The folder of fetched datasets; default ``$PROBEKIT_CACHE/data``
        (``~/.cache/probekit/data``).
    force : bool
        Download again even files that are already there and verify.
    progress : bool
        A progress bar per file (on stderr).

    Returns
    -------
    Path
        ``data_dir/<name>-<release>``, holding the verified files and ``probekit-fetch.json``.

    Raises
    ------
    ChecksumError
        A file does not match its pin (named; nothing of it is kept).
    FetchError
        A file cannot be read from the source (named, with the location).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from probekit.data import DatasetSpec, FilePin, conllu_content_sha256, fetch
    >>> src = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (src / "tiny.conllu").write_text("1\\tHi\\thi\\tINTJ\\tUH\\t_\\t0\\troot\\t_\\t_\\n\\n")
    >>> pin = FilePin("train", "tiny.conllu", content_sha256=conllu_content_sha256(src / "tiny.conllu"))
    >>> spec = DatasetSpec("tiny", "v1", base_url=src.as_uri() + "/", files=(pin,))
    >>> out = fetch(spec, data_dir=tempfile.mkdtemp(), progress=False)
    >>> sorted(p.name for p in out.iterdir())
    ['probekit-fetch.json', 'tiny.conllu']
    """
    spec = dataset_spec(dataset)
    pins = spec.pins(splits)
    folder = data_home(data_dir) / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(folder, spec)
    sources: dict[str, str] = {}
    for pin in pins:
        target = folder / pin.name
        if target.exists() and not force:
            try:
                check_file(target, pin, str(folder))
                logger.info("%s is already in %s and matches its pin", pin.name, folder)
                continue
            except ChecksumError as exc:
                raise ChecksumError(f"{exc}; it was left as it is: pass force=True (--force) to replace it "
                                    "with a verified download") from None
        where, local = _location(source, spec, pin.name)
        logger.info("fetching %s from %s", pin.name, where)
        _download(where, local, pin, folder, progress)
        sources[pin.split] = where
    # the manifest lists every pinned file now in the folder that matches its pin
    present = {}
    for pin in spec.files:
        if (folder / pin.name).is_file():
            try:
                if pin not in pins:
                    check_file(folder / pin.name, pin, str(folder))
                present[pin.split] = pin
            except ChecksumError as exc:
                logger.warning("%s; not listed as fetched", exc)
    _write_manifest(folder, spec, present, sources)
    return folder
