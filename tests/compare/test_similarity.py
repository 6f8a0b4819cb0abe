"""Property tests of the similarity measures against plain float64 references."""

import numpy as np
import pytest
import torch

from probekit.compare import (
    cca_correlations,
    cka_matrix,
    linear_cka,
    mean_cosine,
    minibatch_cka,
    procrustes_distance,
    pwcca,
    rbf_cka,
    svcca,
)


def ref_linear_cka(X, Y):
    """Kornblith et al.'s Gram-matrix form, float64, no shortcuts."""
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    return np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L))


def ref_unbiased_cka(X, Y):
    def hsic(K, L):
        n = K.shape[0]
        K, L = K.copy(), L.copy()
        np.fill_diagonal(K, 0)
        np.fill_diagonal(L, 0)
        ones = np.ones(n)
        return (np.trace(K @ L) + ones @ K @ ones * (ones @ L @ ones) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * ones @ K @ L @ ones) / (n * (n - 3))
    K, L = X @ X.T, Y @ Y.T
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20))
    Y = np.tanh(X @ rng.normal(size=(20, 12))) + 0.5 * rng.normal(size=(300, 12))
    return rng, X, Y


def random_orthogonal(rng, d):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


@pytest.mark.parametrize("measure", [linear_cka, rbf_cka, svcca, pwcca])
def test_identity_is_one(data, measure):
    _, X, _ = data
    assert measure(X, X) == pytest.approx(1.0, abs=1e-9)


def test_procrustes_identity_and_range(data):
    _, X, Y = data
    assert procrustes_distance(X, X) == pytest.approx(0.0, abs=1e-9)
    assert 0 < procrustes_distance(X, Y) <= 2


@pytest.mark.parametrize("measure", [linear_cka, rbf_cka, svcca, pwcca, procrustes_distance])
def test_invariant_to_isotropic_scaling(data, measure):
    _, X, Y = data
    assert measure(3.7 * X, Y) == pytest.approx(measure(X, Y), abs=1e-8)


@pytest.mark.parametrize("measure", [linear_cka, rbf_cka, svcca, procrustes_distance])
def test_invariant_to_orthogonal_transforms(data, measure):
    rng, X, Y = data
    Q = random_orthogonal(rng, X.shape[1])
    assert measure(X @ Q, Y) == pytest.approx(measure(X, Y), abs=1e-8)


def test_pwcca_weights_depend_on_the_neuron_basis(data):
    """PWCCA weighs canonical directions by their projection on X's neurons: a rotation changes it."""
    rng, X, Y = data
    Q = random_orthogonal(rng, X.shape[1])
    assert abs(pwcca(X @ Q, Y) - pwcca(X, Y)) > 1e-4


def _orthonormal_centred(n: int, k: int, seed: int = 0) -> np.ndarray:
    """``k`` orthonormal columns in R^n, each orthogonal to the all-ones vector (so already centred)."""
    q, _ = np.linalg.qr(np.column_stack([np.ones(n), np.random.default_rng(seed).normal(size=(n, k))]))
    return q[:, 1:]


def test_pwcca_by_hand_one_directional_and_symmetric():
    # X = [3 e1, e2], Y = [e1, 3 u] with u = (e2 + sqrt(3) e3) / 2: canonical pairs (e1, e1) with rho 1 and
    # (e2, u) with rho 1/2. Weights are how much of one side each canonical variate accounts for:
    # from X, 3 and 1, so (3 * 1 + 1 * 0.5) / 4 = 0.875; from Y, 1 and 3, so (1 + 3 * 0.5) / 4 = 0.625.
    e = _orthonormal_centred(8, 3)
    u = (e[:, 1] + np.sqrt(3) * e[:, 2]) / 2
    X = np.column_stack([3 * e[:, 0], e[:, 1]])
    Y = np.column_stack([e[:, 0], 3 * u])
    np.testing.assert_allclose(cca_correlations(X, Y), [1.0, 0.5], atol=1e-12)
    assert pwcca(X, Y) == pytest.approx(0.875, abs=1e-12)
    assert pwcca(Y, X) == pytest.approx(0.625, abs=1e-12)
    assert pwcca(X, Y, symmetric=True) == pytest.approx(0.75, abs=1e-12)
    assert pwcca(Y, X, symmetric=True) == pytest.approx(0.75, abs=1e-12)


