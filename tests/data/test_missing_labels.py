"""A missing label (None, NaN, an empty CSV cell) is a ValueError naming the example and word, never a class."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import probekit
from probekit.data import ProbingDataset
from probekit.store._data import as_data, load_source
from probekit.variants import as_frame

TEXTS = ["a good film", "a bad film", "the end"]


@pytest.mark.parametrize("missing", [None, float("nan"), np.float32("nan"), "", "  ", pd.NA])
def test_sentence_labels(missing):
    with pytest.raises(ValueError, match=r"example 1: the label is missing"):
        ProbingDataset.from_lists(TEXTS, ["pos", missing, "neg"])


@pytest.mark.parametrize("missing", [None, float("nan"), ""])
def test_word_labels_name_the_word(missing):
    with pytest.raises(ValueError, match=r"example 1, word 2 \('film'\): the label is missing"):
        ProbingDataset.from_lists(TEXTS, [["D", "A", "N"], ["D", "A", missing], ["D", "N"]], level="word")
    with pytest.raises(ValueError, match=r"example 2: the labels are missing"):
        ProbingDataset.from_lists(TEXTS, [["D", "A", "N"], ["D", "A", "N"], missing], level="word")


def test_edge_labels_name_the_pair():
    rows = [[(1, 2, "amod")], [(0, 2, "det"), (1, 2, None)], []]
    with pytest.raises(ValueError, match=r"example 1, pair 1 \(word 1 \('bad'\) -> word 2\)"):
        ProbingDataset.from_lists(TEXTS, rows, level="edge")


def test_datasets_built_directly_are_checked_too():
    """Task builders construct ProbingDataset directly; the check lives in the dataset itself."""
    with pytest.raises(ValueError, match="example 0, word 1"):
        ProbingDataset(("a b",), (("a", "b"),), (("X", None),), "word")
    ds = ProbingDataset.from_lists(TEXTS, ["pos", "neg", "neg"])
    with pytest.raises(ValueError, match="example 2"):
        ds.with_labels(["pos", "neg", None])


def test_pandas_csv_and_jsonl(tmp_path):
    df = pd.DataFrame({"text": TEXTS, "label": ["pos", np.nan, "neg"]})
    with pytest.raises(ValueError, match="example 1: the label is missing"):
        ProbingDataset.from_pandas(df)
    csv = tmp_path / "d.csv"
    csv.write_text("text,label\na good film,pos\na bad film,neg\nthe end,\n")
    with pytest.raises(ValueError, match=r"d\.csv: example 2: the label is missing \(an empty string\)"):
        ProbingDataset.from_csv(csv)
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in zip(TEXTS, ["pos", None, "neg"])))
    with pytest.raises(ValueError, match="example 1"):
        ProbingDataset.from_jsonl(jl)
    wl = pd.DataFrame({"text": [["a", "b"], ["c"]], "label": [["X", "Y"], np.nan]})
    with pytest.raises(ValueError, match="example 1: the labels are missing"):
        ProbingDataset.from_pandas(wl, level="word")


def test_extract_data(tmp_path):
    with pytest.raises(ValueError, match=r"example 1: the value of column 'label' is missing \(nan\)"):
        as_data(pd.DataFrame({"text": TEXTS, "label": [1, np.nan, 0]}))
    with pytest.raises(ValueError, match=r"example 0, word 1 \('b'\)"):
        as_data(pd.DataFrame({"words": [["a", "b"]], "labels": [["X", None]]}))
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\na good film,1\nthe end,\n")
    with pytest.raises(ValueError, match=r"reviews\.csv: example 1: the value of column 'label' is missing"):
        load_source(str(csv))
    assert len(as_data(pd.DataFrame({"text": TEXTS, "label": [1, 0, 1], "note": [None, "x", np.nan]}))) == 3


def test_training_data():
    with pytest.raises(ValueError, match="example 1: the label is missing"):
        as_frame((TEXTS, [1, None, 0]))
    with pytest.raises(ValueError, match=r"example 0, word 1 \('b'\)"):
        as_frame(pd.DataFrame({"text": [["a", "b"]], "label": [[1, np.nan]]}))


def test_extract_refuses_before_any_work(tmp_path):
    m = probekit.load_model(__import__("tests.conftest", fromlist=["tiny_config"]).tiny_config("bert"), seed=0)
    with pytest.raises(ValueError, match="example 1"):
        probekit.extract(m, pd.DataFrame({"text": TEXTS, "label": ["a", None, "b"]}), ["L0.resid"], tmp_path / "s",
                         progress=False)
    assert not (tmp_path / "s").exists()
