"""Bootstrap intervals, McNemar, paired bootstrap and expected layer."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from probekit.probes import (
    bootstrap_ci,
    center_of_gravity,
    expected_layer,
    mcnemar,
    mcnemar_from_counts,
    paired_bootstrap,
)


def _predictions(n, accuracy, k=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < accuracy, y, rng.integers(0, k, n))
    return y, pred


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_bootstrap_ci_contains_estimate_and_narrows(metric):
    reference = accuracy_score if metric == "accuracy" else (lambda a, b: f1_score(a, b, average="macro"))
    widths = []
    for n in (200, 5000):
        y, pred = _predictions(n, 0.7)
        ci = bootstrap_ci(y, pred, metric, n_boot=500, random_state=0)
        assert ci.estimate == pytest.approx(reference(y, pred))
        assert ci.low <= ci.estimate <= ci.high
        widths.append(ci.high - ci.low)
    assert widths[1] < widths[0] / 3  # ~ 1/sqrt(n): sqrt(25) = 5
    y, pred = _predictions(200, 0.7)
    assert bootstrap_ci(y, pred, metric, random_state=3) == bootstrap_ci(y, pred, metric, random_state=3)


def test_bootstrap_ci_matches_a_naive_bootstrap():
    y, pred = _predictions(400, 0.6)
    rng = np.random.default_rng(1)
    naive = [np.mean(y[idx] == pred[idx]) for idx in rng.integers(0, 400, (2000, 400))]
    ci = bootstrap_ci(y, pred, n_boot=2000, random_state=0)
    lo, hi = np.quantile(naive, [0.025, 0.975])
    assert ci.low == pytest.approx(lo, abs=0.01) and ci.high == pytest.approx(hi, abs=0.01)


def test_mcnemar_textbook_values():
    # Wikipedia "McNemar's test" example: b = 6, c = 16 -> chi2 = 100 / 22 = 4.545, p = 0.033
    res = mcnemar_from_counts(6, 16, exact=False, correction=False)
    assert res.statistic == pytest.approx(100 / 22)
    assert res.pvalue == pytest.approx(0.0330, abs=5e-4)
    corrected = mcnemar_from_counts(6, 16, exact=False)  # Edwards' continuity correction: 81 / 22
    assert corrected.statistic == pytest.approx(81 / 22)
    assert corrected.pvalue == pytest.approx(0.0550, abs=5e-4)
    exact = mcnemar_from_counts(6, 16)  # b + c < 25: exact binomial, 2 * P(X <= 6 | 22, 1/2)
    assert exact.exact and exact.pvalue == pytest.approx(0.0525, abs=5e-4)
    assert mcnemar_from_counts(0, 0).pvalue == 1.0


def test_mcnemar_from_predictions_counts_discordant_pairs():
    y = np.zeros(100, int)
    a = np.r_[np.zeros(90, int), np.ones(10, int)]  # A wrong on the last 10
    b = np.r_[np.ones(30, int), np.zeros(70, int)]  # B wrong on the first 30
    res = mcnemar(y, a, b)
    assert (res.b, res.c) == (30, 10)
    assert res.statistic == pytest.approx(19**2 / 40)


def test_paired_bootstrap():
    y, a = _predictions(2000, 0.8, seed=0)
    b = a.copy()
    flip = np.flatnonzero(a == y)[:100]
    b[flip] = (y[flip] + 1) % 4  # B makes 100 more mistakes
    res = paired_bootstrap(y, a, b, n_boot=500, random_state=0)
    assert res.difference == pytest.approx(0.05)
    assert res.low > 0 and res.pvalue < 0.01
    same = paired_bootstrap(y, a, a, "macro_f1", n_boot=200, random_state=0)
    assert same.difference == 0 and same.pvalue == 1.0


def test_expected_layer_and_center_of_gravity():
    assert expected_layer([0.5, 0.5, 0.5, 0.9, 0.9]) == pytest.approx(3.0)  # a step at layer 3
    assert expected_layer([0.0, 0.5, 1.0]) == pytest.approx(1.5)  # equal gains at layers 1 and 2
    assert expected_layer([0.2, 0.4, 0.6, 0.6], layers=[0, 2, 4, 6]) == pytest.approx(3.0)
    assert np.isnan(expected_layer([0.7, 0.7]))
    assert center_of_gravity([0.0, 0.0, 1.0]) == 2.0
    assert center_of_gravity([1, 1, 1, 1]) == pytest.approx(1.5)


def test_accuracy_draws_hit_patterns_and_macro_f1_the_confusion_cells():
    """Accuracy resamples the patterns of hits (two cells for one prediction, at most four for a pair); macro-F1
    keeps the confusion cells (true x predictions) in the lexicographic order ``np.unique(axis=0)`` gives."""
    from probekit.probes._stats import _cells

    y, a = _predictions(500, 0.7, k=6, seed=1)
    _, b = _predictions(500, 0.5, k=6, seed=2)
    cells, counts, _ = _cells(y, a, metric="accuracy")
    assert len(cells) == 2 and counts.tolist() == [int((a == y).sum()), int((a != y).sum())]
    assert len(_cells(y, a, b, metric="accuracy")[0]) <= 4
    labels = np.unique(np.concatenate([y, a, b]))
    joint = np.stack([np.searchsorted(labels, c) for c in (y, a, b)], axis=1)
    ref_cells, ref_counts = np.unique(joint, axis=0, return_counts=True)
    cells, counts, k = _cells(y, a, b, metric="macro_f1")
    assert np.array_equal(cells, ref_cells) and np.array_equal(counts, ref_counts) and k == len(labels)
    with pytest.raises(ValueError, match="same length"):
        _cells(y, a[:-1], metric="accuracy")
