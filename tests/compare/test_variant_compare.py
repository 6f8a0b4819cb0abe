"""Variant comparison: extra similarity measures, best matches, layer maps from manifests, agreement."""

import numpy as np
import pandas as pd
import pytest
import torch

import probekit
from probekit.compare import (
    agreement_from_predictions,
    attention_deltas,
    compare,
    head_map_for,
    layer_map_for,
    prediction_agreement,
    pwcca,
    svcca,
    variant_record,
)
from probekit.store import extract
from probekit.variants import distill
from tests.conftest import tiny_config

TEXTS = [f"sentence number {i} says something {'good' if i % 2 else 'bad'} about the film ." for i in range(40)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("vcmp")
    base = probekit.load_model(tiny_config("bert"), seed=0)
    other = probekit.load_model(tiny_config("bert"), seed=0)
    with torch.no_grad():
        for p in other.blocks[1].parameters():
            p.add_(0.5 * torch.randn_like(p))
    a = extract(base, TEXTS, None, root / "a", progress=False, dtype="float32", sentence_pooling=["mean"])
    b = extract(other, TEXTS, None, root / "b", progress=False, dtype="float32", sentence_pooling=["mean"])
    return a, b


def test_extra_measures_match_direct_computation(pair):
    a, b = pair
    cmp = compare(a, b, measures=["linear_cka", "svcca", "pwcca", "rbf_cka"], attention=False, progress=False)
    assert cmp.measures == ["linear_cka", "svcca", "pwcca", "rbf_cka"]
    x, y = a["L1.resid"].sentences("mean"), b["L1.resid"].sentences("mean")
    assert cmp.matrices["svcca"].loc["L1.resid", "L1.resid"] == pytest.approx(svcca(x, y), abs=1e-9)
    assert cmp.matrices["pwcca"].loc["L1.resid", "L1.resid"] == pytest.approx(pwcca(x, y), abs=1e-9)
    assert cmp.rows_used == {"linear_cka": 40, "svcca": 40, "pwcca": 40, "rbf_cka": 40}
    # unchanged layers are identical under every measure
    for m in cmp.measures:
        assert cmp.matrices[m].loc["L0.resid", "L0.resid"] == pytest.approx(1.0, abs=1e-6), m


def test_token_subsample_is_recorded_and_seeded(pair):
    a, b = pair
    kw = dict(level="token", measures=["svcca"], max_rows=100, attention=False, progress=False)
    c1, c2, c3 = compare(a, b, **kw), compare(a, b, **kw), compare(a, b, seed=1, **kw)
    assert c1.rows_used["svcca"] == 100 < a.manifest["n_tokens"]
    pd.testing.assert_frame_equal(c1.matrices["svcca"], c2.matrices["svcca"])
    assert not np.allclose(c1.matrices["svcca"].values, c3.matrices["svcca"].values)


def test_unknown_measure_suggests_spelling(pair):
    a, b = pair
    with pytest.raises(ValueError, match="did you mean 'svcca'"):
        compare(a, b, measures=["svcaa"], progress=False)


def test_best_matches_and_tidy_frames(pair):
    a, b = pair
    cmp = compare(a, a, measures=["linear_cka", "procrustes"], attention=False, progress=False)
    best = cmp.best_matches("linear_cka")
    assert best["correct"].all() and (best["site"] == best["best"]).all() and (best["margin"] > 0).all()
    assert cmp.best_matches("procrustes")["correct"].all()  # a distance: smallest wins
    with pytest.raises(KeyError, match="was not computed"):
        cmp.best_matches("svcca")
    df = cmp.to_frame()
    assert set(df.metric) == {"linear_cka:sentence", "procrustes:sentence"} and len(df) == 2 * 3
    full = cmp.to_frame(matrix=True)
    assert len(full) == 2 * 3 + 2 * 3 * 3
    cell = full[(full.metric == "linear_cka:sentence:matrix") & (full.site == "emb") & (full.site_b == "L1.resid")]
    assert cell["value"].iloc[0] == pytest.approx(cmp.matrices["linear_cka"].loc["emb", "L1.resid"])
    assert cell["layer"].iloc[0] == 0  # rows are on A's layer axis; B's site is site_b


def test_layer_map_from_a_distilled_student(tmp_path):
    teacher = probekit.load_model(tiny_config("bert"), head="sequence-classification", num_labels=2, seed=0)
    data = (TEXTS, [i % 2 for i in range(len(TEXTS))])
    student = distill(teacher, data, n_layers=1, epochs=1, batch_size=16, max_length=16, precision="fp32",
                      out=tmp_path / "student", progress=False)
    assert student.layer_map.layers == (1,)
    loaded = probekit.load_model(tmp_path / "student")
    ta = extract(teacher, TEXTS, None, tmp_path / "ta", progress=False, dtype="float32")
    sb = extract(loaded, TEXTS, None, tmp_path / "sb", progress=False, dtype="float32")
    rec = variant_record(sb)
    assert rec["recipe"]["kind"] == "distill" and rec["path"].endswith("student")
    assert layer_map_for(ta, sb) == {"emb": "emb", "L1.resid": "L0.resid"}
    assert layer_map_for(sb, ta) == {"emb": "emb", "L0.resid": "L1.resid"}
    assert layer_map_for(ta, ta) == {"emb": "emb", "L0.resid": "L0.resid", "L1.resid": "L1.resid"}
    # attention heads pair along the same map: the student's layer 0 with the teacher's layer 1
    tpat = extract(teacher, TEXTS, ["L0.attn.pattern", "L1.attn.pattern"], tmp_path / "tpat", progress=False)
    spat = extract(loaded, TEXTS, ["L0.attn.pattern"], tmp_path / "spat", progress=False)
    assert head_map_for(tpat, spat) == {(1, k): (0, k) for k in range(4)}
    heads = attention_deltas(tpat, spat, progress=False).to_frame()
    assert set(heads["block"]) == {1} and set(heads["layer"]) == {2}  # the teacher's (A's) block 1 = layer 2
    assert set(heads["site_b"]) == {f"L0.attn.pattern.h{k}" for k in range(4)}
    # without the folder, the recipe recorded in the manifest still gives the map
    (tmp_path / "student" / "layer_map.json").unlink()
    assert layer_map_for(ta, sb) == {"emb": "emb", "L1.resid": "L0.resid"}
    cmp = compare(ta, sb, layer_map=layer_map_for(ta, sb), attention=False, progress=False)
    assert list(cmp.diagonal()["site_a"]) == ["emb", "L1.resid"]
    rows = cmp.to_frame()
    assert rows[["site", "layer", "site_b"]].drop_duplicates().values.tolist() == [["emb", 0, "emb"],
                                                                                   ["L1.resid", 2, "L0.resid"]]

    # the classifiers' agreement equals what their own predictions say
    ag = prediction_agreement(teacher, student, TEXTS, data[1], n_boot=200)
    pt = probekit.variants.predict_logits(teacher, TEXTS).argmax(-1).numpy()
    ps = probekit.variants.predict_logits(student.model, TEXTS).argmax(-1).numpy()
    assert ag.agreement == pytest.approx(np.mean(pt == ps))
    assert ag.accuracy_a == pytest.approx(np.mean(pt == np.asarray(data[1])))
    assert len(ag.disagreements) == int(np.sum(pt != ps))
    assert ag.table.values.sum() == len(TEXTS)
    assert set(ag.to_frame()["metric"]) == {"agreement", "kappa", "accuracy_a", "accuracy_b", "delta_accuracy"}
    with pytest.raises(TypeError, match="not a sequence classifier"):
        prediction_agreement(teacher, probekit.load_model(tiny_config("bert"), seed=0), TEXTS)


def test_agreement_by_hand():
    y = np.array([0, 1, 1, 1, 0, 0, 1, 0])
    a = np.array([0, 1, 1, 0, 0, 1, 1, 0])
    b = np.array([0, 1, 0, 0, 0, 1, 1, 1])
    ag = agreement_from_predictions(a, b, y, texts=[f"t{i}" for i in range(8)], n_boot=300)
    po = 6 / 8
    pe = (4 * 4 + 4 * 4) / 64  # A: four 0s, four 1s; B: four 0s, four 1s
    assert ag.agreement == po and ag.kappa == pytest.approx((po - pe) / (1 - pe))
    assert (ag.accuracy_a, ag.accuracy_b) == (6 / 8, 4 / 8)
    assert ag.table.loc["A right", "B wrong"] == 2 and ag.table.loc["A wrong", "B right"] == 0
    assert list(ag.disagreements["index"]) == [2, 7]
    assert list(ag.disagreements["text"]) == ["t2", "t7"]
    lo, hi = ag.intervals["agreement"]
    assert lo <= po <= hi and lo < hi
    perfect = agreement_from_predictions(a, a, y, n_boot=10)
    assert perfect.kappa == 1.0 and perfect.disagreements.empty
    with pytest.raises(ValueError, match="same length"):
        agreement_from_predictions(a, b[:5])
