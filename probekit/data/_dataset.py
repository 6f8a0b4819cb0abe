"""``ProbingDataset``: texts or pre-split words, labels, named splits.

Labels live at one of four levels:

``"sentence"``
    one label per example.
``"word"``
    one label per word (the example must be pre-split, or its words are the
    whitespace-separated pieces of the text), so ``len(labels[i]) ==
    len(words[i])``.
``"edge"``
    a tuple of ``(i, j, label)`` triples per example: a label for the ordered
    word pair (dependent ``i``, candidate head ``j``), 0-based.
``"structural"``
    a dict per example with ``"distance"`` (``[n, n]`` tree distances) and
    ``"depth"`` (``[n]`` depths), for structural probes (Hewitt & Manning 2019).

A missing label (``None``, NaN, an empty string) is a ``ValueError`` naming
the example and, below sentence level, the word; it never becomes a class.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from probekit.data._conllu import read_conllu
from probekit.labels import MissingLabelError, canonical_label, canonical_labels, check_labels, is_missing
from probekit.model import validate_inputs

__all__ = ["ProbingDataset", "Level", "LEVELS", "SplitWarning"]

logger = logging.getLogger(__name__)

Level = Literal["sentence", "word", "edge", "structural"]
LEVELS = ("sentence", "word", "edge", "structural")
SPLITS = ("train", "dev", "test")


class SplitWarning(UserWarning):
    """The splits do not give what an analysis expects: no ``train`` split (a UD folder with only dev and test
    files, so training falls back on ``dev``), or classes that occur in the test split only."""


@dataclass(frozen=True)
class ProbingDataset:
    """Examples (texts or pre-split words) with labels and a split per example.

    Build it with the constructors (:meth:`from_lists`, :meth:`from_pandas`,
    :meth:`from_hf`, :meth:`from_csv`, :meth:`from_jsonl`,
    :func:`probekit.data.from_conllu`) rather than directly.

    Attributes
    ----------
    texts : tuple of str
        The text of each example (words joined by spaces when pre-split).
    words : tuple of tuple of str, or None
        Pre-split words per example (a treebank's syntactic words), or
        ``None`` for plain text.
    labels : tuple
        Labels per example, shaped by ``level`` (see the module docstring).
    level : {"sentence", "word", "edge", "structural"}
    splits : tuple of str
        ``"train"``, ``"dev"`` or ``"test"`` per example.
    label_names : tuple of str
        The classes, in order (empty for structural labels).
    skipped : dict
        Why and how many source examples were left out while building it.

    Examples
    --------
    >>> ds = ProbingDataset.from_lists(["a good film", "a bad film"], ["pos", "neg"])
    >>> len(ds), ds.label_names
    (2, ('neg', 'pos'))
    """

    texts: tuple[str, ...]
    words: tuple[tuple[str, ...], ...] | None
    labels: tuple[Any, ...]
    level: Level = "sentence"
    splits: tuple[str, ...] = ()
    label_names: tuple[str, ...] = ()
    skipped: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {self.level!r}")
        n = len(self.texts)
        if len(self.labels) != n:
            raise ValueError(f"{len(self.labels)} labels for {n} examples")
        if not self.splits:
            object.__setattr__(self, "splits", ("train",) * n)
        if len(self.splits) != n:
            raise ValueError(f"{len(self.splits)} split names for {n} examples")
        bad = sorted(set(self.splits) - set(SPLITS))
        if bad:
            raise ValueError(f"unknown split name(s) {bad}; use {SPLITS}")
        check_labels(self.labels, self.level, words=self.word_lists())

    # ------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        counts = Counter(self.splits)
        sp = ", ".join(f"{s}={counts[s]}" for s in SPLITS if counts[s])
        return f"ProbingDataset({len(self)} examples, level={self.level!r}, {len(self.label_names)} labels; {sp})"

    @property
    def inputs(self) -> list:
        """What :func:`probekit.model._tokenize.tokenize` takes: word lists if pre-split, else texts."""
        return [list(w) for w in self.words] if self.words is not None else list(self.texts)

    def word_lists(self) -> list[tuple[str, ...]]:
        """Words of every example (whitespace pieces of the text when not pre-split)."""
        return list(self.words) if self.words is not None else [tuple(t.split()) for t in self.texts]

    def split(self, name: str) -> ProbingDataset:
        """The examples of one split."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; use one of {SPLITS}")
        idx = [i for i, s in enumerate(self.splits) if s == name]
        return self.subset(idx)

    def subset(self, idx: Sequence[int]) -> ProbingDataset:
        """The examples at ``idx``, in that order."""
        return ProbingDataset(
            tuple(self.texts[i] for i in idx),
            None if self.words is None else tuple(self.words[i] for i in idx),
            tuple(self.labels[i] for i in idx), self.level,
            tuple(self.splits[i] for i in idx), self.label_names, dict(self.skipped),
        )

    def with_labels(self, labels: Sequence[Any], label_names: Sequence[str] | None = None) -> ProbingDataset:
        """A copy with other labels (same examples and splits)."""
        return ProbingDataset(self.texts, self.words, tuple(labels), self.level, self.splits,
                              tuple(label_names if label_names is not None else self.label_names), dict(self.skipped))

    def flat_labels(self) -> list:
        """Every label: one per example, per word or per pair (structural: none)."""
        if self.level == "sentence":
            return list(self.labels)
        if self.level == "word":
            return [lab for row in self.labels for lab in row]
        if self.level == "edge":
            return [t[2] for row in self.labels for t in row]
        return []

    def to_frame(self) -> pd.DataFrame:
        """One row per example: ``text, words, label, split``."""
        return pd.DataFrame({"text": list(self.texts),
                             "words": list(self.words) if self.words is not None else [None] * len(self),
                             "label": list(self.labels), "split": list(self.splits)})

    # ------------------------------------------------------- constructors
    @classmethod
    def from_lists(cls, inputs, labels, *, level: Level = "sentence", splits: Sequence[str] | None = None,
                   label_names: Sequence[str] | None = None) -> ProbingDataset:
        """Build from Python lists.

        Parameters
        ----------
        inputs : list of str or list of list of str
            Plain texts, or pre-split words (validated as model inputs are).
        labels : list
            Shaped by ``level``; word labels must match the words in length.
        level : {"sentence", "word", "edge", "structural"}
        splits : list of str, optional
            ``train``/``dev``/``test`` per example (default all ``train``).
        label_names : list of str, optional
            The allowed classes; a label outside them is an error. Default:
            the sorted distinct labels.
        """
        texts, given = validate_inputs(inputs)
        words = None if all(w is None for w in given) else tuple(given)
        labels = list(labels)
        if len(labels) != len(texts):
            raise ValueError(f"{len(labels)} labels for {len(texts)} examples; give one entry per example")
        wl = list(words) if words is not None else [tuple(t.split()) for t in texts]
        if level in ("sentence", "word"):
            check_labels(labels, level, words=wl)  # before the shape checks, which would stumble on a None
        if level == "word":
            for i, (w, lab) in enumerate(zip(wl, labels)):
                if isinstance(lab, str) or not isinstance(lab, Sequence):
                    raise TypeError(f"example {i}: word-level labels must be a list per example, got {lab!r}")
                if len(lab) != len(w):
                    raise ValueError(f"example {i}: {len(lab)} labels for {len(w)} words ({' '.join(w)[:60]!r})")
            labels = [tuple(lab) for lab in labels]
        elif level == "edge":
            fixed = []
            for i, (w, row) in enumerate(zip(wl, labels)):
                out = []
                for t in row:
                    if len(t) != 3:
                        raise ValueError(f"example {i}: edge labels are (i, j, label) triples, got {t!r}")
                    a, b, lab = t
                    if not (0 <= int(a) < len(w) and 0 <= int(b) < len(w)):
                        raise ValueError(f"example {i}: edge ({a}, {b}) outside the {len(w)} words")
                    out.append((int(a), int(b), lab))
                fixed.append(tuple(out))
            labels = fixed
        elif level == "structural":
            for i, (w, lab) in enumerate(zip(wl, labels)):
                if not isinstance(lab, dict) or "distance" not in lab or "depth" not in lab:
                    raise TypeError(f"example {i}: structural labels are dicts with 'distance' and 'depth'")
                if len(lab["depth"]) != len(w) or tuple(lab["distance"].shape) != (len(w), len(w)):
                    raise ValueError(f"example {i}: structural labels do not match its {len(w)} words")
        elif level != "sentence":
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        ds = cls(tuple(texts), words, tuple(labels), level, tuple(splits) if splits is not None else (), ())
        if level == "structural":
            return ds
        present = sorted(set(canonical_labels(ds.flat_labels())))
        if label_names is None:
            names = tuple(present)
        else:
            names = tuple(canonical_labels(label_names))
            unknown = sorted(set(present) - set(names))
            if unknown:
                raise ValueError(f"unknown label name(s) {unknown[:10]}; known: {list(names)[:20]}")
        return ds.with_labels(_stringify(ds.labels, level), names)

    @classmethod
    def from_pandas(cls, df: pd.DataFrame, *, text: str = "text", label: str = "label",
                    split: str | None = None, level: Level = "sentence",
                    label_names: Sequence[str] | None = None) -> ProbingDataset:
        """Build from a DataFrame: column ``text`` holds strings or word lists, ``label`` the labels."""
        for col in (text, label) + ((split,) if split else ()):
            if col not in df.columns:
                raise KeyError(f"column {col!r} not in the DataFrame (columns: {list(df.columns)})")
        inputs = [list(x) if not isinstance(x, str) else x for x in df[text].tolist()]
        labels = df[label].tolist()
        if level in ("word", "edge"):
            labels = [x if is_missing(x) else list(x) for x in labels]
        return cls.from_lists(inputs, labels, level=level, splits=df[split].tolist() if split else None,
                              label_names=label_names)

    @classmethod
    def from_hf(cls, dataset, *, text: str = "text", label: str = "label", split: str | None = None,
                level: Level = "sentence", label_names: Sequence[str] | None = None) -> ProbingDataset:
        """Build from a Hugging Face ``datasets.Dataset`` (or a ``DatasetDict`` whose keys are splits).

        A ``ClassLabel`` feature supplies the label names.
        """
        if hasattr(dataset, "keys") and not hasattr(dataset, "features"):  # DatasetDict
            frames = []
            for name in dataset.keys():
                f = dataset[name].to_pandas()
                f["__split"] = {"validation": "dev"}.get(name, name)
                frames.append(f)
            feats = dataset[next(iter(dataset.keys()))].features
            df, split = pd.concat(frames, ignore_index=True), "__split"
        else:
            feats, df = dataset.features, dataset.to_pandas()
        feat = feats.get(label) if hasattr(feats, "get") else None
        names = getattr(feat, "names", None)
        if names is not None and level == "sentence":
            df = df.copy()
            df[label] = [names[i] for i in df[label]]
            label_names = label_names or names
        return cls.from_pandas(df, text=text, label=label, split=split, level=level, label_names=label_names)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, *, text: str = "text", label: str = "label",
                 split: str | None = None, label_names: Sequence[str] | None = None, **read_kw) -> ProbingDataset:
        """Build a sentence-level dataset from a CSV file (columns ``text``, ``label``, optional split).

        Cells are read as written (``NA`` is the string ``"NA"``); an empty label cell is an error
        naming its example (row, counting data rows from 0).
        """
        df = pd.read_csv(path, keep_default_na=False, dtype={label: str}, **read_kw)
        try:
            return cls.from_pandas(df, text=text, label=label, split=split, label_names=label_names)
        except MissingLabelError as exc:
            raise MissingLabelError(f"{path}: {exc}", exc.example, exc.word) from None

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, *, text: str = "text", label: str = "label",
                   split: str | None = None, level: Level = "sentence",
                   label_names: Sequence[str] | None = None) -> ProbingDataset:
        """Build from JSON Lines: one object per line; ``text`` a string or a list of words.

        A line that is not valid JSON is an error naming file and line.
        """
        rows = []
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                for col in (text, label) + ((split,) if split else ()):
                    if col not in rows[-1]:
                        raise ValueError(f"{path}:{lineno}: missing key {col!r}")
        if not rows:
            raise ValueError(f"{path} has no examples")
        return cls.from_pandas(pd.DataFrame(rows), text=text, label=label, split=split, level=level,
                               label_names=label_names)


