"""The public Results table: schema, types, nothing dropped, CSV round trip."""

import numpy as np
import pandas as pd
import pytest

import probekit
from probekit import RESULT_COLUMNS, Results


def test_results_is_public_and_documented():
    assert probekit.Results is Results
    doc = probekit.results.__doc__
    for col in RESULT_COLUMNS:  # every column is described in the schema table
        assert f"\n{col} " in doc, col


def test_to_frame_keeps_every_key_and_types_columns():
    rows = [{"model": "m", "layer": 2, "block": 1, "site": "L1.attn.pattern", "head": 3, "metric": "a", "value": 1,
             "extra": {"n": 5, "note": "x"}},
            {"model": "m", "example": 4, "position": 0, "token": "nan", "metric": "b", "value": 0.5}]
    df = Results(rows).to_frame()
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert df.loc[0, "extra"] == {"n": 5, "note": "x"} and df.loc[1, "extra"] is None
    for c in ("layer", "block", "head", "seed", "example", "position"):
        assert str(df[c].dtype) == "Int64", c
    assert df["value"].dtype == np.float64 and df.loc[0, "value"] == 1.0
    with pytest.raises(ValueError, match="unknown columns"):
        Results([{"metric": "a", "value": 1, "layr": 1}])
    with pytest.raises(TypeError, match="extra must be a mapping"):
        Results([{"metric": "a", "value": 1, "extra": "free text"}])
    with pytest.raises(ValueError, match="must hold integers"):
        Results([{"metric": "a", "value": 1, "layer": 1.5}]).to_frame()


def test_csv_round_trip(tmp_path):
    rows = [{"model": "m", "task": "t", "layer": 0, "site": "emb", "metric": "accuracy", "value": 0.75,
             "ci_low": 0.7, "ci_high": 0.8, "extra": {"k": [1, 2]}},
            {"model": "m", "example": 1, "position": 2, "token": "NA", "site": "emb", "layer": 0, "metric": "saliency",
             "value": -0.25}]
    path = Results(rows).to_csv(tmp_path / "r.csv")
    back = Results.read_csv(path).to_frame()
    pd.testing.assert_frame_equal(back, Results(rows).to_frame())
    assert back.loc[0, "extra"] == {"k": [1, 2]} and back.loc[1, "token"] == "NA"


def test_a_frame_goes_back_into_results_unchanged():
    rows = [{"model": "m", "layer": 2, "block": 1, "head": 0, "metric": "a", "value": 1.0, "extra": {"n": 1}},
            {"model": "m", "site": "emb", "layer": 0, "metric": "b", "value": 2.0}]
    df = Results(rows).to_frame()
    pd.testing.assert_frame_equal(Results(df).to_frame(), df)  # pandas' NA in Int64 columns is a missing value
    pd.testing.assert_frame_equal((Results(df) + Results(rows)).to_frame().iloc[:2], df)
