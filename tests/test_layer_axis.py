"""One layer axis in every results table: every suite on one tiny encoder and one tiny decoder.

Each suite's rows are concatenated and joined on ``(site, layer)``: a site
has one layer whichever suite wrote the row (``emb`` 0, block ``i`` ``i + 1``,
``final`` after the last block), and rows about a block's internals carry
``block``.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import probekit
from probekit import Results, extract
from probekit.attention import AttentionSuite
from probekit.attribution import Attributor, agreement, agreement_results, attribution_results
from probekit.compare import compare, probe_deltas
from probekit.data import build_task
from probekit.probes import ProbeSuite, extract_task, random_init_copy
from tests.conftest import tiny_config

TEXTS = ["a gorgeous, witty, seductive movie.", "the plot is a mess and the acting is dull.",
         "one of the year's best films.", "tedious, slow and far too long.", "it works, mostly."]


def _sites(model) -> list[str]:
    sites = ["emb", "L0.resid", "L1.resid", "L0.mlp.out"]
    return sites + (["final"] if model.adapter.final is not None else [])


@pytest.fixture(scope="module", params=["bert", "gpt2"])
def every_suite(request, tmp_path_factory):
    """The concatenated rows of every suite on one tiny model (hidden 32, 2 blocks, 4 heads)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp(f"axis-{request.param}")
    model = probekit.load_model(tiny_config(request.param), seed=0, name=f"tiny-{request.param}")
    other = random_init_copy(model, seed=7)
    task = build_task("sentiment", "rt", limit=40, seed=0)
    sites = _sites(model)
    patterns = [f"L{i}.attn.pattern" for i in range(model.n_layers)]
    sa = extract_task(model, task, root / "a", sites + patterns, progress=False)
    sb = extract_task(other, task, root / "b", sites + patterns, progress=False)
    frames = {}
    suite_a = ProbeSuite(task, "linear", seeds=(0,), n_boot=20)
    frames["probes"] = suite_a.run({"m": sa}).to_frame()
    suite_b = ProbeSuite(task, "linear", seeds=(0,), n_boot=20)
    suite_b.run({("m", "random"): sb})
    frames["probe_deltas"] = probe_deltas(suite_a, suite_b, n_boot=20).to_frame()
    frames["attention"] = AttentionSuite(sa, model.tokenizer).head_statistics(progress=False).to_frame()
    residual = [s for s in sites if s != "L0.mlp.out"]
    frames["compare"] = compare(sa, sb, sites_a=residual, sites_b=residual, progress=False).to_frame(matrix=True)
    head = torch.nn.Linear(model.d_model, 2)
    probe = lambda h, mask: head(h[:, -1])  # noqa: E731
    read = "final" if "final" in sites else "L1.resid"
    by_method = {m: Attributor(model, m, probe=probe, probe_site=read).attribute(TEXTS[:3])
                 for m in ("saliency", "attention_x_gradient")}
    cond = Attributor(model, "layer_conductance", probe=probe, probe_site=read, site="L0.resid").attribute(
        TEXTS[:3], n_steps=4)
    att = attribution_results(by_method, model="m") + attribution_results({"layer_conductance": cond}, model="m")
    table = agreement({"saliency": [a.scores for a in by_method["saliency"]],
                       "attention_x_gradient": [a.scores for a in by_method["attention_x_gradient"]]})
    table["layer"] = probekit.site_layer(by_method["attention_x_gradient"][0].site)
    frames["attribution"] = (att + agreement_results(table, n_boot=20)).to_frame()
    return model, frames


