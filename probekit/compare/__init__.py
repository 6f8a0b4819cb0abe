"""Compare representations: similarity measures and layer x layer matrices.

One line per file:

- ``_agreement``: Prediction agreement of two classifiers on the same texts (e.g. a model and its variant).
- ``_compare``: ``compare(store_a, store_b)`` and ``CompareSuite(...).run()``: what changed inside a model, layer
  by layer.
- ``_deltas``: Probe accuracy deltas between two models (a base and a variant), task by task and layer by layer.
- ``_layermap``: Which layer of one store stands for which layer of another, read from the variant records in the
  manifests.
- ``_similarity``: Representational similarity measures (all accumulate in float64).
- ``_streaming``: Layer x layer similarity matrices that stream over rows (stores larger than RAM).
"""

from probekit.compare._agreement import PredictionAgreement, agreement_from_predictions, prediction_agreement
from probekit.compare._compare import MEASURES, CompareSuite, Comparison, attention_deltas, compare
from probekit.compare._deltas import probe_deltas
from probekit.compare._layermap import head_map_for, layer_map_for, store_head_map, store_layer_map, variant_record
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
    "MEASURES",
    "CompareSuite",
    "Comparison",
    "PredictionAgreement",
    "agreement_from_predictions",
    "head_map_for",
    "layer_map_for",
    "prediction_agreement",
    "probe_deltas",
    "store_head_map",
    "store_layer_map",
    "variant_record",
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
