"""Amnesic probing on tiny models: a causal LM (next-token behaviour) and a classifier (accuracy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probekit
from probekit.data import build_task
from probekit.interventions import (
    ClassifierBehaviour,
    NextTokenBehaviour,
    amnesic_probe,
    amnesic_table,
)
from probekit.probes import extract_task, task_inputs
from tests.conftest import tiny_config

UD = Path(__file__).resolve().parents[1] / "data" / "ud_en_ewt_sample"


@pytest.fixture(scope="module")
def upos():
    return build_task("upos", "ud", path=UD, limit=40)


def test_amnesic_probe_on_a_tiny_causal_lm(upos, tmp_path):
    lm = probekit.load_model(tiny_config("gpt2"), head="causal-lm", seed=0)
    store = extract_task(lm, upos, tmp_path / "s", ["L0.resid", "L1.resid"], progress=False)
    assert task_inputs(store, upos).layers == [1, 2]
    held = [" ".join(w) for w in upos.dataset.word_lists()][:12]
    beh = NextTokenBehaviour(held, batch_size=4)
    res = amnesic_probe(lm, store, upos, beh, n_boot=200, seed=0)
    df = res.to_frame()
    assert set(df["site"]) == {"L0.resid", "L1.resid"} and set(df["layer"]) == {1, 2}
    table = amnesic_table(res)
    assert len(table) == 2
    for _, row in table.iterrows():
        # LEACE drives the linear probe to (near) the majority baseline; the control leaves it near the original
        assert row["probe_accuracy_after"] <= row["majority"] + 0.1
        assert row["probe_accuracy_before"] > row["probe_accuracy_after"] + 0.05
        assert row["probe_accuracy_random"] > row["probe_accuracy_after"]
        assert row["rank"] >= 1
        # behaviour numbers agree with a direct measurement
        assert row["lm_loss_change"] == pytest.approx(row["lm_loss_after"] - row["lm_loss_before"])
        assert row["lm_loss_change_low"] <= row["lm_loss_change"] <= row["lm_loss_change_high"]
        assert row["lm_loss_change"] != 0
    base = beh.stats(lm)
    direct = base["loss"].sum() / base["count"].sum()
    assert table["lm_loss_before"].iloc[0] == pytest.approx(direct)


def test_amnesic_probe_on_a_tiny_classifier(tmp_path):
    rng = np.random.default_rng(0)
    words = ["good", "bad", "fine", "awful", "great", "poor", "nice", "dull"]
    texts = [" ".join(rng.choice(words, 5)) for _ in range(80)]
    labels = [int(sum(w in ("good", "fine", "great", "nice") for w in t.split()) >= 3) for t in texts]
    from probekit.data import ProbingDataset, Task

    ds = ProbingDataset.from_lists([t.split() for t in texts], [str(v) for v in labels],
                                   splits=["train"] * 60 + ["test"] * 20)
    task = Task("toy_sentiment", "sentence", ds, ("0", "1"), 0, "toy", "test")
    clf = probekit.load_model(tiny_config("bert"), head="sequence-classification", num_labels=2, seed=0)
    store = extract_task(clf, task, tmp_path / "c", ["L1.resid"], progress=False)
    beh = ClassifierBehaviour(texts[60:], labels[60:])
    res = amnesic_probe(clf, store, task, beh, n_boot=100, n_random=2)
    table = amnesic_table(res)
    assert {"accuracy_before", "accuracy_change", "accuracy_random_change", "accuracy_change_vs_random"} \
        <= set(table.columns)
    assert table["rank"].iloc[0] == 1


def test_bad_arguments(upos, tmp_path):
    lm = probekit.load_model(tiny_config("gpt2"), head="causal-lm", seed=0)
    store = extract_task(lm, upos, tmp_path / "s", ["L0.resid"], progress=False)
    with pytest.raises(ValueError, match="method"):
        amnesic_probe(lm, store, upos, NextTokenBehaviour(["a b c"]), method="pca")
    with pytest.raises(TypeError, match="Behaviour"):
        amnesic_probe(lm, store, upos, ["a b c"])
    enc = probekit.load_model(tiny_config("bert"), seed=0)
    with pytest.raises(TypeError, match="causal-lm"):
        NextTokenBehaviour(["a b c"]).stats(enc)
    with pytest.raises(ValueError, match="labels of shape"):
        ClassifierBehaviour(["a", "b"], [1])
    assert isinstance(pd.DataFrame(), pd.DataFrame)
