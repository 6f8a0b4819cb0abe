"""MDL online codelength (Voita & Titov 2020)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from probekit.probes import LinearProbe, codelength_bits, online_codelength, uniform_codelength
from probekit.probes._mdl import DEFAULT_FRACTIONS, _block_ends


class FixedProbe(ClassifierMixin, BaseEstimator):
    """Predicts the same distribution (0.5, 0.25, 0.25) for every row, whatever it was fitted on."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1, 2])
        return self

    def predict_proba(self, X):
        return np.tile([0.5, 0.25, 0.25], (len(X), 1))


def test_uniform_and_block_codelength_by_hand():
    assert uniform_codelength(1000, 4) == 2000.0
    assert uniform_codelength(10, 3) == pytest.approx(10 * np.log2(3))
    # -log2(0.5) = 1 bit for class 0, -log2(0.25) = 2 bits for classes 1 and 2
    assert codelength_bits(np.tile([0.5, 0.25, 0.25], (4, 1)), np.array([0, 1, 2, 0])) == pytest.approx(6.0)


def test_online_codelength_with_a_fixed_probe():
    n = 2000
    y = np.arange(n) % 3
    X = np.zeros((n, 1))
    res = online_codelength(FixedProbe(), X, y, random_state=0)
    ends = _block_ends(n, DEFAULT_FRACTIONS)
    assert res.block_ends == tuple(ends) and ends[0] == 2 and ends[-1] == n
    order = np.random.default_rng(0).permutation(n)
    first = ends[0] * np.log2(3)
    later = sum(1.0 if y[i] == 0 else 2.0 for i in order[ends[0] :])  # bits of each later row, by hand
    assert res.block_bits[0] == pytest.approx(first)
    assert res.online_bits == pytest.approx(first + later)
    assert res.uniform_bits == pytest.approx(n * np.log2(3))
    assert res.compression == pytest.approx(res.uniform_bits / res.online_bits)


def test_compression_tracks_how_learnable_the_labels_are():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 8)).astype(np.float32)
    y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
    probe = LinearProbe(random_state=0, max_iter=30)
    learnable = online_codelength(probe, X, y, random_state=1)
    noise = online_codelength(probe, X, rng.integers(0, 2, 3000), random_state=1)
    assert learnable.compression > 3
    assert 0.8 < noise.compression < 1.05
    again = online_codelength(probe, X, y, random_state=1)
    assert again.online_bits == learnable.online_bits  # seeded


def test_labels_must_be_in_classes():
    with pytest.raises(ValueError, match="not in classes"):
        online_codelength(FixedProbe(), np.zeros((10, 1)), np.arange(10) % 3, classes=[0, 1])
