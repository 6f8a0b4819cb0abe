"""Structural probes and tree metrics (Hewitt & Manning 2019)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from probekit.probes import (
    DepthProbe,
    DistanceProbe,
    depth_spearman,
    distance_spearman,
    mst_edges,
    root_accuracy,
    uuas,
)
from tests.probes._synthetic import planted_treebank, tree_distances


def test_mst_recovers_a_known_tree():
    parents = np.array([-1, 0, 0, 1, 1, 2])  # edges 0-1 0-2 1-3 1-4 2-5
    D, depth = tree_distances(parents)
    assert D[3, 5] == 4 and list(depth) == [0, 1, 1, 2, 2, 2]
    assert mst_edges(D) == {(0, 1), (0, 2), (1, 3), (1, 4), (2, 5)}
    assert mst_edges(D.astype(float) ** 2 + 0.5) == mst_edges(D)  # monotone transforms keep the tree


def test_uuas_hand_cases():
    parents = np.array([-1, 0, 1, 1, 0])
    D, _ = tree_distances(parents)
    assert uuas([D], [D]) == 1.0
    chain = np.abs(np.subtract.outer(np.arange(5), np.arange(5)))  # predicted tree: the chain 0-1-2-3-4
    # gold edges 0-1 1-2 1-3 0-4, predicted 0-1 1-2 2-3 3-4: 2 of 4 right
    assert uuas([chain], [D]) == 0.5
    # punctuation excluded: dropping word 4 leaves gold 0-1 1-2 1-3 and predicted 0-1 1-2 2-3
    keep = np.array([True, True, True, True, False])
    assert uuas([chain], [D], keep=[keep]) == pytest.approx(2 / 3)


def test_spearman_and_root_accuracy_hand_cases():
    chain = np.abs(np.subtract.outer(np.arange(6), np.arange(6))).astype(float)
    assert distance_spearman([chain**2], [chain]) == pytest.approx(1.0)
    assert distance_spearman([-chain], [chain]) == pytest.approx(-1.0)
    short = np.abs(np.subtract.outer(np.arange(4), np.arange(4)))
    assert np.isnan(distance_spearman([short], [short]))  # only lengths 5-50 count
    assert depth_spearman([[3, 2, 1, 0, -1]], [[0, 1, 2, 3, 4]]) == pytest.approx(-1.0)
    assert root_accuracy([[0.5, 0.1, 0.9]], [[1, 0, 1]]) == 1.0
    # the least deep word is punctuation: excluded, the next one is the root
    assert root_accuracy([[0.0, 0.1, 0.9]], [[1, 0, 1]], keep=[np.array([False, True, True])]) == 1.0


@pytest.fixture(scope="module")
def treebank():
    X, dists, depths, _ = planted_treebank(800, noise=2.0, seed=0)
    return X[:600], dists[:600], depths[:600], X[600:], dists[600:], depths[600:]


def test_distance_probe_learns_planted_structure(treebank):
    Xtr, Dtr, _, Xte, Dte, _ = treebank
    probe = DistanceProbe(rank=16, lr=1e-2, max_iter=100, n_iter_no_change=10, random_state=0).fit(Xtr, Dtr)
    assert probe.proj_.shape == (48, 16)
    metrics = probe.evaluate(Xte, Dte)
    assert metrics["uuas"] > 0.9
    assert metrics["spearman"] > 0.8
    assert probe.score(Xte, Dte) == metrics["uuas"]
    chance = DistanceProbe(rank=16, max_iter=1, lr=1e-6, random_state=0).fit(Xtr, Dtr)
    assert chance.score(Xte, Dte) < 0.6


def test_depth_probe_learns_planted_structure(treebank):
    Xtr, _, dtr, Xte, _, dte = treebank
    probe = DepthProbe(rank=16, lr=1e-2, max_iter=100, n_iter_no_change=10, random_state=0).fit(Xtr, dtr)
    metrics = probe.evaluate(Xte, dte)
    assert metrics["root_accuracy"] > 0.9
    assert metrics["spearman"] > 0.8


def test_structural_probe_contract(treebank):
    Xtr, Dtr, *_ = treebank
    probe = DistanceProbe(rank=4, max_iter=2, random_state=1)
    assert clone(probe).get_params() == probe.get_params()
    assert probe.fit(Xtr[:50], Dtr[:50]) is probe
    again = clone(probe).fit(Xtr[:50], Dtr[:50])
    np.testing.assert_array_equal(probe.proj_, again.proj_)  # seeded
    with pytest.raises(ValueError, match="features"):
        probe.predict([np.zeros((3, 7))])
    with pytest.raises(ValueError, match="targets"):
        DistanceProbe().fit(Xtr[:5], Dtr[:4])
