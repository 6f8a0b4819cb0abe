"""Tidy result rows of attributions and of method agreement."""

import numpy as np
import pandas as pd
import pytest

import probekit
from probekit.attribution import (
    Attribution,
    Attributor,
    agreement,
    agreement_results,
    attribution_results,
    mean_ci,
    token_frame,
)
from probekit.results import RESULT_COLUMNS, Results
from tests.conftest import tiny_config

TEXTS = ["a gorgeous, witty, seductive movie.", "the plot is a mess and the acting is dull"]


@pytest.fixture(scope="module")
def clf():
    return probekit.load_model(tiny_config("bert"), head="sequence-classification", num_labels=2, seed=3)


def test_attribution_rows_round_trip(clf, tmp_path):
    by_method = {m: Attributor(clf, m).attribute(TEXTS, target=1) for m in ("integrated_gradients", "blank_out")}
    res = attribution_results(by_method, model="tiny", split="test", examples=[10, 11])
    df = res.to_frame()
    assert list(df.columns) == list(RESULT_COLUMNS)
    tok = token_frame(res)
    n_tokens = sum(len(a.tokens) for a in by_method["blank_out"])
    assert len(tok) == 2 * n_tokens and set(tok["example"]) == {10, 11}
    for m, atts in by_method.items():
        for ex, a in zip((10, 11), atts):
            got = tok[(tok["method"] == m) & (tok["example"] == ex)].sort_values("position")
            assert got["token"].tolist() == a.tokens
            np.testing.assert_allclose(got["value"].to_numpy(), a.scores)
    assert set(tok["site"]) == {"emb"} and set(df["model"]) == {"tiny"} and set(df["split"]) == {"test"}
    assert set(df["task"]) == {"attribution"}
    tokens = df[df["position"].notna()]
    assert len(tokens) == 2 * n_tokens and set(tokens["layer"]) == {0} and tokens["block"].isna().all()
    summary = df[(df["example"] == 10) & df["position"].isna()].set_index("metric")["value"]
    ig = by_method["integrated_gradients"][0]
    assert summary["integrated_gradients:completeness_error"] == pytest.approx(ig.completeness_error)
    assert summary["blank_out:target"] == 1.0 and summary["blank_out:f_input"] == pytest.approx(ig.f_input)
    assert "blank_out:completeness_error" not in summary  # blank-out has no completeness property
    # one Attribution alone, and the same rows written through CSV
    one = by_method["blank_out"][1].to_results(example=4)
    assert token_frame(one)["example"].unique().tolist() == [4]
    back = token_frame(Results.read_csv(one.to_csv(tmp_path / "r.csv")))
    assert back["token"].tolist() == by_method["blank_out"][1].tokens
    assert token_frame(pd.read_csv(tmp_path / "r.csv"))["token"].tolist() == by_method["blank_out"][1].tokens
    np.testing.assert_allclose(back["value"], by_method["blank_out"][1].scores)


def test_attention_site_and_layer(clf):
    (a,) = Attributor(clf, "attention_x_gradient").attribute(TEXTS[:1])
    assert a.site == "L1.attn.pattern"
    df = a.to_results().to_frame()
    # block 1's pattern: layer 2 on the one layer axis, block 1 (today's main put the block index in layer)
    assert set(df["site"]) == {"L1.attn.pattern"} and set(df["layer"]) == {2} and set(df["block"]) == {1}


def test_attribution_results_bad_input():
    a = Attribution("saliency", ["[CLS]", "x", "[SEP]"], np.zeros(3), 0, 0.5)
    b = Attribution("blank_out", ["[CLS]", "x", "[SEP]"], np.zeros(3), 0, 0.5)
    with pytest.raises(ValueError, match="one attribution per example"):
        attribution_results({"saliency": [a, a], "blank_out": [b]})
    with pytest.raises(ValueError, match="made by method 'blank_out'"):
        attribution_results({"saliency": [b]})
    # a task name with ':' is just a name now: the example and token have their own columns
    assert set(attribution_results([a], task="a:b").to_frame()["task"]) == {"a:b"}
    with pytest.raises(ValueError, match="2 tokens but 3 scores"):
        attribution_results([Attribution("saliency", ["[CLS]", "x"], np.zeros(3), 0, 0.5)])
    with pytest.raises(TypeError, match="expected Attribution"):
        attribution_results([np.zeros(3)])
    with pytest.raises(ValueError, match="1 numbers for 2"):
        attribution_results([a, a], examples=[0])


def test_mean_ci():
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 0.2, size=400)
    m, lo, hi = mean_ci(x, seed=1)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert m == pytest.approx(x.mean())
    assert lo == pytest.approx(m - 1.96 * se, abs=0.25 * se) and hi == pytest.approx(m + 1.96 * se, abs=0.25 * se)
    assert mean_ci([0.3, np.nan], seed=0) == (0.3, 0.3, 0.3)
    assert all(np.isnan(mean_ci([np.nan])))
    with pytest.raises(ValueError, match="alpha"):
        mean_ci(x, alpha=1.5)


def test_agreement_results_per_layer():
    x = [np.array([1.0, 2, 3, 4, 5]), np.array([5.0, 1, 4, 2, 3]), np.array([2.0, 2, 2, 1, 9])]
    tables = []
    for layer, other in ((0, [v * 3 for v in x]), (1, [-v for v in x])):
        t = agreement({"blank_out": x, "raw": other})
        t["layer"] = layer
        tables.append(t)
    res = agreement_results(pd.concat(tables), per_example=True, task="rt", model="m", n_boot=200)
    df = res.to_frame()
    top = df[df["example"].isna()].set_index("layer")
    assert set(top["metric"]) == {"spearman:blank_out~raw"}
    assert top.loc[0, "value"] == pytest.approx(1.0) and top.loc[1, "value"] == pytest.approx(-1.0)
    assert (top["ci_low"] <= top["value"]).all() and (top["value"] <= top["ci_high"]).all()
    per = df[df["example"].notna()]
    assert len(per) == 6 and per["ci_low"].isna().all() and set(per["task"]) == {"rt"}
    assert sorted(per["example"].unique()) == [0, 1, 2]
    with pytest.raises(ValueError, match="lacks columns"):
        agreement_results(pd.DataFrame({"a": ["x"], "b": ["y"]}))


def test_agreement_results_ci_covers_spread():
    rng = np.random.default_rng(2)
    base = [rng.normal(size=12) for _ in range(60)]
    noisy = [b + rng.normal(scale=1.0, size=12) for b in base]
    row = agreement_results(agreement({"a": base, "b": noisy}), seed=3).to_frame().iloc[0]
    assert 0.4 < row.value < 0.9 and row.ci_low < row.value < row.ci_high and row.ci_high - row.ci_low < 0.3
    assert isinstance(agreement_results(agreement({"a": base, "b": noisy})), Results)
