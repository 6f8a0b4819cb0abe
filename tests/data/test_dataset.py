"""ProbingDataset constructors and bad-input errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from probekit.data import ProbingDataset
from probekit.model._tokenize import validate_inputs

TEXTS = ["a fine film", "a dull film", "not bad at all"]
LABELS = ["pos", "neg", "pos"]


def _check(ds):
    assert len(ds) == 3 and ds.level == "sentence"
    assert ds.labels == ("pos", "neg", "pos") and ds.label_names == ("neg", "pos")
    assert ds.texts[0] == "a fine film"


def test_from_lists_sentence_and_split():
    ds = ProbingDataset.from_lists(TEXTS, LABELS, splits=["train", "train", "test"])
    _check(ds)
    assert ds.words is None and ds.inputs == TEXTS
    assert len(ds.split("train")) == 2 and ds.split("test").labels == ("pos",)
    assert "3 examples" in repr(ds)


def test_from_lists_word_and_edge_and_structural():
    words = [["The", "cat", "sat"], ["Dogs", "bark"]]
    ds = ProbingDataset.from_lists(words, [["DET", "NOUN", "VERB"], ["NOUN", "VERB"]], level="word")
    assert ds.words == (("The", "cat", "sat"), ("Dogs", "bark")) and ds.texts[0] == "The cat sat"
    assert ds.label_names == ("DET", "NOUN", "VERB")
    # pre-split words go to the tokenizer as word lists
    texts, given = validate_inputs(ds.inputs)
    assert given[0] == ("The", "cat", "sat")
    edge = ProbingDataset.from_lists(words, [[(0, 1, "det"), (1, 2, "nsubj")], [(0, 1, "nsubj")]], level="edge")
    assert edge.flat_labels() == ["det", "nsubj", "nsubj"]
    st = ProbingDataset.from_lists(words[1:], [{"distance": np.array([[0, 1], [1, 0]]), "depth": np.array([1, 0])}],
                                   level="structural")
    assert st.level == "structural"


def test_from_pandas_and_hf_dataset():
    df = pd.DataFrame({"text": TEXTS, "label": LABELS, "split": ["train", "dev", "test"]})
    ds = ProbingDataset.from_pandas(df, split="split")
    _check(ds)
    assert ds.splits == ("train", "dev", "test")
    import datasets

    hf = datasets.Dataset.from_dict({"text": TEXTS, "label": [1, 0, 1]},
                                    features=datasets.Features({"text": datasets.Value("string"),
                                                                "label": datasets.ClassLabel(names=["neg", "pos"])}))
    _check(ProbingDataset.from_hf(hf))
    dd = datasets.DatasetDict({"train": hf, "validation": hf})
    both = ProbingDataset.from_hf(dd)
    assert both.splits == ("train",) * 3 + ("dev",) * 3
    # word lists in a column
    dfw = pd.DataFrame({"text": [["a", "b"], ["c"]], "label": [["X", "Y"], ["X"]]})
    assert ProbingDataset.from_pandas(dfw, level="word").words == (("a", "b"), ("c",))


def test_from_csv_and_jsonl(tmp_path):
    p = tmp_path / "d.csv"
    pd.DataFrame({"text": TEXTS, "label": LABELS}).to_csv(p, index=False)
    _check(ProbingDataset.from_csv(p))
    j = tmp_path / "d.jsonl"
    j.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in zip(TEXTS, LABELS)))
    _check(ProbingDataset.from_jsonl(j))
    jw = tmp_path / "w.jsonl"
    jw.write_text(json.dumps({"text": ["Dogs", "bark"], "label": ["NOUN", "VERB"]}) + "\n")
    assert ProbingDataset.from_jsonl(jw, level="word").labels == (("NOUN", "VERB"),)


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="example 0: 2 labels for 3 words"):
        ProbingDataset.from_lists([["The", "cat", "sat"]], [["DET", "NOUN"]], level="word")
    with pytest.raises(ValueError, match="empty"):
        ProbingDataset.from_lists(["fine", "  "], ["pos", "neg"])
    with pytest.raises(ValueError, match="empty word list"):
        ProbingDataset.from_lists([["a"], []], [["X"], []], level="word")
    with pytest.raises(ValueError, match=r"unknown label name\(s\) \['meh'\]"):
        ProbingDataset.from_lists(TEXTS, ["pos", "neg", "meh"], label_names=["neg", "pos"])
    with pytest.raises(ValueError, match="2 labels for 3 examples"):
        ProbingDataset.from_lists(TEXTS, LABELS[:2])
    with pytest.raises(ValueError, match="unknown split"):
        ProbingDataset.from_lists(TEXTS, LABELS, splits=["train", "valid", "test"])
    with pytest.raises(ValueError, match="outside the 2 words"):
        ProbingDataset.from_lists([["a", "b"]], [[(0, 5, "x")]], level="edge")
    with pytest.raises(KeyError, match="column 'sentence'"):
        ProbingDataset.from_pandas(pd.DataFrame({"text": TEXTS, "label": LABELS}), text="sentence")
    j = tmp_path / "bad.jsonl"
    j.write_text(json.dumps({"text": "ok", "label": "pos"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        ProbingDataset.from_jsonl(j)
    j.write_text(json.dumps({"text": "ok"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: missing key 'label'"):
        ProbingDataset.from_jsonl(j)
