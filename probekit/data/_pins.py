"""Pinned datasets: what each file of a release must be, and the checks that say whether it is.

A dataset is a :class:`DatasetSpec`: where its release lives, and a
:class:`FilePin` per file. A pin holds the SHA-256 of the file's bytes (and
its size), or, for a CoNLL-U file whose comment lines may legitimately
differ between copies, the SHA-256 of its content with the comment lines
left out (:func:`conllu_content_sha256`). :data:`DATASETS` holds the
datasets probekit knows by name (``ud_ewt``); a spec built by hand (a test
sample, a private mirror) is fetched the same way by
:func:`probekit.data.fetch`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from probekit.fingerprint import file_checksum, file_lines_sha256

__all__ = ["DATASETS", "UD_EWT", "ChecksumError", "DatasetSpec", "FilePin", "check_file", "conllu_content_sha256",
           "dataset_spec"]



class ChecksumError(ValueError):
    """A fetched file does not match its pin (the message names the file)."""


@dataclass(frozen=True)
class FilePin:
    """What one file of a dataset must be.

    Parameters
    ----------
    split : str
        The file's role, e.g. ``"train"``; the key used to fetch a subset.
    name : str
        File name, both at the source and in the cache.
    sha256 : str, optional
        SHA-256 of the file's bytes.
    size : int, optional
        Size in bytes (checked with ``sha256``; gives the progress bar its total).
    content_sha256 : str, optional
        :func:`conllu_content_sha256` of the file: the annotation without the
        comment lines, for a file whose comments may differ between copies.

    Notes
    -----
    At least one of ``sha256`` and ``content_sha256`` is required.
    """

    split: str
    name: str
    sha256: str | None = None
    size: int | None = None
    content_sha256: str | None = None

    def __post_init__(self) -> None:
        if not (self.sha256 or self.content_sha256):
            raise ValueError(f"the pin of {self.name} needs sha256 or content_sha256")
        if "/" in self.name or "\\" in self.name or self.name.startswith("."):
            raise ValueError(f"a pinned file name must be a plain file name, not {self.name!r}")


@dataclass(frozen=True)
class DatasetSpec:
    """A pinned release of a dataset.

    Parameters
    ----------
    name : str
        Short name, e.g. ``"ud_ewt"``.
    release : str
        Release tag; the cache folder is ``<name>-<release>``.
    base_url : str
        Where the release's files are, ``base_url + file name``.
    files : tuple of FilePin
    title, license, citation : str
        What it is, its licence and whom to cite (shown by ``probekit data list``).

    Examples
    --------
    >>> UD_EWT.folder
    'ud_ewt-r2.16'
    >>> [f.split for f in UD_EWT.files]
    ['train', 'dev', 'test']
    """

    name: str
    release: str
    base_url: str
    files: tuple[FilePin, ...]
    title: str = ""
    license: str = ""
    citation: str = ""

    @property
    def folder(self) -> str:
        return f"{self.name}-{self.release}"

    def pins(self, splits: Iterable[str] | None = None) -> tuple[FilePin, ...]:
        """The pins of ``splits`` (all when ``None``); an unknown split is an error naming the known ones."""
        if splits is None:
            return self.files
        want = list(splits)
        known = [f.split for f in self.files]
        bad = [s for s in want if s not in known]
        if bad or not want:
            raise ValueError(f"{self.name} has files for {', '.join(known)}; not {', '.join(bad) or 'nothing'}")
        return tuple(f for f in self.files if f.split in want)


#: UD English EWT, release r2.16 (2025-05-09), from the UniversalDependencies organisation on GitHub. Dev and
#: test are pinned by the release's byte checksums; train by its token lines (comment lines may differ between
#: copies), a fingerprint computed from a train file rebuilt from the release's per-document sources in the
#: official order, as the release file's own byte checksum was not at hand.
UD_EWT = DatasetSpec(
    name="ud_ewt",
    release="r2.16",
    base_url="https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/r2.16/",
    files=(
        FilePin("train", "en_ewt-ud-train.conllu",
                content_sha256="c6c148877661114a2928c5e5b1f962d30a45a5b8ec94254709940197c6b66a58"),
        FilePin("dev", "en_ewt-ud-dev.conllu", size=1_805_545,
                sha256="531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6"),
        FilePin("test", "en_ewt-ud-test.conllu", size=1_804_515,
                sha256="e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd"),
    ),
    title="Universal Dependencies English Web Treebank (gold UPOS, XPOS, features, dependency trees)",
    license="CC BY-SA 4.0",
    citation="Silveira et al. 2014, A Gold Standard Dependency Corpus for English (LREC); Universal Dependencies",
)

#: The datasets ``fetch`` knows by name.
DATASETS: dict[str, DatasetSpec] = {UD_EWT.name: UD_EWT}


def dataset_spec(dataset: str | DatasetSpec) -> DatasetSpec:
    """The spec of ``dataset`` (a registered name, or a spec returned as is)."""
    if isinstance(dataset, DatasetSpec):
        return dataset
    try:
        return DATASETS[dataset]
    except KeyError:
        raise LookupError(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})") from None

# ------------------------------------------------------------------ checks
def conllu_content_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a CoNLL-U file without its comment lines (line ends normalised to ``\\n``).

    Every line starting with ``#`` is left out and a trailing ``\\r`` is
    dropped from every line; token lines and the blank lines between sentences
    stay, byte for byte. Two copies of a treebank that differ only in comments
    (``# newdoc``, ``# newpar``, ``# text``, ...) get the same value. The same
    value in a shell: ``sed -e 's/\\r$//' -e '/^#/d' FILE | sha256sum``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> row = "1\\tHi\\thi\\tINTJ\\tUH\\t_\\t0\\troot\\t_\\t_\\n\\n"
    >>> _ = (d / "a.conllu").write_text("# sent_id = 1\\n" + row)
    >>> _ = (d / "b.conllu").write_text("# newdoc id = x\\n# sent_id = one\\n" + row)
    >>> conllu_content_sha256(d / "a.conllu") == conllu_content_sha256(d / "b.conllu")
    True
    """
    return file_lines_sha256(path, skip_prefix=b"#")


def _sha256(path: Path) -> str:
    return file_checksum(path, "sha256").split(":", 1)[1]


def check_file(path: Path, pin: FilePin, origin: str) -> None:
    """Raise :class:`ChecksumError` unless the file at ``path`` matches ``pin`` (``origin`` names where from)."""
    problems = []
    if pin.size is not None and (size := path.stat().st_size) != pin.size:
        problems.append(f"{size:,} bytes, the pin says {pin.size:,}")
    if pin.sha256 and not problems and (got := _sha256(path)) != pin.sha256:
        problems.append(f"SHA-256 {got}, the pin says {pin.sha256}")
    if pin.content_sha256 and not problems and (got := conllu_content_sha256(path)) != pin.content_sha256:
        problems.append(f"content fingerprint (token lines) {got}, the pin says {pin.content_sha256}")
    if problems:
        raise ChecksumError(f"{pin.name} from {origin} does not match its pin: {'; '.join(problems)}")
