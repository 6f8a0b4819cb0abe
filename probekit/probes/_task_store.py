"""Stores extracted *for* a probing task, and the probe inputs they give.

A probe suite must pair every label with exactly the activation row it
belongs to. :func:`extract_task` therefore extracts precisely a task's
examples (its pre-split words, in task order, with the split and sentence
label as metadata, word- and sentence-mean pooled), and
:func:`check_alignment` refuses a store whose examples or words differ from
the task's -- it never lets labels and rows drift apart silently.

Layers are numbered on the one layer axis (:func:`probekit.site_layer`):
``emb`` is layer 0, ``L{i}.*`` is layer ``i + 1`` and ``final`` comes after
the last block.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from probekit.data import SplitWarning
from probekit.fingerprint import hash_json_lines
from probekit.labels import canonical_labels
from probekit.model import Site, as_hooked_model, site_layer
from probekit.results import store_blocks
from probekit.store import extract, resolve_sites

logger = logging.getLogger(__name__)

__all__ = ["StoreTaskMismatchError", "check_alignment", "extract_task", "extract_tasks", "group_tasks",
           "random_init_copy", "site_layer", "task_frame", "TaskInputs", "task_inputs", "stream_inputs"]


class StoreTaskMismatchError(ValueError):
    """The store's examples are not the task's examples (count, order or words differ)."""


def task_frame(task) -> pd.DataFrame:
    """The examples of ``task`` as :func:`probekit.extract` takes them.

    Columns ``id`` (example index), ``words`` (pre-split), ``split``, and
    ``label`` for sentence-level tasks.
    """
    ds = task.dataset
    df = pd.DataFrame({"id": np.arange(len(ds)), "words": [list(w) for w in ds.word_lists()],
                       "split": list(ds.splits)})
    if task.level == "sentence":
        df["label"] = [str(x) for x in ds.labels]
    return df


def sentence_pooling_for(model) -> str:
    """How a task store pools a sentence: its ``last`` token for a decoder (the only token that has seen the whole
    sentence under causal attention), the ``mean`` of its tokens for an encoder."""
    return "last" if as_hooked_model(model).kind == "decoder" else "mean"


def sentence_how(store) -> str:
    """The sentence pooling a task store holds (``last`` or ``mean``); ``mean`` when it holds none."""
    stored = [h for h in store.settings["sentence_pooling"] if h in ("last", "mean")]
    return stored[0] if stored else "mean"


def extract_task(model, task, out: str | os.PathLike, sites=None, *, dtype: str | None = None, **kwargs):
    """Extract a store holding exactly ``task``'s examples, ready for :class:`ProbeSuite`.

    Parameters
    ----------
    model : HookedModel or str
        A model-like object (:class:`probekit.model.ModelLike`: a model or a variant), or anything
        :func:`probekit.model.load_hooked_model` takes.
    task : Task
        From :func:`probekit.data.build_task`; its control task shares the
        examples, so one store serves both.
    out : path
        Store directory.
    sites : optional
        As in :func:`probekit.extract` (default: ``emb`` and every residual site).
    dtype : {"float16", "float32"}, optional
        Of the store. Default: float16, or float32 where a row holds a value
        beyond float16's range (the store is then made again in float32, with
        a warning), as in :func:`extract_tasks`.
    **kwargs
        Passed to :func:`probekit.extract` (``overwrite``, ``progress``, ...).

    Returns
    -------
    ActivationStore
        With word rows (mean over sub-word tokens) and sentence rows (a
        decoder's last token, an encoder's mean over tokens: see
        :func:`sentence_pooling_for`); token rows are not kept.

    Examples
    --------
    >>> import probekit, tempfile, transformers
    >>> from probekit.data import build_task
    >>> m = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> upos = build_task("upos", "rt", limit=20)
    >>> store = extract_task(m, upos, tempfile.mkdtemp() + "/upos", progress=False)
    >>> store.sites
    [Site('emb'), Site('L0.resid'), Site('L1.resid')]
    """
    kwargs.setdefault("tokens", False)
    if isinstance(model, (str, os.PathLike)):
        from probekit.model import load_hooked_model  # imports transformers, only where a model is named

        model = load_hooked_model(model)
    frame = task_frame(task)
    return _float16_unless_overflow(
        lambda dt, kw: extract(model, frame, sites, out, dtype=dt, word_pooling=("mean",),
                               sentence_pooling=(sentence_pooling_for(model),), **kw), dtype, kwargs)


def _float16_unless_overflow(make, dtype: str | None, kwargs: dict):
    """``make(dtype, kwargs)`` with the given dtype; without one float16, or float32 where a value overflows it.

    The float32 try overwrites what the float16 one wrote (its complete shards are of the other fingerprint).
    """
    from probekit.store import Float16OverflowError

    if dtype is not None:
        return make(dtype, kwargs)
    try:
        return make("float16", kwargs)
    except Float16OverflowError as exc:
        logger.warning("%s: making the store in float32 instead", exc)
        return make("float32", {**kwargs, "overwrite": True})


def group_tasks(tasks) -> list[list]:
    """Tasks grouped by identical examples (the same words, in order), in first-seen order.

    One store serves a whole group: labels and splits come from each task,
    only the words must match (what :func:`check_alignment` checks).
    """
    groups: dict[str, list] = {}
    for task in tasks:
        key = hash_json_lines(list(w) for w in task.dataset.word_lists())
        groups.setdefault(key, []).append(task)
    return list(groups.values())


#: name of the store of task sentences found in no source (under ``out_root``; task names have no ``@``)
EXTRACTED = "@extracted"


def _levels(tasks, sent_how: str = "mean") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(word_pooling, sentence_pooling)`` the tasks read: word rows for word, edge and structural tasks."""
    word = any(t.level in ("word", "edge", "structural") for t in tasks)
    sent = any(t.level == "sentence" for t in tasks)
    return (("mean",) if word else ()), ((sent_how,) if sent else ())


