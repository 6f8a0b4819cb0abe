"""Compare representations: similarity measures and layer x layer matrices."""

from probekit.compare._compare import Comparison, attention_deltas, compare
from probekit.compare._similarity import (
    cca_correlations,
    linear_cka,
    mean_cosine,
    minibatch_cka,
    procrustes_distance,
    pwcca,
    rbf_cka,
    svcca,
    unbiased_hsic,
)
from probekit.compare._streaming import CrossMoments, cka_matrix

__all__ = [
    "Comparison",
    "attention_deltas",
    "compare",
    "CrossMoments",
    "cca_correlations",
    "cka_matrix",
    "linear_cka",
    "mean_cosine",
    "minibatch_cka",
    "procrustes_distance",
    "pwcca",
    "rbf_cka",
    "svcca",
    "unbiased_hsic",
]
