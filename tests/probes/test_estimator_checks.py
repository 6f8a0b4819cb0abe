"""scikit-learn's estimator checks over every probe classifier."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from probekit.probes import LinearProbe, MLPProbe, RankProbe

# max_iter is capped to keep the suite fast; every check passes with the defaults too
ESTIMATORS = [
    LinearProbe(max_iter=30, random_state=0),
    LinearProbe(penalty="l1", solver="lbfgs", max_iter=10, random_state=0),
    RankProbe(rank=2, max_iter=30, random_state=0),
    MLPProbe(hidden_layer_sizes=(16,), lr=1e-2, max_iter=30, random_state=0),
    MLPProbe(hidden_layer_sizes=(16, 8), dropout=0.2, lr=1e-2, max_iter=30, random_state=0),
]


def expected_failed_checks(estimator):
    """No check is expected to fail: every probe passes scikit-learn's whole suite."""
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