class _Root:
    """A folder or a URL that ``/ name`` extends (``s3://b/x`` / ``upos`` is ``s3://b/x/upos``)."""

    def __init__(self, root: str | os.PathLike):
        self.root = str(root).rstrip("/") if "://" in str(root) else Path(root)

    def __truediv__(self, name: str) -> str | Path:
        return f"{self.root}/{name}" if isinstance(self.root, str) else self.root / name


def extract_tasks(model, tasks, out_root: str | os.PathLike, sites=None, *, dtype: str | None = None,
                  sources=(), **kwargs) -> list[tuple[list, object]]:
    """One store per group of tasks that share their examples, running the model over each sentence once.

    Tasks built from the same sentences (e.g. ``upos`` and ``deprel`` on one
    UD file) share one store; a task that rewrites its sentences
    (``bigram_shift``) gets its own. The stores go to ``out_root/<task names
    joined by '+'>`` and are reused when they already hold the same model and
    examples.

    Extract once, analyse many: the model runs only over the task sentences
    found in none of ``sources`` (token-level stores of the same model, e.g. an
    experiment's main store), once each, into ``out_root/@extracted`` (pooled
    rows only); each group's store is then derived from those stores with
    :func:`probekit.store.derive` and holds the pooled rows its tasks read
    (word rows for word, edge and structural tasks, sentence rows for
    sentence tasks). A single group with no sources is extracted directly
    into its store, with word and sentence rows, as :func:`extract_task` does.

    Parameters
    ----------
    model : HookedModel or str
    tasks : sequence of Task
    out_root : path
        Parent directory of the stores.
    sites : optional
        As in :func:`probekit.extract` (default: ``emb`` and every residual site).
    dtype : {"float16", "float32"}, optional
        Of the task stores (pooling runs in float32 either way). Default:
        float16 (half the bytes to write and read; probes train on
        standardized features in bf16 or float32 either way), or float32
        where a row holds a value beyond float16's range, as models with
        massive activations do: the stores are then made again in float32
        (a warning says so). Given float16, such a value is a
        :class:`~probekit.store.Float16OverflowError`.
    sources : sequence of ActivationStore or path
        Stores of ``model`` whose examples need no new forward pass: their
        token rows are pooled (or their pooled rows copied).
    **kwargs
        Passed to :func:`probekit.extract` (``overwrite``, ``progress``,
        ``batch_tokens``...); ``overwrite`` and ``progress`` also to
        :func:`~probekit.store.derive`.

    Returns
    -------
    list of (list of Task, ActivationStore)
        The groups in the order their first task was given.

    Raises
    ------
    FingerprintMismatchError
        A source store was not extracted from ``model`` (or was extracted with interventions).

    Examples
    --------
    >>> import probekit, tempfile, transformers
    >>> from probekit.data import build_task
    >>> m = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> upos, deprel = build_task("upos", "rt", limit=20), build_task("deprel", "rt", limit=20)
    >>> groups = extract_tasks(m, [upos, deprel], tempfile.mkdtemp(), progress=False)
    >>> [[t.name for t in ts] for ts, _ in groups]
    [['upos', 'deprel']]

    With the token rows of a store the model already made, no sentence runs
    through it again: the task store is derived from them.

    >>> import os
    >>> root = tempfile.mkdtemp()
    >>> main = probekit.extract(m, task_frame(upos).drop(columns="split"), out=root + "/main", progress=False)
    >>> groups = extract_tasks(m, [upos, deprel], root + "/tasks", sources=[main], progress=False)
    >>> [([t.name for t in ts], st.manifest["stats"]["derived"]) for ts, st in groups]
    [(['upos', 'deprel'], True)]
    >>> os.listdir(root + "/tasks")
    ['upos+deprel']
    """
    if isinstance(model, (str, os.PathLike)):
        from probekit.model import load_hooked_model  # imports transformers, only where a model is named

        model = load_hooked_model(model)
    return _float16_unless_overflow(lambda dt, kw: _extract_tasks(model, tasks, out_root, sites, dt, sources, kw),
                                    dtype, kwargs)


