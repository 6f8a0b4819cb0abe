"""Control tasks (Hewitt & Liang 2019): what a probe can learn without the property.

Word-level tasks
    Every word *type* (the exact word form, case-sensitive) gets one label,
    drawn once (seeded) from the task's empirical label distribution (label
    counts over all word tokens of all splits). Every token of a type carries
    its type's label, so the control is word-type consistent, and the labels
    given to types follow the real task's distribution (up to sampling error).
Edge-level tasks
    The same idea on pairs: ``arclabel`` keys the control label on the
    dependent's word type, ``arc`` on the (dependent type, candidate type)
    pair; labels drawn from the task's empirical distribution.
Sentence-level tasks
    A seeded permutation of the labels within each split: the class counts
    of every split are exactly those of the real task, the link between
    sentence and label is broken.
Structural tasks have no control task here (a random-tree control is future
work).

The control is a :class:`~probekit.data._tasks.Task` named ``NAME.control``
with the same examples and splits as the real one, so the probe suite runs it
beside the real task and reports selectivity (real minus control accuracy).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from probekit.data._tasks import Task

__all__ = ["control_task", "type_label_map"]


def type_label_map(types, names: tuple[str, ...], probs: np.ndarray, seed: int) -> dict:
    """One label per type, drawn (seeded) from ``probs`` over ``names``, types taken in sorted order."""
    rng = np.random.default_rng(seed)
    types = sorted(set(types), key=repr)
    draws = rng.choice(len(names), size=len(types), p=probs)
    return {t: names[d] for t, d in zip(types, draws)}


def _empirical(labels, names) -> np.ndarray:
    c = Counter(labels)
    p = np.array([c[n] for n in names], dtype=float)
    return p / p.sum()


def control_task(task: Task, seed: int = 0) -> Task:
    """The control task of ``task`` (see the module docstring).

    Parameters
    ----------
    task : Task
        A real (not already control) task.
    seed : int
        Seed of the random labels; recorded as the control's seed.

    Returns
    -------
    Task
        Named ``task.name + ".control"``, same examples, splits and label names;
        ``meta["empirical_distribution"]`` holds the distribution drawn from.

    Examples
    --------
    >>> from probekit.data import ProbingDataset
    >>> ds = ProbingDataset.from_lists([["a", "b", "a"]], [["X", "Y", "X"]], level="word")
    >>> t = Task("toy", "word", ds, ds.label_names, 0, "toy", "lists")
    >>> c = control_task(t, seed=1)
    >>> c.name, c.dataset.labels[0][0] == c.dataset.labels[0][2]
    ('toy.control', True)
    """
    if task.control_of is not None:
        raise ValueError(f"{task.name} is already a control task")
    ds, names = task.dataset, task.label_names
    if task.level == "structural":
        raise ValueError(f"task {task.name!r} is structural: no control task is defined for structural probes")
    meta = {"control_seed": seed, "skipped": dict(task.meta.get("skipped", {}))}
    if task.level == "sentence":
        rng = np.random.default_rng(seed)
        labels = list(ds.labels)
        for s in ("train", "dev", "test"):
            idx = [i for i, sp in enumerate(ds.splits) if sp == s]
            perm = rng.permutation(len(idx))
            vals = [ds.labels[i] for i in idx]
            for i, p in zip(idx, perm):
                labels[i] = vals[p]
        desc = "Control (label permutation within each split, seeded) of: " + task.description
        meta["empirical_distribution"] = dict(zip(names, _empirical(ds.labels, names)))
    elif task.level == "word":
        p = _empirical(ds.flat_labels(), names)
        mapping = type_label_map((w for ws in ds.words for w in ws), names, p, seed)
        labels = [tuple(mapping[w] for w in ws) for ws in ds.words]
        desc = ("Control (Hewitt & Liang 2019): each word type gets one label drawn from the empirical label "
                "distribution, seeded, of: " + task.description)
        meta.update(empirical_distribution=dict(zip(names, p)), type_labels=mapping)
    else:  # edge
        p = _empirical(ds.flat_labels(), names)
        if task.name == "arc":  # a pair task: key on both word types
            keys = [(ws[a], ws[b]) for ws, row in zip(ds.words, ds.labels) for a, b, _ in row]
            key = lambda ws, a, b: (ws[a], ws[b])
            how = "each (dependent type, candidate type) pair"
        else:
            keys = [ws[a] for ws, row in zip(ds.words, ds.labels) for a, _, _ in row]
            key = lambda ws, a, b: ws[a]
            how = "each dependent word type"
        mapping = type_label_map(keys, names, p, seed)
        labels = [tuple((a, b, mapping[key(ws, a, b)]) for a, b, _ in row) for ws, row in zip(ds.words, ds.labels)]
        desc = f"Control: {how} gets one label drawn from the empirical distribution, seeded, of: {task.description}"
        meta.update(empirical_distribution=dict(zip(names, p)), type_labels=mapping)
    present = {x for x in (labels if task.level == "sentence" else [y for r in labels for y in
                           (r if task.level == "word" else [t[2] for t in r])])}
    # keep the real task's label names (and order) so probes see the same classes
    assert present <= set(names)
    return replace(task, name=f"{task.name}.control", dataset=ds.with_labels(labels, names), seed=seed,
                   description=desc, control_of=task.name, meta=meta)
