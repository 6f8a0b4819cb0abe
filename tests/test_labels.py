"""One canonical name per class: ``1``, ``1.0`` and ``"1"`` are one class wherever labels enter (issue 25, item 7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probekit.data import ProbingDataset
from probekit.labels import canonical_label, canonical_labels


@pytest.mark.parametrize("values, expected", [
    ([1, 1.0, 2], ["1", "1", "2"]),
    ([1, "1"], ["1", "1"]),
    (["1.0", "1", "+1", np.int64(1), np.float32(1.0)], ["1"] * 5),
    ([0.5, "0.50", np.float64(0.5)], ["0.5"] * 3),
    ([-0.0, "-0", 0], ["0"] * 3),
    (["007", "7"], ["007", "7"]),                 # an identifier with leading zeros is text
    (["NOUN", "noun", " 1", "1."], ["NOUN", "noun", " 1", "1."]),  # other text is kept exactly
    ([True, 1], ["True", "1"]),
    ([float("inf")], ["inf"]),
])
def test_canonical_label(values, expected):
    assert canonical_labels(values) == expected


def test_integral_floats_ints_and_their_strings_make_one_class():
    texts = ["a", "b", "c", "d"]
    assert ProbingDataset.from_lists(texts[:3], [1, 1.0, 2]).label_names == ("1", "2")
    assert ProbingDataset.from_lists(texts[:2], [1, "1"]).label_names == ("1",)
    ds = ProbingDataset.from_lists(texts, [1, "1.0", np.int64(2), 2.0])
    assert ds.label_names == ("1", "2") and ds.labels == ("1", "1", "2", "2")
    words = ProbingDataset.from_lists([["a", "b"], ["c", "d"]], [[1, 1.0], ["2", 2.0]], level="word")
    assert words.label_names == ("1", "2")
    # a CSV read by pandas gives floats where a column has a gap; the class is still '1'
    df = pd.DataFrame({"text": texts, "label": [1.0, 2.0, 1.0, 2.0]})
    assert ProbingDataset.from_pandas(df).label_names == ("1", "2")
    assert ProbingDataset.from_lists(texts[:2], [1, 2], label_names=[1.0, 2.0]).label_names == ("1", "2")


def test_erasers_and_probes_see_the_same_classes():
    from probekit.interventions import LeaceEraser
    from probekit.interventions._rows import encode_labels

    classes, codes = encode_labels(np.array([1, 1.0, "1", 2], dtype=object))
    assert classes.tolist() == ["1", "2"] and codes.tolist() == [0, 0, 0, 1]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.array([1, 1.0, "2", 2.0] * 10, dtype=object)
    assert LeaceEraser().fit(X, y).classes_ == ("1", "2")


def test_canonical_label_is_the_class_name_of_single_values():
    assert canonical_label(3) == canonical_label(3.0) == canonical_label("3") == "3"