def _extract_tasks(model, tasks, out_root, sites, dtype: str, sources, kwargs: dict) -> list[tuple[list, object]]:
    from probekit.store import ActivationStore, derive, find_examples

    # opened against the model: another model's store raises FingerprintMismatchError naming it
    sources = [ActivationStore.open(getattr(s, "location", s), model=model) for s in sources]
    out_root = _Root(out_root)
    kwargs.setdefault("tokens", False)
    groups = group_tasks(tasks)
    frames = []
    for members in groups:
        frame = task_frame(members[0])
        if len(members) > 1 and "label" in frame:
            frame = frame.drop(columns="label")  # labels come from each task, not from the store
        frames.append(frame)
    names = ["+".join(t.name.replace("/", "_") for t in members) for members in groups]
    how = sentence_pooling_for(model)
    if len(groups) == 1 and not sources:
        store = extract(model, frames[0], sites, out_root / names[0], dtype=dtype, word_pooling=("mean",),
                        sentence_pooling=(how,), **kwargs)
        return [(groups[0], store)]
    # every task sentence found in no source, once, with the levels of the groups that need it
    new: dict[tuple, list[str]] = {}
    word_needed = sent_needed = False
    for members, frame in zip(groups, frames):
        src = find_examples(sources, frame[["words"]])[0] if sources else np.full(len(frame), -1)
        wp, sp = _levels(members, how)
        for i in np.flatnonzero(src < 0):
            new.setdefault(tuple(frame["words"].iloc[i]), list(frame["words"].iloc[i]))
            word_needed |= bool(wp)
            sent_needed |= bool(sp)
    made = list(sources)
    if new:
        logger.info("running the model over %d task sentences found in no source store", len(new))
        rest = pd.DataFrame({"id": np.arange(len(new)), "words": list(new.values())})
        made.append(extract(model, rest, sites, out_root / EXTRACTED, dtype=dtype,
                            word_pooling=("mean",) if word_needed else (),
                            sentence_pooling=(how,) if sent_needed else (), **kwargs))
    derive_args = {k: kwargs[k] for k in ("overwrite", "progress") if k in kwargs}
    site_list = resolve_sites(as_hooked_model(model), sites)
    out = []
    for members, frame, name in zip(groups, frames, names):
        wp, sp = _levels(members, how)
        store = derive(made, frame, out_root / name, site_list, word_pooling=wp, sentence_pooling=sp, dtype=dtype,
                       **derive_args)
        out.append((members, store))
    return out


def random_init_copy(model, seed: int = 0, name: str | None = None):
    """The same architecture with freshly drawn random weights and the same tokenizer.

    Parameters
    ----------
    model : HookedModel
    seed : int
        Seed of the random weights.
    name : str, optional
        Default ``"<model name>-random<seed>"``.

    Returns
    -------
    HookedModel
        Use it with :func:`extract_task` for the random-weights baseline.
    """
    model = as_hooked_model(model)
    from probekit.model import load_hooked_model

    cfg = copy.deepcopy(model.config)
    base = model.name or type(model.model).__name__
    return load_hooked_model(cfg, tokenizer=model.tokenizer, seed=seed, name=name or f"{base}-random{seed}")


