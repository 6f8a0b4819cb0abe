"""Shared set-up of the UD English EWT paper checks: the task with the whole dev file as test, and its store.

The checks read only the train and dev files (a test file beside them, as
in the copy ``probekit data fetch ud_ewt`` downloads, is left out, so the
results do not depend on it). ``build_task`` then cuts the dev file into a
``dev`` and a ``test`` half; the paper checks train on the train file and
evaluate on the whole dev file, so both halves become the ``test`` split.
The train file can be subsampled to a seeded number of sentences to keep
MLP probes affordable on a small CPU. Every word-level UD task (``upos``,
``deprel``, ``ner``) keeps every sentence, so tasks built with the same
sample share one activation store.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from probekit.data import build_task, default_ud_path, ud_files
from probekit.probes import extract_task

ROOT = Path(__file__).resolve().parents[1]
#: The ``--ud-path`` help of every UD paper check (the default folder is the library's).
UD_PATH_HELP = ("UD English EWT folder (train and dev files); default $PROBEKIT_UD_PATH, else the copy fetched by "
                "'probekit data fetch ud_ewt'")


def ud_task(name: str, ud_path=None, *, train_sentences: int | None = None, fit_sentences: int | None = None,
            seed: int = 0):
    """Task ``name`` on UD EWT: a seeded sample of train sentences for training, the whole dev file for test.

    Parameters
    ----------
    name : str
        A word-level task from :func:`probekit.data.list_tasks` (``upos``, ``deprel``, ``ner``, ...).
    ud_path : path-like, optional
        The UD English EWT folder (train and dev ``.conllu`` files); default
        :func:`probekit.data.default_ud_path` (``$PROBEKIT_UD_PATH``, else the
        copy fetched by ``probekit data fetch ud_ewt``).
    train_sentences : int, optional
        Keep this many train sentences, drawn without replacement with ``seed``
        and kept in file order (default: all).
    fit_sentences : int, optional
        Train the probes on only the first this many sentences of a seeded
        shuffle of the kept ones; the others stay in the task (and its store)
        with split ``dev``, which the probe suite neither trains nor tests on.
        A store extracted for ``train_sentences`` is then reused for any
        smaller probe training set.
    seed : int
        Seed of the sample and of the task.

    Returns
    -------
    Task
        ``meta["source_index"]`` still points at the source sentences;
        ``meta["train_sample"]`` records the sample (``n_train_file``, ``n_kept``, ``n_fit``, ``seed``).
    """
    if ud_path is None:
        ud_path = default_ud_path()
    files = ud_files(ud_path)
    for split, role in (("train", "train on"), ("dev", "evaluate on")):
        if split not in files:
            raise ValueError(f"{ud_path} has no {split} file (*-ud-{split}.conllu); the paper checks {role} it")
    # the train and dev files only: a test file beside them (the fetched copy has one) changes nothing
    task = build_task(name, "ud", path={"train": files["train"], "dev": files["dev"]}, seed=seed)
    ds = task.dataset
    train = [i for i, s in enumerate(ds.splits) if s == "train"]
    test = [i for i, s in enumerate(ds.splits) if s != "train"]  # build_task's dev and test halves of the dev file
    n_file = len(train)
    if train_sentences is not None:
        if train_sentences < 1:
            raise ValueError(f"train_sentences must be a positive number, got {train_sentences}")
        if train_sentences < n_file:
            train = sorted(np.random.default_rng(seed).choice(train, size=train_sentences, replace=False).tolist())
    train_set = set(train)
    fit = train_set
    if fit_sentences is not None and fit_sentences < len(train):
        if fit_sentences < 1:
            raise ValueError(f"fit_sentences must be a positive number, got {fit_sentences}")
        fit = set(np.random.default_rng(seed + 1).permutation(train)[:fit_sentences].tolist())
    idx = train + test
    sub = ds.subset(idx)
    sub = replace(sub, splits=tuple(("train" if i in fit else "dev") if i in train_set else "test" for i in idx))
    meta = dict(task.meta)
    meta["source_index"] = [task.meta["source_index"][i] for i in idx]
    meta["train_sample"] = {"n_train_file": n_file, "n_kept": len(train), "n_fit": len(fit), "seed": seed}
    return replace(task, dataset=sub, meta=meta)


def store_for(model, task, root, *, progress: bool = True):
    """Extract (or reuse) the word-mean-pooled float16 store of ``task`` under ``root``.

    The folder name records the model and the train sample, so stores of
    different samples never collide (a store is reused only when its
    fingerprint matches).
    """
    ts = task.meta["train_sample"]
    n = "all" if ts["n_kept"] == ts["n_train_file"] else str(ts["n_kept"])
    out = Path(root) / f"ud_ewt_{model.name}_train{n}_seed{ts['seed']}"
    # the store holds every kept train sentence as "train", whichever of them the probes are fitted on
    ds = task.dataset
    full = replace(task, dataset=replace(ds, splits=tuple("test" if s == "test" else "train" for s in ds.splits)))
    return extract_task(model, full, out, dtype="float16", progress=progress)


def words_by_split(task) -> dict[str, int]:
    """Number of words (probe rows) per split."""
    out: dict[str, int] = {}
    for labs, sp in zip(task.dataset.labels, task.dataset.splits):
        out[sp] = out.get(sp, 0) + len(labs)
    return out


def add_output_args(ap, here: Path, *, threads: bool = False) -> None:
    """The options every UD paper check shares: model, store folder, output folder (and torch threads)."""
    if threads:
        ap.add_argument("--threads", type=int, default=1,
                        help="Torch threads for probe training (default 1: on a shared 2-core CPU more threads wait "
                             "on each other)")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--store-root", default=str(ROOT / "runs" / "papers"), help="folder of the stores")
    ap.add_argument("--out", default=str(here))
