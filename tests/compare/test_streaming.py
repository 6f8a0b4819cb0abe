"""CrossMoments: block layout and input checks of the streaming accumulator."""

import numpy as np
import pytest

from probekit.compare import CrossMoments, cka_matrix, linear_cka


@pytest.fixture
def layers():
    rng = np.random.default_rng(3)
    a = [rng.normal(size=(90, 5)) + 4, rng.normal(size=(90, 3))]
    b = [a[0] @ rng.normal(size=(5, 4)) + rng.normal(size=(90, 4)), rng.normal(size=(90, 6)) - 2,
         a[1][:, :2] + 0.1 * rng.normal(size=(90, 2))]
    return a, b


def test_uneven_widths_match_pairwise_cka(layers):
    a, b = layers
    got = cka_matrix(a, b, chunk_rows=17)["linear_cka"]
    want = np.array([[linear_cka(x, y) for y in b] for x in a])
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_cross_blocks_are_y_transpose_x(layers):
    a, b = layers
    acc = CrossMoments(2, 3)
    acc.update(a, b)
    shift_a = [x.mean(0) for x in a]
    shift_b = [y.mean(0) for y in b]
    for (i, j), m in acc.ba.items():
        np.testing.assert_allclose(m, (b[j] - shift_b[j]).T @ (a[i] - shift_a[i]), atol=1e-9)
    assert sorted(acc.ba) == [(i, j) for i in range(2) for j in range(3)]


def test_float16_and_float32_chunks_accumulate_in_float64(layers):
    a, b = layers
    m64 = cka_matrix(a, b, chunk_rows=40)["linear_cka"]
    m16 = cka_matrix([x.astype(np.float16) for x in a], [y.astype(np.float32) for y in b], chunk_rows=40)
    assert np.abs(m64 - m16["linear_cka"]).max() < 1e-3


def test_bad_chunks_are_named(layers):
    a, b = layers
    acc = CrossMoments(2, 3)
    with pytest.raises(ValueError, match="expected 2 layers of A and 3 of B"):
        acc.update(a[:1], b)
    with pytest.raises(ValueError, match="same rows"):
        acc.update([a[0], a[1][:10]], b)
    with pytest.raises(ValueError, match="2-D"):
        acc.update([a[0][:, 0], a[1]], b)
    acc.update(a, b)
    with pytest.raises(ValueError, match="feature sizes changed"):
        acc.update([a[0][:, :2], a[1]], b)
