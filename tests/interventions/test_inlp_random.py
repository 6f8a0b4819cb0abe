"""INLP (iterated nullspace projection) and the random-subspace control."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from probekit.interventions import InlpEraser, LeaceEraser, RandomEraser, random_eraser_like


def _data(n=3000, d=16, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, d)) + 3.0 * np.eye(k, d)[y] + 1.5 * np.eye(k, d, k)[y]
    return X, y


def test_inlp_accuracy_falls_to_majority_and_projection_is_orthogonal():
    X, y = _data()
    eraser = InlpEraser(n_iter=4, classifier=LogisticRegression(max_iter=1000), random_state=0).fit(X, y)
    hist = eraser.history_
    assert [h["iteration"] for h in hist] == [0, 1, 2, 3, 4]
    assert hist[0]["rank"] == 0 and hist[0]["accuracy"] > 0.95
    assert all(b["rank"] > a["rank"] for a, b in zip(hist, hist[1:]))
    assert hist[-1]["accuracy"] < eraser.majority_accuracy_ + 0.05
    assert eraser.rank_ == hist[-1]["rank"]
    P = eraser.projection.numpy()
    np.testing.assert_allclose(P, P.T, atol=1e-12)
    np.testing.assert_allclose(P @ P, P, atol=1e-10)
    assert eraser.fit_info_["eval"].startswith("random 0.1")
    assert eraser.fit_info_["classifier"]["name"] == "LogisticRegression"


def test_inlp_default_classifier_seeded_and_reproducible():
    X, y = _data(n=1200, d=10, seed=3)
    a = InlpEraser(n_iter=2, random_state=5).fit(X, y)
    b = InlpEraser(n_iter=2, random_state=5).fit(X, y)
    assert a.fit_info_["classifier"]["name"] == "LinearProbe"
    assert a.history_ == b.history_
    torch.testing.assert_close(a.left_, b.left_)
    assert a.fingerprint() == b.fingerprint()
    assert a.history_[0]["accuracy"] > a.history_[-1]["accuracy"]


def test_inlp_eval_set_and_max_rows():
    X, y = _data(n=2000, seed=4)
    Xe, ye = _data(n=500, seed=5)
    eraser = InlpEraser(n_iter=1, classifier=LogisticRegression(max_iter=500), max_rows=800).fit(
        X, y, eval_set=(Xe, ye))
    fit = eraser.fit_info_
    assert eraser.n_rows_ == fit["train_rows"] == 800 and fit["rows"] == 2000
    assert fit["eval_rows"] == 500 and fit["eval"] == "eval_set"
    with pytest.raises(ValueError, match="eval_set features must be"):
        InlpEraser(n_iter=1).fit(X, y, eval_set=(Xe[:, :3], ye))
    with pytest.raises(ValueError, match="n_iter"):
        InlpEraser(n_iter=0).fit(X, y)


def test_random_eraser_like_matches_rank_site_and_mean():
    X, y = _data(n=800, k=4, seed=6)
    leace = LeaceEraser(site="L4.resid").fit(X, y)
    control = random_eraser_like(leace, random_state=1)
    assert (control.rank_, control.d_, str(control.site_)) == (3, 16, "L4.resid")
    torch.testing.assert_close(control.bias_, leace.bias_)
    U = control.left_
    torch.testing.assert_close(U.T @ U, torch.eye(3, dtype=torch.float64))
    again = random_eraser_like(leace, random_state=1)
    other = random_eraser_like(leace, random_state=2)
    torch.testing.assert_close(again.left_, U)
    assert not torch.allclose(other.left_, U)
    assert control.fit_info_["like_fingerprint"] == leace.fingerprint()
    # a random 3-dimensional subspace of 16 leaves the concept decodable
    Xc = control(X)
    assert LogisticRegression(max_iter=1000).fit(Xc, y).score(Xc, y) > 0.9


def test_random_eraser_fits_the_mean():
    X = np.random.default_rng(0).normal(size=(300, 5)) + 4
    r = RandomEraser(rank=2, random_state=0).fit(X)
    np.testing.assert_allclose(r.bias_.numpy(), X.mean(0), atol=1e-12)
    with pytest.raises(ValueError, match="rank must be in"):
        RandomEraser(rank=6).fit(X)


def test_inlp_stops_when_nothing_is_left_to_remove():
    X, y = _data(n=900, d=4, k=3, seed=8)
    eraser = InlpEraser(n_iter=6, classifier=LogisticRegression(max_iter=500)).fit(X, y)
    assert eraser.rank_ == 4
    assert len(eraser.history_) < 7 and eraser.history_[-1]["rank"] == 4
    assert abs(eraser.history_[-1]["accuracy"] - eraser.majority_accuracy_) < 1e-12
    np.testing.assert_allclose(eraser(X), np.broadcast_to(eraser.bias_.numpy(), X.shape), atol=1e-10)