def check_alignment(store, task) -> None:
    """Raise :class:`StoreTaskMismatchError` unless ``store`` holds ``task``'s examples and words, in order."""
    words = task.dataset.word_lists()
    if store.n_examples != len(words):
        raise StoreTaskMismatchError(
            f"store {store.path} has {store.n_examples} examples but task {task.name!r} has {len(words)}; "
            "extract the store for this task with probekit.probes.extract_task(model, task, out) (and build the "
            "task with the same source, path, limit and seed), or, if this store holds the task's sentences, derive "
            "one from it without running the model: probekit.probes.extract_tasks(model, [task], out, "
            "sources=[store])")
    n_words = np.asarray(store.n_words)
    want = np.array([len(w) for w in words])
    bad = np.flatnonzero(n_words != want)
    if len(bad):
        i = int(bad[0])
        raise StoreTaskMismatchError(
            f"store {store.path} and task {task.name!r} differ in the words of {len(bad)} example(s), first at "
            f"example {i}: {int(n_words[i])} words in the store vs {int(want[i])} in the task; extract the store "
            "with probekit.probes.extract_task")
    stored = store.examples["words"].tolist()  # one list, not a pandas lookup per example
    for i, (s, w) in enumerate(zip(stored, words)):
        if list(s) != list(w):
            raise StoreTaskMismatchError(
                f"store {store.path} and task {task.name!r} differ at example {i}: store words "
                f"{list(s)[:8]} vs task words {list(w)[:8]}; extract the store with "
                "probekit.probes.extract_task")


@dataclass
class TaskInputs:
    """Probe inputs of one task on one store: features per layer, labels, and train/eval masks.

    ``X[l]`` is ``[rows, d]`` for classification tasks (rows: sentences, words
    or pairs) and a list of per-sentence ``[n_words, d]`` matrices for
    structural tasks; ``y`` holds the labels (structural: per-sentence dicts);
    ``train``/``test`` are boolean masks over rows (sentences for structural).
    """

    sites: list[Site]
    layers: list[int]  # on the layer axis (emb 0, block i: i + 1, final: n_blocks + 1)
    X: list
    y: object
    train: np.ndarray
    test: np.ndarray
    train_split: str
    test_split: str
    d: int | None = None  # feature width (set by stream_inputs)


def _splits(splits: Sequence[str], name: str = "the task") -> tuple[str, str]:
    """The splits probes train and test on: ``train`` and ``test``, else ``dev`` in their place, said aloud."""
    have = set(splits)
    train = "train" if "train" in have else "dev"
    test = "test" if "test" in have else "dev"
    if train not in have or test not in have:
        raise ValueError(f"{name} needs a train (or dev) and a test (or dev) split; it has {sorted(have)}")
    counts = {s: sum(1 for x in splits if x == s) for s in have}
    if train == test:
        warnings.warn(SplitWarning(f"{name} has only the {train!r} split ({counts[train]} examples): the probes "
                                   "are trained and evaluated on the same examples"), stacklevel=3)
    elif train != "train":
        warnings.warn(SplitWarning(f"{name} has no 'train' split (it has {', '.join(sorted(have))}; e.g. a UD "
                                   f"folder without a *-ud-train.conllu file): the probes are trained on the "
                                   f"{counts[train]} {train!r} examples and tested on {test!r}"), stacklevel=3)
    return train, test


def warn_test_only_classes(y: np.ndarray, train: np.ndarray, test: np.ndarray, name: str) -> list[str]:
    """Warn (and return them) when classes occur among the test rows but never among the training rows.

    No probe trained on the training rows can predict such a class, so its test rows are errors by construction.
    """
    only = sorted(set(y[test].tolist()) - set(y[train].tolist()))
    if only:
        n = int(np.isin(y[test], only).sum())
        shown = ", ".join(map(repr, only[:8])) + (f" and {len(only) - 8} more" if len(only) > 8 else "")
        what = f"classes {shown} occur" if len(only) > 1 else f"class {shown} occurs"
        warnings.warn(SplitWarning(f"{name}: {what} only in the test split ({n} of {int(test.sum())} test rows): "
                                   "no probe trained on the training rows can predict them"), stacklevel=3)
    return only


def _row_splits(task) -> np.ndarray:
    ds = task.dataset
    if task.level in ("sentence", "structural"):
        return np.asarray(ds.splits)
    if task.level == "word":
        return np.repeat(np.asarray(ds.splits), [len(r) for r in ds.labels])
    return np.repeat(np.asarray(ds.splits), [len(r) for r in ds.labels])


def task_labels(task) -> np.ndarray:
    """Flat labels of a classification task, one per probe row."""
    return np.asarray(canonical_labels(task.dataset.flat_labels()), dtype=str)


def _edge_index(task, word_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = [], []
    for k, row in enumerate(task.dataset.labels):
        for i, j, _ in row:
            a.append(word_offsets[k] + i)
            b.append(word_offsets[k] + j)
    return np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)


def _task_sites(store, sites) -> tuple[list[Site], int]:
    if sites is None:
        sites = [Site.parse(s) for s in store.manifest["sites"]]
        sites = [s for s in sites if not s.is_attention]
    else:
        sites = [Site.parse(s) for s in sites]
    n_blocks = store_blocks(store)
    sites = sorted(sites, key=lambda s: (site_layer(s, n_blocks), str(s)))
    if not sites:
        raise ValueError(f"store {store.path} has no token-level sites to probe")
    return sites, n_blocks


