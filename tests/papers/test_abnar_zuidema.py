"""The Abnar & Zuidema 2020 check compares like with like: each of the paper's tables beside its own setting."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import probekit
from probekit.attention import attention_flow, attention_rollout
from tests.conftest import tiny_config

HERE = Path(__file__).resolve().parents[2] / "papers" / "abnar_zuidema_2020"


@pytest.fixture(scope="module")
def az():
    sys.path.insert(0, str(HERE))
    try:
        spec = importlib.util.spec_from_file_location("abnar_zuidema_run", HERE / "run.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(HERE))


def test_paper_figures_are_labelled_with_their_tables(az):
    # Table 3 is the sentiment result (DistilBERT on SST-2, input gradients), about 0.1 everywhere, at layers 1/3/5/6
    assert az.TABLES["table3"] == ("sentiment", "input_gradient")
    assert sorted({lay for _, lay in az.PAPER_TABLE3}) == [1, 3, 5, 6]
    assert all(0.08 <= m <= 0.14 for m, _ in az.PAPER_TABLE3.values())
    assert az.PAPER_TABLE3[("flow", 6)] == (0.14, 0.21) and az.PAPER_TABLE3[("raw", 1)] == (0.12, 0.21)
    # Tables 1-2 are the subject-verb agreement model, against blank-out and input gradients
    assert az.TABLES["table1"] == ("agreement", "blank_out") and az.TABLES["table2"] == ("agreement", "input_gradient")
    assert az.PAPER_TABLE1[("raw", 1)] == (0.69, 0.27) and az.PAPER_TABLE1[("flow", 3)] == (0.70, 0.25)
    assert az.PAPER_TABLE2[("raw", 6)] == (0.46, 0.35) and az.PAPER_TABLE2[("rollout", 6)] == (0.54, 0.31)
    assert len(az.PAPER_TABLE1) == len(az.PAPER_TABLE2) == 18


def test_results_put_each_table_beside_its_own_setting():
    md = (HERE / "results.md").read_text()
    assert "{" not in md  # every figure was filled in
    sentiment = md.split("## Sentiment", 1)[1].split("\n## ", 1)[0]
    agreement = md.split("## Subject-verb agreement", 1)[1].split("\n## ", 1)[0]
    assert "paper Table 3" in sentiment and "input gradient" in sentiment and "Table 1" not in sentiment
    assert "paper Table 1" in agreement and "paper Table 2" in agreement and "blank-out" in agreement
    assert "SST-2" not in agreement.split("Caveats", 1)[0]
    readme = (HERE.parent / "README.md").read_text()
    row = next(line for line in readme.splitlines() if "abnar_zuidema_2020/" in line)
    assert "Table 3" in row and "Tables 1-2" in row and "SST-2" in row


def test_relevance_by_hand(az):
    scores = sys.modules["_scores"]
    a = torch.tensor([[[0.6, 0.4, 0.0], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]])
    b = torch.tensor([[[0.2, 0.5, 0.3], [0.0, 0.5, 0.5], [0.9, 0.0, 0.1]]])
    cls = scores.relevance([a, b], read="cls", flow=True)
    mx = scores.relevance([a, b], read="max", flow=True)
    np.testing.assert_allclose(cls["raw"], [[0.6, 0.4, 0.0], [0.2, 0.5, 0.3]])
    np.testing.assert_allclose(mx["raw"], [[0.6, 0.8, 0.4], [0.9, 0.5, 0.5]])
    roll = attention_rollout([a, b])
    np.testing.assert_allclose(cls["rollout"], roll[:, 0, :]) and np.testing.assert_allclose(mx["rollout"],
                                                                                                roll.max(axis=1))
    np.testing.assert_allclose(cls["flow"], attention_flow([a, b], output=0))
    per = np.stack([attention_flow([a, b], output=u) for u in range(3)])
    np.testing.assert_allclose(mx["flow"], (per / per.sum(-1, keepdims=True)).max(axis=0))


def test_input_gradients_are_the_gold_logits_gradient(az):
    scores = sys.modules["_scores"]
    clf = probekit.load_model(tiny_config("bert"), head="sequence-classification", num_labels=2, seed=1)
    (g,) = scores.input_gradients(clf, ["a witty movie"], [1])
    ids = torch.tensor([clf.tokenize(["a witty movie"]).examples[0].input_ids])
    emb = clf.model.get_input_embeddings()(ids).detach()
    with torch.no_grad():
        def logit(e):
            return clf.model(inputs_embeds=e, attention_mask=torch.ones_like(ids)).logits[0, 1].double()

        eps = 1e-3
        for k in range(ids.shape[1]):  # moving token k's embedding along (1, ..., 1) changes the logit by eps * sum_d g
            step = torch.zeros_like(emb)
            step[0, k] = eps
            fd = (logit(emb + step) - logit(emb - step)) / (2 * eps)
            assert abs(fd.item()) == pytest.approx(g[k], rel=2e-2, abs=1e-5)


def test_agreement_examples_from_a_parse(az):
    agreement = sys.modules["_agreement"]
    from probekit.data._spacy import load_spacy

    try:
        nlp = load_spacy()
    except ImportError as exc:
        pytest.skip(f"spaCy's English model is not installed: {exc}")
    doc = nlp("The keys to the old cabinet are on the table. The author of these books writes well. I am tired.")
    sents = list(doc.sents)
    (keys,) = agreement.agreement_examples(sents[0])
    assert keys["words"] == ["The", "keys", "to", "the", "old", "cabinet"]
    assert keys["label"] == "plural" and keys["subject"] == 1 and keys["attractors"] == 1
    (author,) = agreement.agreement_examples(sents[1])
    assert author["label"] == "singular" and author["words"][-1] == "books" and author["attractors"] == 1
    assert agreement.agreement_examples(sents[2]) == []  # a pronoun subject is not a noun
