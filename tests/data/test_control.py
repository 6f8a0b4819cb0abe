"""Control tasks (Hewitt & Liang 2019) have their documented properties."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from probekit.data import build_task, control_task

WORD = ["upos", "xpos", "deprel", "headdist", "depth"]


@pytest.fixture(scope="module")
def ud_tasks(ud_sample):
    return {n: build_task(n, "ud", path=ud_sample) for n in WORD + ["arclabel", "arc", "sentlen", "tense"]}


@pytest.mark.parametrize("name", WORD)
def test_word_control_is_type_consistent_with_the_empirical_distribution(ud_tasks, name):
    t = ud_tasks[name]
    c = control_task(t, seed=3)
    assert c.name == f"{name}.control" and c.control_of == name and c.seed == 3 and c.level == "word"
    assert c.dataset.words == t.dataset.words and c.splits == t.splits and c.label_names == t.label_names
    # one label per word type, everywhere
    by_type = defaultdict(set)
    for ws, labs in zip(c.dataset.words, c.dataset.labels):
        for w, lab in zip(ws, labs):
            by_type[w].add(lab)
    assert all(len(v) == 1 for v in by_type.values())
    # the labels given to the types follow the task's empirical (token) distribution, within sampling error
    p = np.array([c.meta["empirical_distribution"][n] for n in t.label_names])
    real = Counter(t.dataset.flat_labels())
    np.testing.assert_allclose(p, [real[n] / sum(real.values()) for n in t.label_names])
    types = Counter(next(iter(v)) for v in by_type.values())
    n = len(by_type)
    q = np.array([types[k] / n for k in t.label_names])
    tol = 4 * np.sqrt(p * (1 - p) / n) + 1e-3
    assert (np.abs(q - p) <= tol).all(), (q, p)
    # deterministic in the seed, different across seeds
    assert control_task(t, seed=3).dataset == c.dataset
    assert control_task(t, seed=4).dataset.labels != c.dataset.labels


def test_sentence_control_is_a_permutation_within_each_split(ud_tasks):
    for name in ("sentlen", "tense"):
        t = ud_tasks[name]
        c = control_task(t, seed=0)
        for s in ("train", "dev", "test"):
            real = [lab for lab, sp in zip(t.dataset.labels, t.splits) if sp == s]
            ctrl = [lab for lab, sp in zip(c.dataset.labels, c.splits) if sp == s]
            assert sorted(real) == sorted(ctrl)
        agree = np.mean([a == b for a, b in zip(t.dataset.labels, c.dataset.labels)])
        # the link is broken: chance agreement of a permutation (balanced classes: 1/K), within 4 standard errors
        n, chance = len(t.dataset), 1 / len(t.label_names)
        assert agree < chance + 4 * np.sqrt(chance * (1 - chance) / n), (agree, chance, n)
        assert c.class_stats().equals(t.class_stats())


def test_edge_controls_and_structural(ud_tasks, ud_sample):
    c = control_task(ud_tasks["arclabel"], seed=0)
    seen = {}
    for ws, row in zip(c.dataset.words, c.dataset.labels):
        for a, _, lab in row:
            assert seen.setdefault(ws[a], lab) == lab
    c = control_task(ud_tasks["arc"], seed=0)
    seen = {}
    for ws, row in zip(c.dataset.words, c.dataset.labels):
        for a, b, lab in row:
            assert seen.setdefault((ws[a], ws[b]), lab) == lab
    with pytest.raises(ValueError, match="structural"):
        control_task(build_task("structural", "ud", path=ud_sample, limit=20))
    with pytest.raises(ValueError, match="already a control"):
        control_task(c)


def test_control_by_name(ud_sample):
    c = build_task("upos.control", "ud", path=ud_sample, limit=200, seed=5)
    assert c.name == "upos.control" and c.control_of == "upos" and c.seed == 5
