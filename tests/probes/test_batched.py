"""Batched training: one computation for all layers and seeds, equal to independent fits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from probekit.probes import LinearProbe, MLPProbe, RankProbe, fit_batched


def _layers(n=3000, d=16, k=4, strengths=(0.2, 0.6, 1.5), seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    means = rng.normal(size=(k, d))
    Xs = [(s * means[y] + rng.normal(size=(n, d))).astype(np.float32) for s in strengths]
    return Xs, y


@pytest.mark.parametrize("template", [LinearProbe(random_state=3), RankProbe(rank=3, random_state=3)])
def test_batched_equals_independent_fits(template):
    Xs, y = _layers()
    batched = fit_batched(template, Xs, y)
    assert [len(row) for row in batched] == [1, 1, 1]
    assert len({row[0].n_iter_ for row in batched}) > 1  # early stopping is decided per probe
    for X, (probe,) in zip(Xs, batched):
        alone = clone(template).fit(X, y)
        assert probe.n_iter_ == alone.n_iter_
        for a, b in zip(probe.coefs_, alone.coefs_):
            np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-3)
        np.testing.assert_array_equal(probe.predict(X), alone.predict(X))
        np.testing.assert_allclose(probe.predict_proba(X), alone.predict_proba(X), atol=1e-4)


def test_seeds_layers_and_input_forms(tmp_path):
    Xs, y = _layers(n=1000)
    stacked = np.stack(Xs)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float16, shape=stacked.shape)
    mm[:] = stacked
    mm.flush()
    half = np.load(tmp_path / "x.npy", mmap_mode="r")
    template = MLPProbe(hidden_layer_sizes=(8,), lr=1e-2, max_iter=20, random_state=0)
    probes = fit_batched(template, half, y, seeds=[0, 1])
    assert [len(row) for row in probes] == [2, 2, 2]
    assert probes[2][1].random_state == 1
    assert not np.allclose(probes[0][0].coefs_[0], probes[0][1].coefs_[0])  # different initialisations
    assert probes[2][0].score(Xs[2], y) > probes[0][0].score(Xs[0], y)  # the planted signal grows with depth
    # a list of float32 layers and the same layers as a float16 memory map give the same linear probes
    a = fit_batched(LinearProbe(random_state=0), Xs, y)
    b = fit_batched(LinearProbe(random_state=0), half, y)
    for (pa,), (pb,) in zip(a, b):
        assert np.mean(pa.predict(Xs[0]) == pb.predict(Xs[0])) > 0.97


def test_fit_batched_rejects_bad_input():
    Xs, y = _layers(n=200)
    with pytest.raises(ValueError, match="every layer"):
        fit_batched(LinearProbe(), [Xs[0], Xs[1][:100]], y)
    with pytest.raises(ValueError, match="2 classes"):
        fit_batched(LinearProbe(), Xs, np.zeros(200))
    with pytest.raises(TypeError):
        fit_batched(LogisticRegression(), Xs, y)


def test_matches_sklearn_logistic_regression_accuracy():
    """20k x 64, 10 classes, noisy (about 85 % accuracy): within 0.5 point of LogisticRegression."""
    rng = np.random.default_rng(0)
    n, d, k = 20000, 64, 10
    y = rng.integers(0, k, n)
    means = rng.normal(size=(k, d))
    Xs = [(s * means[y] + rng.normal(size=(n, d))).astype(np.float32) for s in (0.3, 0.35)]
    train, test = slice(0, 15000), slice(15000, None)
    probes = fit_batched(LinearProbe(random_state=0), [X[train] for X in Xs], y[train])
    for X, (probe,) in zip(Xs, probes):
        reference = LogisticRegression(max_iter=300).fit(X[train], y[train]).score(X[test], y[test])
        ours = probe.score(X[test], y[test])
        assert 0.6 < reference < 0.95
        assert abs(ours - reference) <= 0.005, (ours, reference)


def test_lbfgs_solver_and_l1_sparsity():
    Xs, y = _layers(n=2000, d=20)
    dense = LinearProbe(solver="lbfgs", random_state=0).fit(Xs[2], y)
    sparse = LinearProbe(penalty="l1", C=0.002, random_state=0).fit(Xs[2], y)
    assert dense.score(Xs[2], y) > 0.8
    assert np.abs(sparse.coef_).sum() < 0.5 * np.abs(dense.coef_).sum()


def test_grid_search_and_clone():
    Xs, y = _layers(n=600)
    search = GridSearchCV(LinearProbe(random_state=0, max_iter=30), {"C": [1e-6, 1.0]}, cv=2).fit(Xs[2], y)
    assert search.best_params_["C"] == 1.0
    assert clone(search.best_estimator_).get_params()["C"] == 1.0


def test_lbfgs_reaches_the_sklearn_optimum_on_badly_scaled_features():
    """Whitened L-BFGS minimises the same objective as LogisticRegression: same probabilities, batched or not."""
    rng = np.random.default_rng(1)
    n, d, k = 3000, 12, 3
    y = rng.integers(0, k, n)
    scale = np.exp(rng.normal(size=d) * 1.5)  # feature scales over about four orders of magnitude
    Xs = [((s * rng.normal(size=(k, d))[y] + rng.normal(size=(n, d))) * scale + 4 * scale).astype(np.float32)
          for s in (0.3, 1.0)]
    template = LinearProbe(C=0.5, solver="lbfgs", early_stopping=False, max_iter=50, random_state=0)
    batched = fit_batched(template, Xs, y)
    for X, (probe,) in zip(Xs, batched):
        ref = LogisticRegression(C=0.5, tol=1e-8, max_iter=20000).fit(X.astype(np.float64), y)
        np.testing.assert_allclose(probe.predict_proba(X), ref.predict_proba(X), atol=2e-3)
        alone = clone(template).fit(X, y)
        np.testing.assert_allclose(probe.predict_proba(X), alone.predict_proba(X), atol=1e-5)