def test_every_suite_shares_one_layer_axis(every_suite):
    model, frames = every_suite
    n = model.n_layers
    allrows = pd.concat([f.assign(suite=k) for k, f in frames.items()], ignore_index=True)
    assert list(allrows.columns[:-1]) == list(probekit.RESULT_COLUMNS)
    sited = allrows[allrows["site"].notna()]
    per_site = sited.groupby("site")["layer"].agg(["nunique", "min"])
    assert (per_site["nunique"] == 1).all(), per_site  # no site has two layers, whichever suite wrote it
    layer = per_site["min"].to_dict()
    assert layer["emb"] == 0 and layer["L0.resid"] == 1 and layer["L1.resid"] == 2
    assert layer["L0.attn.pattern"] == 1 and layer["L1.attn.pattern"] == 2 and layer["L0.mlp.out"] == 1
    if "final" in layer:  # a decoder: final comes after the last block, never on emb's 0 nor at a sentinel
        assert layer["final"] == n + 1
    assert sited["layer"].between(0, n + 1).all()
    # rows about a block's internals carry the block; block outputs and emb/final do not
    internal = sited[sited["site"].str.contains(r"\.(?:attn|mlp)\.")]
    assert len(internal) and (internal["block"] == internal["layer"] - 1).all()
    assert sited[sited["site"].isin(["emb", "final", "L0.resid", "L1.resid"])]["block"].isna().all()
    for name in ("probes", "attention", "compare", "attribution", "probe_deltas"):
        assert frames[name]["layer"].notna().any(), name


def test_suites_join_on_site_and_layer(every_suite):
    model, frames = every_suite
    keys = ["site", "layer"]
    probes = frames["probes"].query("metric == 'accuracy_mean' and task == 'sentiment'")[keys + ["value"]]
    cka = frames["compare"].query("metric == 'linear_cka:sentence'")[keys + ["value"]]
    joined = probes.merge(cka, on=keys, suffixes=("_probe", "_cka"), validate="one_to_one")
    assert set(joined["site"]) == set(cka["site"])  # every compared residual site finds its probe row
    deltas = frames["probe_deltas"].query("metric == 'delta_accuracy_mean'")[keys + ["value"]]
    assert len(probes.merge(deltas, on=keys)) == len(deltas) > 0
    heads = frames["attention"].query("metric == 'sep'").groupby(keys, as_index=False)["value"].mean()
    scores = frames["attribution"].dropna(subset=["site"]).groupby(keys, as_index=False)["value"].mean()
    assert len(heads.merge(scores, on=keys)) == 1  # the last block's pattern, read by attention x gradient
    # on the layer axis alone, the attention of block i meets the probe of the residual it produces
    by_layer = probes.merge(heads, on="layer", suffixes=("_probe", "_attn"))
    assert sorted(set(by_layer["layer"])) == list(range(1, model.n_layers + 1))
    assert set(by_layer.query("layer == 1")["site_probe"]) == {"L0.resid", "L0.mlp.out"}
    assert len(probes.merge(scores, on=keys)) >= 2  # emb (input-token methods) and L0.resid (conductance)
    # final, where the model has one, is probed after every block
    if "final" in set(probes["site"]):
        order = probes.sort_values("layer")["site"].tolist()
        assert order[0] == "emb" and order[-1] == "final"


def test_final_layer_of_a_probe_is_not_emb(every_suite):
    model, frames = every_suite
    if model.adapter.final is None:
        pytest.skip("an encoder has no final site")
    el = frames["probes"].query("metric == 'expected_layer'")["value"]
    assert el.between(0, model.n_layers + 1).all()
    rows = frames["probes"].query("site == 'final'")
    assert set(rows["layer"]) == {model.n_layers + 1}


def test_compare_gives_final_its_layer(tmp_path):
    model = probekit.load_model(tiny_config("llama"), seed=0)
    other = random_init_copy(model, seed=3)
    a = extract(model, TEXTS, ["emb", "L1.resid", "final"], tmp_path / "a", progress=False, dtype="float32")
    b = extract(other, TEXTS, ["emb", "L1.resid", "final"], tmp_path / "b", progress=False, dtype="float32")
    sites = ["emb", "L1.resid", "final"]
    df = compare(a, b, sites_a=sites, sites_b=sites, attention=False, progress=False).to_frame(matrix=True)
    assert df.groupby("site")["layer"].unique().map(list).to_dict() == {"emb": [0], "L1.resid": [2], "final": [3]}
    assert df["layer"].max() == 3  # no 10**6 sentinel


def test_results_frames_concatenate():
    a = Results([{"site": "L0.attn.pattern", "layer": 1, "block": 0, "head": 2, "metric": "x", "value": 1.0}])
    b = Results([{"site": "emb", "layer": 0, "example": 3, "position": 1, "token": "fine", "metric": "y",
                  "value": 2.0}])
    df = pd.concat([a.to_frame(), b.to_frame()], ignore_index=True)
    assert str(df["layer"].dtype) == "Int64" and df["layer"].tolist() == [1, 0]