class _PairReader:
    """Rows of an edge task: the concatenation ``[h_i; h_j]`` of two word rows, read on demand."""

    def __init__(self, read, ia: np.ndarray, ib: np.ndarray):
        self._read, self.ia, self.ib = read, ia, ib

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return np.concatenate([self._read(self.ia[rows]), self._read(self.ib[rows])], axis=1)


def _level_reader(store, site, level: str):
    """``read(rows)`` over the pooled rows of ``site`` (the store's one reader), and the row width.

    Word rows are ``mean``-pooled; sentence rows are what the store holds (:func:`sentence_how`).
    """
    reader = store[site].reader(level, sentence_how(store) if level == "sentence" else "mean")
    return reader.read, reader.d


def stream_inputs(store, task, sites=None) -> TaskInputs:
    """:func:`task_inputs` of a classification task with readers instead of features.

    ``X[l]`` is a callable ``read(rows) -> [len(rows), d]`` over the task's rows
    (sentences, words or word pairs), reading the store only when called;
    ``TaskInputs.d`` gives the width. Nothing is held in memory but the labels.
    """
    if task.level not in ("sentence", "word", "edge"):
        raise ValueError(f"stream_inputs is for classification tasks, not {task.level!r} tasks")
    check_alignment(store, task)
    sites, n_blocks = _task_sites(store, sites)
    train_split, test_split = _splits(task.dataset.splits, f"task {task.name!r}")
    rs = _row_splits(task)
    y = task_labels(task)
    warn_test_only_classes(y, rs == train_split, rs == test_split, f"task {task.name!r}")
    X, widths = [], []
    for s in sites:
        read, d = _level_reader(store, s, "sentence" if task.level == "sentence" else "word")
        if task.level == "edge":
            offsets = np.concatenate([[0], np.cumsum(store.n_words)])
            ia, ib = _edge_index(task, offsets)
            read, d = _PairReader(read, ia, ib), 2 * d
        X.append(read)
        widths.append(d)
    if len(set(widths)) != 1:
        raise ValueError(f"the sites of {store.path} differ in width ({dict(zip(map(str, sites), widths))}); "
                         "probe them in separate runs")
    inp = TaskInputs(sites, [site_layer(s, n_blocks) for s in sites], X, y, rs == train_split, rs == test_split,
                     train_split, test_split)
    inp.d = widths[0]
    return inp


def task_inputs(store, task, sites=None) -> TaskInputs:
    """Check alignment and build the probe inputs of ``task`` at every (token-level) site of ``store``.

    Parameters
    ----------
    store : ActivationStore
        Extracted with :func:`extract_task` (or equivalently).
    task : Task
    sites : sequence of Site or str, optional
        Default: every non-attention site of the store, ordered by layer.
    """
    check_alignment(store, task)
    sites, n_blocks = _task_sites(store, sites)
    train_split, test_split = _splits(task.dataset.splits, f"task {task.name!r}")
    rs = _row_splits(task)
    train, test = rs == train_split, rs == test_split
    if task.level in ("sentence", "word", "edge"):
        warn_test_only_classes(task_labels(task), train, test, f"task {task.name!r}")
    X: list = []
    if task.level == "sentence":
        y = task_labels(task)
        how = sentence_how(store)
        X = [np.asarray(store[s].numpy("sentence", how), dtype=np.float32) for s in sites]
    elif task.level == "word":
        y = task_labels(task)
        X = [np.asarray(store[s].numpy("word", "mean"), dtype=np.float32) for s in sites]
    elif task.level == "edge":
        y = task_labels(task)
        offsets = np.concatenate([[0], np.cumsum(store.n_words)])
        ia, ib = _edge_index(task, offsets)
        for s in sites:
            W = np.asarray(store[s].numpy("word", "mean"), dtype=np.float32)
            X.append(np.concatenate([W[ia], W[ib]], axis=1))
    elif task.level == "structural":
        y = list(task.dataset.labels)
        offsets = np.concatenate([[0], np.cumsum(store.n_words)])
        for s in sites:
            W = np.array(store[s].numpy("word", "mean"), dtype=np.float32)  # a writable copy
            X.append([W[offsets[k]:offsets[k + 1]] for k in range(len(offsets) - 1)])
    else:
        raise ValueError(f"unknown task level {task.level!r}")
    return TaskInputs(sites, [site_layer(s, n_blocks) for s in sites], X, y, train, test, train_split, test_split)