@pytest.mark.parametrize("measure", [linear_cka, rbf_cka, procrustes_distance])
def test_not_invariant_to_invertible_linear_maps(data, measure):
    rng, X, Y = data
    A = np.diag(np.geomspace(1, 100, X.shape[1])) @ rng.normal(size=(X.shape[1], X.shape[1]))
    assert np.linalg.matrix_rank(A) == X.shape[1]
    assert abs(measure(X @ A, Y) - measure(X, Y)) > 1e-3


def test_cca_is_invariant_to_invertible_linear_maps(data):
    """The contrast Kornblith et al. draw: CCA ignores any invertible map, CKA does not."""
    rng, X, Y = data
    A = rng.normal(size=(X.shape[1], X.shape[1]))
    np.testing.assert_allclose(cca_correlations(X @ A, Y), cca_correlations(X, Y), atol=1e-8)


def test_linear_cka_matches_reference(data):
    rng, X, Y = data
    assert linear_cka(X, Y) == pytest.approx(ref_linear_cka(X, Y), abs=1e-6)
    Z = rng.normal(size=(50, 500))  # more features than rows (sentence-level shape)
    W = rng.normal(size=(50, 30))
    assert linear_cka(Z, W) == pytest.approx(ref_linear_cka(Z, W), abs=1e-6)


def test_accepts_tensors_and_float16(data):
    _, X, Y = data
    xt, yt = torch.tensor(X, dtype=torch.float16), torch.tensor(Y, dtype=torch.float16)
    assert linear_cka(xt, yt) == pytest.approx(linear_cka(X.astype(np.float16), Y.astype(np.float16)), abs=1e-7)
    assert linear_cka(xt, yt) == pytest.approx(linear_cka(X, Y), abs=1e-3)


def test_minibatch_cka_converges_to_full_batch(data):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1200, 16))
    Y = X @ rng.normal(size=(16, 16)) + 2 * rng.normal(size=(1200, 16))
    full_unbiased = ref_unbiased_cka(X - X.mean(0), Y - Y.mean(0))
    # one batch of every row is the full-batch unbiased estimate
    assert minibatch_cka(X, Y, batch_size=1200) == pytest.approx(full_unbiased, abs=1e-6)
    # smaller batches scatter around it, less as batches grow
    spread = {b: np.std([minibatch_cka(X, Y, batch_size=b, seed=s) for s in range(6)]) for b in (16, 400)}
    assert spread[400] < spread[16]
    assert abs(minibatch_cka(X, Y, batch_size=400) - full_unbiased) < 0.02
    # and the unbiased estimate is close to the (biased) full linear CKA at this n
    assert abs(full_unbiased - linear_cka(X, Y)) < 0.02


def test_streaming_matrix_matches_direct(data):
    rng, X, Y = data
    layers_a = [X, np.sin(X), X[:, :5] + 1000.0]  # a large offset checks the shifted centring
    layers_b = [Y, rng.normal(size=(300, 7))]
    got = cka_matrix(layers_a, layers_b, chunk_rows=37)
    for i, a in enumerate(layers_a):
        for j, b in enumerate(layers_b):
            assert got["linear_cka"][i, j] == pytest.approx(ref_linear_cka(a, b), abs=1e-6)
            assert got["procrustes"][i, j] == pytest.approx(procrustes_distance(a, b), abs=1e-6)


def test_streaming_reads_memmaps(tmp_path, data):
    _, X, Y = data
    mx = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float16, shape=X.shape)
    mx[:] = X
    mx.flush()
    mx = np.load(tmp_path / "x.npy", mmap_mode="r")
    got = cka_matrix([mx], [Y], chunk_rows=64)["linear_cka"][0, 0]
    assert got == pytest.approx(linear_cka(mx, Y), abs=1e-9)


def test_mean_cosine():
    X = np.array([[1.0, 0], [0, 2]])
    assert mean_cosine(X, X) == pytest.approx(1.0)
    assert mean_cosine(X, np.array([[0, 1.0], [0, 1]])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same-shape"):
        mean_cosine(X, np.ones((2, 3)))


def test_bad_input():
    with pytest.raises(ValueError, match="same inputs"):
        linear_cka(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="2-D"):
        linear_cka(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="max_rows"):
        rbf_cka(np.ones((20, 2)), np.ones((20, 2)), max_rows=10)
    with pytest.raises(ValueError, match="same number of rows"):
        cka_matrix([np.ones((3, 2))], [np.ones((4, 2))])
