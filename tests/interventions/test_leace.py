"""LEACE on synthetic data: exact removal of a known concept subspace, equal class means, guardedness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from probekit.interventions import LeaceEraser, LeaceStatistics, linear_shrinkage
from probekit.probes import LinearProbe
from tests.interventions._synthetic import exact_concept_data


def _class_mean_gap(X: np.ndarray, y: np.ndarray) -> float:
    """Largest distance of a class mean from the overall mean (any coordinate)."""
    return max(float(np.abs(X[y == c].mean(0) - X.mean(0)).max()) for c in np.unique(y))


def _anisotropic(n: int, d: int, k: int, seed: int = 0, shift: float = 0.5):
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=np.linspace(2, 1, k) / np.linspace(2, 1, k).sum())
    mix = rng.normal(size=(d, d)) * np.logspace(0, -2, d)
    X = rng.normal(size=(n, d)) @ mix + shift * rng.normal(size=(k, d))[y] + 10.0
    return X, y


def test_known_direction_is_removed_exactly_and_nothing_else():
    n, d = 3000, 12
    rng = np.random.default_rng(1)
    v = rng.normal(size=d)
    v /= np.linalg.norm(v)
    y = rng.integers(0, 2, n)
    X, basis = exact_concept_data(n, d, np.stack([np.zeros(d), 2.5 * v]), y)
    eraser = LeaceEraser().fit(X, y)
    assert eraser.rank_ == 1
    P = eraser.projection.numpy()
    np.testing.assert_allclose(P, np.eye(d) - np.outer(v, v), atol=1e-9)
    Xe = eraser(X)
    mu = X.mean(0)
    np.testing.assert_allclose(Xe, X - np.outer((X - mu) @ v, v), atol=1e-9)
    # the orthogonal complement is untouched, the concept direction is constant
    np.testing.assert_allclose(Xe @ basis, X @ basis, atol=1e-9)
    assert np.ptp(Xe @ v) < 1e-9


def test_known_two_dimensional_concept_subspace_of_three_classes():
    n, d = 2400, 10
    rng = np.random.default_rng(2)
    means = rng.normal(size=(3, d)) * 2
    y = rng.integers(0, 3, n)
    X, basis = exact_concept_data(n, d, means, y, seed=3)
    eraser = LeaceEraser().fit(X, y)
    assert eraser.rank_ == 2
    q, _ = np.linalg.qr((means - means.mean(0)).T[:, :2])
    np.testing.assert_allclose(eraser.projection.numpy(), np.eye(d) - q @ q.T, atol=1e-9)
    np.testing.assert_allclose(eraser(X) @ basis, X @ basis, atol=1e-9)


@pytest.mark.parametrize("shrinkage", [False, True])
def test_class_conditional_means_equal_after_erasure(shrinkage):
    X, y = _anisotropic(4000, 24, 5)
    assert _class_mean_gap(X, y) > 0.1
    eraser = LeaceEraser(shrinkage=shrinkage).fit(X, y)
    Xe = eraser(X)
    assert eraser.rank_ == 4
    assert _class_mean_gap(Xe, y) < 1e-9
    np.testing.assert_allclose(Xe.mean(0), X.mean(0), atol=1e-9)  # the affine eraser keeps the mean


def test_leace_is_orthogonal_in_whitened_coordinates_and_edits_least():
    X, y = _anisotropic(3000, 10, 4, seed=12)
    eraser = LeaceEraser().fit(X, y)
    ev, V = np.linalg.eigh(np.cov(X.T))
    W, W_inv = (V / np.sqrt(ev)) @ V.T, (V * np.sqrt(ev)) @ V.T
    M = W @ eraser.projection.numpy() @ W_inv
    np.testing.assert_allclose(M, M.T, atol=1e-8)
    np.testing.assert_allclose(M @ M, M, atol=1e-8)
    # least squares: it moves the rows less than the orthogonal projection that also kills the cross-covariance
    Z = np.eye(4)[y]
    q, _ = np.linalg.qr((X - X.mean(0)).T @ (Z - Z.mean(0)))
    q = q[:, :3]
    Xc = X - X.mean(0)
    leace_edit = np.sum((eraser(X) - X) ** 2)
    orth_edit = np.sum((Xc @ q) ** 2)
    assert leace_edit < 0.9 * orth_edit


def test_rank_deficient_covariance():
    X, y = _anisotropic(3000, 16, 4, seed=5)
    X = np.concatenate([X, 2 * X[:, :4], np.full((len(X), 2), 7.0)], axis=1)  # rank 16 of 22
    eraser = LeaceEraser().fit(X, y)
    assert eraser.fit_info_["covariance_rank"] == 16
    Xe = eraser(X)
    assert np.isfinite(Xe).all()
    assert _class_mean_gap(Xe, y) < 1e-9
    np.testing.assert_allclose(Xe[:, -2:], 7.0, atol=1e-9)  # constant features stay put


def test_linear_probes_after_erasure_are_at_the_majority_baseline():
    rng = np.random.default_rng(7)
    n, d = 9000, 20
    y = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    X = rng.normal(size=(n, d)) @ mix + 1.5 * rng.normal(size=(3, d))[y]
    tr, te = np.arange(6000), np.arange(6000, n)
    majority = float(np.mean(y[te] == 0))
    before = LogisticRegression(max_iter=2000).fit(X[tr], y[tr]).score(X[te], y[te])
    assert before > 0.95
    eraser = LeaceEraser().fit(X[tr], y[tr])
    Xe = eraser(X)
    sk = LogisticRegression(max_iter=2000).fit(Xe[tr], y[tr])
    ours = LinearProbe(solver="lbfgs", random_state=0).fit(Xe[tr], y[tr])
    for clf in (sk, ours):
        assert clf.score(Xe[te], y[te]) <= majority + 0.015
        assert clf.score(Xe[tr], y[tr]) <= float(np.mean(y[tr] == 0)) + 0.005


def test_chunked_statistics_equal_one_pass():
    X, y = _anisotropic(1500, 9, 3, seed=11)
    one = LeaceEraser(chunk_rows=10**6).fit(X, y)
    many = LeaceEraser(chunk_rows=37).fit(X, y)
    for a, b in ((one.left_, many.left_), (one.right_, many.right_), (one.bias_, many.bias_)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    stats = LeaceStatistics(9, 3)
    for a in range(0, 1500, 200):
        stats.update(X[a: a + 200], y[a: a + 200])
    np.testing.assert_allclose(stats.covariance().numpy(), np.cov(X.T), rtol=1e-10, atol=1e-12)
    Z = np.eye(3)[y]
    cross = (X - X.mean(0)).T @ (Z - Z.mean(0)) / (len(X) - 1)
    np.testing.assert_allclose(stats.cross_covariance().numpy(), cross, rtol=1e-10, atol=1e-12)


def test_fit_leaves_the_callers_features_alone():
    X, y = _anisotropic(500, 6, 2, seed=8)
    kept, t = X.copy(), torch.from_numpy(X.copy())
    LeaceEraser(chunk_rows=64).fit(X, y)
    LeaceEraser(chunk_rows=64).fit(t, y)
    np.testing.assert_array_equal(X, kept)
    np.testing.assert_array_equal(t.numpy(), kept)


def test_fit_on_float16_and_tensor_inputs():
    X, y = _anisotropic(2000, 12, 3, seed=2)
    x16 = X.astype(np.float16)
    a = LeaceEraser().fit(x16, y)
    b = LeaceEraser().fit(torch.from_numpy(x16.astype(np.float64)), torch.from_numpy(y))
    torch.testing.assert_close(a.left_ @ a.right_, b.left_ @ b.right_, rtol=0, atol=1e-12)
    assert a.classes_ == ("0", "1", "2")


def test_apply_any_leading_shape_dtype_and_type():
    X, y = _anisotropic(1000, 8, 3, seed=4)
    eraser = LeaceEraser(site="L1.resid").fit(X, y)
    flat = eraser(X)
    cube = eraser(X.reshape(10, 100, 8))
    np.testing.assert_allclose(cube.reshape(1000, 8), flat, rtol=0, atol=1e-12)
    t32 = torch.from_numpy(X.astype(np.float32))
    out32 = eraser(t32)
    assert isinstance(out32, torch.Tensor) and out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), flat, rtol=1e-5, atol=1e-4)
    out16 = eraser(t32.half())
    assert out16.dtype == torch.float16
    assert eraser.transform(X).shape == X.shape
    assert str(eraser.site_) == "L1.resid"


def test_linear_shrinkage_moves_towards_isotropic_and_keeps_trace():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(30, 20)) * np.linspace(1, 3, 20))
    s = torch.cov(x.T, correction=0)
    shrunk = linear_shrinkage(s, 30)
    assert torch.isclose(torch.trace(shrunk), torch.trace(s))
    ev, ev_s = torch.linalg.eigvalsh(s), torch.linalg.eigvalsh(shrunk)
    assert float(ev_s[-1] / ev_s[0]) < float(ev[-1] / ev[0])


def test_matches_concept_erasure_package():
    ce = pytest.importorskip("concept_erasure")
    X, y = _anisotropic(3000, 20, 4, seed=9)
    X[:, -3:] = X[:, :3]  # rank-deficient too
    Z = torch.nn.functional.one_hot(torch.from_numpy(y), 4).double()
    for shrinkage, atol in ((False, 1e-12), (True, 0.01)):
        ref = ce.LeaceFitter(20, 4, dtype=torch.float64, shrinkage=shrinkage, svd_tol=atol)
        ref.update(torch.from_numpy(X), Z)
        ours = LeaceEraser(shrinkage=shrinkage, svd_atol=atol, chunk_rows=500).fit(X, y)
        diff = np.abs(ours(X) - ref.eraser(torch.from_numpy(X)).numpy()).max()
        assert diff < 1e-8, (shrinkage, diff)


# ------------------------------------------------------------------ bad input
def test_one_class_is_refused():
    with pytest.raises(ValueError, match="at least two classes"):
        LeaceEraser().fit(np.ones((10, 3)) * np.arange(10)[:, None], ["a"] * 10)


@pytest.mark.parametrize("labels", [None, ["a", None, "b", "a"], [0.0, np.nan, 1.0, 0.0], ["a", "", "b", "a"],
                                    ["a", "  ", "b", "a"], np.array(["a", " ", "b", "a"]),
                                    pd.array(["a", pd.NA, "b", "a"], dtype=object)])
def test_missing_labels_are_refused(labels):
    # one rule everywhere: probekit.labels.is_missing (whitespace-only strings and pd.NA are no labels)
    X = np.random.default_rng(0).normal(size=(4, 3))
    with pytest.raises(ValueError, match="missing"):
        LeaceEraser().fit(X, labels)


def test_label_count_and_shape_must_match_rows():
    X = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(ValueError, match="5 labels for 6 feature rows"):
        LeaceEraser().fit(X, [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="1-D"):
        LeaceEraser().fit(X, np.zeros((6, 2)))
    with pytest.raises(ValueError, match="2-D"):
        LeaceEraser().fit(X[:, 0], [0, 1, 0, 1, 0, 1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused(bad):
    X = np.random.default_rng(0).normal(size=(8, 3))
    X[5, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite.*row 5"):
        LeaceEraser().fit(X, [0, 1] * 4)
    with pytest.raises(ValueError, match="NaN or infinite.*row 13"):
        LeaceEraser(chunk_rows=8).fit(np.concatenate([np.ones((8, 3)) * np.arange(8)[:, None], X]), [0, 1] * 8)


def test_wrong_width_at_apply_names_the_fitted_width():
    X, y = _anisotropic(200, 6, 2)
    eraser = LeaceEraser(site="L2.resid").fit(X, y)
    with pytest.raises(ValueError, match="fitted on 6-dimensional features at L2.resid.*shape \\(4, 7\\)"):
        eraser(np.zeros((4, 7)))
    with pytest.raises(TypeError, match="floating point"):
        eraser(torch.zeros(4, 6, dtype=torch.long))


def test_unfitted_eraser_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        LeaceEraser()(np.zeros((2, 3)))