def _stringify(labels, level):
    """Class names of the labels (:func:`probekit.labels.canonical_label`: ``1``, ``1.0`` and ``"1"`` are one class)."""
    if level == "sentence":
        return tuple(canonical_label(x) for x in labels)
    if level == "word":
        return tuple(tuple(canonical_label(x) for x in row) for row in labels)
    if level == "edge":
        return tuple(tuple((a, b, canonical_label(lab)) for a, b, lab in row) for row in labels)
    return labels


CONLLU_COLUMNS = ("upos", "xpos", "deprel", "head")


def from_conllu(path: str | os.PathLike, label: str = "upos", *, split: str = "train",
                limit: int | None = None) -> ProbingDataset:
    """A word-level dataset from one CoNLL-U file: the syntactic words and one annotation column.

    Parameters
    ----------
    path : path-like
        The ``.conllu`` file (malformed lines raise :class:`ConlluError` naming file and line).
    label : {"upos", "xpos", "deprel", "head"}
        The column used as label (``head``: the 1-based head index as a string, ``0`` for the root).
    split : str
        Split name given to every example.
    limit : int, optional
        Read only the first ``limit`` sentences.
    """
    if label not in CONLLU_COLUMNS:
        raise ValueError(f"unknown CoNLL-U label column {label!r}; use one of {CONLLU_COLUMNS}")
    sents = read_conllu(path, limit=limit)
    attr = {"deprel": "deprels", "head": "heads"}.get(label, label)
    labels = [tuple(str(x) for x in getattr(s, attr)) for s in sents]
    return ProbingDataset.from_lists([list(s.words) for s in sents], labels, level="word",
                                     splits=[split] * len(sents))
