"""A careful CoNLL-U reader (Universal Dependencies) with file:line errors.

Every sentence is kept as its *syntactic words* (lines whose ID is an
integer): these are what UD counts as words and what the gold heads, labels
and features describe. Multiword-token lines (``3-4``, e.g. English
"don't" = "do" + "n't") are kept aside as surface tokens; empty nodes
(``8.1``, enhanced dependencies only) are counted and otherwise skipped, as
the basic tree does not contain them.

Malformed input is an error naming the file and line: wrong column count,
a non-integer ID or head, IDs out of order, a head outside the sentence, a
cycle (a word that cannot reach the root), no root or more than one (a UD
sentence has exactly one word with HEAD 0). A UTF-8 byte-order mark at the
start of the file is accepted (editors on Windows write one).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from probekit.data import _pins
from probekit.data._fetch import fetched_path

__all__ = ["ConlluError", "Sentence", "default_ud_path", "read_conllu", "ud_files", "tree_depths", "tree_distances"]

logger = logging.getLogger(__name__)


class ConlluError(ValueError):
    """A malformed CoNLL-U file; the message names file and line."""

    def __init__(self, path: str | os.PathLike, line: int, message: str):
        self.path, self.line = str(path), line
        super().__init__(f"{path}:{line}: {message}")


@dataclass(frozen=True)
class Sentence:
    """One parsed sentence: syntactic words with their annotation.

    ``heads`` are 1-based as in CoNLL-U (0 is the root); ``feats`` are the
    morphological features as dicts. ``tokens`` lists the multiword tokens as
    ``(first_word, last_word, surface_form)`` with 0-based word indices.
    ``ents`` (silver annotation only) are BIO entity tags per word.
    """

    words: tuple[str, ...]
    upos: tuple[str, ...]
    xpos: tuple[str, ...]
    feats: tuple[dict, ...]
    heads: tuple[int, ...]
    deprels: tuple[str, ...]
    lemmas: tuple[str, ...] = ()
    sent_id: str = ""
    text: str = ""
    tokens: tuple[tuple[int, int, str], ...] = ()
    n_empty: int = 0
    ents: tuple[str, ...] = ()
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __len__(self) -> int:
        return len(self.words)

    def children(self, i: int) -> list[int]:
        """0-based indices of the dependents of word ``i`` (0-based)."""
        return [k for k, h in enumerate(self.heads) if h == i + 1]

    def roots(self) -> list[int]:
        return [k for k, h in enumerate(self.heads) if h == 0]


def tree_depths(heads: tuple[int, ...] | list[int]) -> list[int]:
    """Depth of every word: the number of arcs from its root (a root has depth 0).

    Raises ``ValueError`` on a cycle.
    """
    n = len(heads)
    depth = [-1] * n
    for i in range(n):
        path = []
        k = i
        while k >= 0 and depth[k] < 0:
            if k in path:
                raise ValueError(f"cycle through word {k + 1}")
            path.append(k)
            k = heads[k] - 1
        d = -1 if k < 0 else depth[k]
        for j in reversed(path):
            d += 1
            depth[j] = d
    return depth


def tree_distances(heads: tuple[int, ...] | list[int]):
    """Path length between every pair of words in the (undirected) tree.

    Words in different trees of a forest (several roots, as when spaCy splits
    a text into sentences) are joined through a virtual root, so the distance
    is finite. Returns an ``[n, n]`` ``numpy`` int array.
    """
    import numpy as np

    n = len(heads)
    depth = tree_depths(heads)
    # ancestors with depths; distance = d(i) + d(j) - 2 d(lca), virtual root at depth -1
    anc = []
    for i in range(n):
        chain = [i]
        k = heads[i] - 1
        while k >= 0:
            chain.append(k)
            k = heads[k] - 1
        anc.append(chain)
    out = np.zeros((n, n), dtype=np.int32)
    for i in range(n):
        si = set(anc[i])
        for j in range(i + 1, n):
            lca_depth = -1
            for k in anc[j]:
                if k in si:
                    lca_depth = depth[k]
                    break
            out[i, j] = out[j, i] = depth[i] + depth[j] - 2 * lca_depth
    return out


def _parse_feats(s: str, path, lineno) -> dict:
    if s == "_":
        return {}
    out = {}
    for part in s.split("|"):
        if "=" not in part:
            raise ConlluError(path, lineno, f"malformed FEATS {s!r} (expected Name=Value|...)")
        k, v = part.split("=", 1)
        out[k] = v
    return out


def read_conllu(path: str | os.PathLike, *, limit: int | None = None) -> list[Sentence]:
    """Read a CoNLL-U file into :class:`Sentence` objects.

    Parameters
    ----------
    path : path-like
        A ``.conllu`` file (UTF-8).
    limit : int, optional
        Stop after this many sentences.

    Returns
    -------
    list of Sentence

    Raises
    ------
    ConlluError
        On malformed input, naming file and line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.conllu"
    >>> _ = p.write_text("1\\tHi\\thi\\tINTJ\\tUH\\t_\\t0\\troot\\t_\\t_\\n\\n")
    >>> read_conllu(p)[0].words
    ('Hi',)
    """
    return list(_iter_conllu(path, limit))


def _iter_conllu(path, limit) -> Iterator[Sentence]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"CoNLL-U file not found: {path}")
    n_sent = 0
    block: list[tuple[int, str]] = []
    with open(path, encoding="utf-8-sig") as fh:  # a byte-order mark is not part of the first line
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\n").rstrip("\r")
            if line.strip():
                block.append((lineno, line))
                continue
            if block:
                yield _parse_block(path, block)
                n_sent += 1
                block = []
                if limit is not None and n_sent >= limit:
                    return
        if block:
            yield _parse_block(path, block)


def _parse_block(path: Path, block: list[tuple[int, str]]) -> Sentence:
    meta: dict[str, str] = {}
    cols: dict[str, list] = {k: [] for k in ("words", "lemmas", "upos", "xpos", "feats", "heads", "deprels")}
    head_lines: list[int] = []
    mwt: list[tuple[int, int, str, int]] = []
    n_empty = 0
    for lineno, line in block:
        if line.startswith("#"):
            body = line[1:].strip()
            if "=" in body:
                k, v = body.split("=", 1)
                meta.setdefault(k.strip(), v.strip())
            continue
        parts = line.split("\t")
        if len(parts) != 10:
            raise ConlluError(path, lineno, f"expected 10 tab-separated columns, found {len(parts)}: {line[:80]!r}")
        wid = parts[0]
        if "-" in wid:
            a, _, b = wid.partition("-")
            if not (a.isdigit() and b.isdigit()) or int(b) < int(a):
                raise ConlluError(path, lineno, f"malformed multiword-token ID {wid!r}")
            mwt.append((int(a), int(b), parts[1], lineno))
            continue
        if "." in wid:
            a, _, b = wid.partition(".")
            if not (a.isdigit() and b.isdigit()):
                raise ConlluError(path, lineno, f"malformed empty-node ID {wid!r}")
            n_empty += 1
            continue
        if not wid.isdigit():
            raise ConlluError(path, lineno, f"ID {wid!r} is not an integer, a range (3-4) or a decimal (8.1)")
        expected = len(cols["words"]) + 1
        if int(wid) != expected:
            raise ConlluError(path, lineno, f"word ID {wid} out of sequence; expected {expected}")
        head = parts[6]
        try:
            h = int(head)
        except ValueError:
            raise ConlluError(path, lineno, f"HEAD {head!r} of word {wid} is not an integer") from None
        if h < 0:
            raise ConlluError(path, lineno, f"HEAD {h} of word {wid} is negative")
        if h == int(wid):
            raise ConlluError(path, lineno, f"word {wid} is its own head (a cycle)")
        cols["words"].append(parts[1])
        cols["lemmas"].append(parts[2])
        cols["upos"].append(parts[3])
        cols["xpos"].append(parts[4])
        cols["feats"].append(_parse_feats(parts[5], path, lineno))
        cols["heads"].append(h)
        cols["deprels"].append(parts[7])
        head_lines.append(lineno)
    n = len(cols["words"])
    first = block[0][0]
    if n == 0:
        raise ConlluError(path, first, "sentence has no words")
    for k, h in enumerate(cols["heads"]):
        if h > n:
            raise ConlluError(path, head_lines[k], f"HEAD {h} of word {k + 1} is outside the sentence ({n} words)")
    if not any(h == 0 for h in cols["heads"]):
        raise ConlluError(path, first, "sentence has no root (no word with HEAD 0): the heads form a cycle")
    roots = [k for k, h in enumerate(cols["heads"]) if h == 0]
    if len(roots) > 1:
        name = meta.get("sent_id", f"starting at line {first}")
        raise ConlluError(path, head_lines[roots[1]],
                          f"sentence {name} has {len(roots)} roots (words {', '.join(str(k + 1) for k in roots)} "
                          "have HEAD 0); a UD sentence has exactly one")
    try:
        tree_depths(cols["heads"])
    except ValueError as exc:
        k = int(str(exc).rsplit(" ", 1)[-1]) - 1
        raise ConlluError(path, head_lines[k],
                          f"the heads form a cycle ({exc}); word {k + 1} cannot reach the root") from None
    tokens = []
    for a, b, form, lineno in mwt:
        if b > n:
            raise ConlluError(path, lineno, f"multiword token {a}-{b} extends past the last word ({n})")
        tokens.append((a - 1, b - 1, form))
    return Sentence(
        words=tuple(cols["words"]), upos=tuple(cols["upos"]), xpos=tuple(cols["xpos"]),
        feats=tuple(cols["feats"]), heads=tuple(cols["heads"]), deprels=tuple(cols["deprels"]),
        lemmas=tuple(cols["lemmas"]), sent_id=meta.get("sent_id", f"{path.name}:{first}"),
        text=meta.get("text", ""), tokens=tuple(tokens), n_empty=n_empty, source=f"{path}:{first}",
    )


_UD_HELP = (
    "fetch UD English EWT with `probekit data fetch ud_ewt` (in Python: probekit.data.fetch('ud_ewt'); offline: "
    "`probekit data fetch ud_ewt --from DIR_OR_URL`), or pass a folder holding *-ud-{train,dev,test}.conllu files "
    "(path=... / --ud-path), or set PROBEKIT_UD_PATH"
)


def default_ud_path() -> Path:
    """The UD folder used when none is given: ``$PROBEKIT_UD_PATH``, else the fetched UD English EWT.

    The fetched copy is the one ``probekit data fetch ud_ewt`` writes under
    ``$PROBEKIT_CACHE/data`` (see :func:`probekit.data.fetch`).

    Raises
    ------
    FileNotFoundError
        When neither is there; the message names the command to run.
    """
    env = os.environ.get("PROBEKIT_UD_PATH")
    if env:
        return Path(env).expanduser()
    try:
        return fetched_path(_pins.UD_EWT, required=True)  # looked up now: the pin may be replaced
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no UD treebank folder given and PROBEKIT_UD_PATH is not set: {exc}; or pass a "
                                "folder holding *-ud-{train,dev,test}.conllu files (path=... / --ud-path), or set "
                                "PROBEKIT_UD_PATH") from None


def ud_files(path: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None) -> dict[str, Path]:
    """Map UD split name (``train``/``dev``/``test``) to its file.

    Parameters
    ----------
    path : path-like or mapping, optional
        A folder (its ``*-ud-SPLIT.conllu`` files), one ``.conllu`` file (its
        split read from the name, else ``train``), or a mapping from split
        name to file (to use, say, only the train and dev files of a folder
        that also has a test file). Default :func:`default_ud_path`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for s in ("train", "dev", "test"):
    ...     _ = (d / f"en_ewt-ud-{s}.conllu").write_text("")
    >>> sorted(ud_files(d))
    ['dev', 'test', 'train']
    >>> sorted(ud_files({"train": d / "en_ewt-ud-train.conllu", "dev": d / "en_ewt-ud-dev.conllu"}))
    ['dev', 'train']
    """
    if isinstance(path, Mapping):
        bad = [k for k in path if k not in ("train", "dev", "test")]
        if bad or not path:
            raise ValueError(f"a UD file mapping has keys among train, dev, test, not {bad or 'none'}")
        out = {s: Path(path[s]) for s in ("train", "dev", "test") if s in path}
        for s, f in out.items():
            if not f.is_file():
                raise FileNotFoundError(f"UD {s} file {f} does not exist; {_UD_HELP}")
        return out
    p = Path(path) if path is not None else default_ud_path()
    if p.is_file():
        split = next((s for s in ("train", "dev", "test") if p.name.endswith(f"-{s}.conllu")), "train")
        return {split: p}
    if not p.is_dir():
        raise FileNotFoundError(f"UD path {p} does not exist; {_UD_HELP}")
    out = {}
    for s in ("train", "dev", "test"):
        hits = sorted(p.glob(f"*-ud-{s}.conllu"))
        if hits:
            out[s] = hits[0]
    if not out:
        raise FileNotFoundError(f"no *-ud-{{train,dev,test}}.conllu files in {p}; {_UD_HELP}")
    return out
