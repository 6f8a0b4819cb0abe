"""probe_deltas: paired deltas from two fitted suites, interval-combined deltas from result tables."""

import numpy as np
import pytest
import torch

import probekit
from probekit.compare import probe_deltas
from probekit.data import build_task
from probekit.plots import diagonal_curves, probe_delta_heatmap
from probekit.probes import ProbeSuite, extract_task
from tests.conftest import tiny_config
from tests.data.conftest import UD_SAMPLE_DEV


@pytest.fixture(scope="module")
def suites(tmp_path_factory):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("deltas")
    task = build_task("upos", "ud", path=UD_SAMPLE_DEV, limit=80)
    base = probekit.load_model(tiny_config("bert"), seed=0)
    other = probekit.load_model(tiny_config("bert"), seed=0)
    with torch.no_grad():
        for p in other.blocks[1].parameters():
            p.add_(0.5 * torch.randn_like(p))
    sa = extract_task(base, task, root / "a", progress=False)
    sb = extract_task(other, task, root / "b", progress=False)
    out = []
    for store in (sa, sb):
        suite = ProbeSuite(task, "linear", seeds=(0, 1), controls=False, n_boot=200)
        res = suite.run([store])
        out.append((suite, res))
    joint = ProbeSuite(task, "linear", seeds=(0, 1), controls=False, n_boot=200)
    joint_res = joint.run({"base": sa, ("base", "variant"): sb})
    torch.set_num_threads(old)
    return out, joint_res


def test_paired_deltas_from_suites(suites):
    (sa, ra), (sb, rb) = suites[0]
    df = probe_deltas(sa, sb, n_boot=300).to_frame()
    d = df[df.metric == "delta_accuracy"].set_index(["site", "seed"])
    acc_a = ra.to_frame().query("metric == 'accuracy'").set_index(["site", "seed"])["value"]
    acc_b = rb.to_frame().query("metric == 'accuracy'").set_index(["site", "seed"])["value"]
    for (site, seed), row in d.iterrows():
        assert row["value"] == pytest.approx(acc_b[(site, seed)] - acc_a[(site, seed)], abs=1e-12)
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    assert (df["site"] == df["site_b"]).all()  # same-named sites by default
    # the untouched layers are identical in both models: zero delta, zero-width interval
    emb = d.loc[("emb", 0)]
    assert emb["value"] == 0 and emb["ci_low"] == 0 and emb["ci_high"] == 0
    # the perturbed layer's seed-mean delta is the mean of the per-seed deltas
    mean = df[(df.metric == "delta_accuracy_mean") & (df.site == "L1.resid")].iloc[0]
    per_seed = d.loc["L1.resid"]["value"]
    assert mean["value"] == pytest.approx(per_seed.mean())
    assert {"mcnemar_p", "accuracy_a", "accuracy_b"} <= set(df.metric)
    # the same point estimates as the joint suite's delta vs reference
    joint = suites[1].to_frame().query("metric == 'delta_accuracy_vs_reference' and seed == 0").set_index("site")
    for site, row in d.xs(0, level="seed").iterrows():
        assert row["value"] == pytest.approx(joint.loc[site, "value"], abs=1e-12)


def test_self_delta_is_zero_and_layer_map_is_used(suites):
    (sa, _), (sb, _) = suites[0]
    df = probe_deltas(sa, sa, n_boot=50).to_frame()
    assert np.allclose(df[df.metric.str.startswith("delta")][["value", "ci_low", "ci_high"]], 0)
    mapped = probe_deltas(sa, sb, layer_map={"L0.resid": "L1.resid"}, n_boot=50).to_frame()
    # rows are on A's layer axis (A's L0.resid is layer 1; today's main gave B's layer, 2), B's site beside it
    assert set(mapped.site) == {"L0.resid"} and set(mapped.site_b) == {"L1.resid"} and set(mapped.layer) == {1}
    with pytest.raises(ValueError, match="did not cover"):
        probe_deltas(sa, sb, layer_map={"L7.resid": "L1.resid"})


def test_deltas_from_tables_combine_intervals(suites):
    (sa, ra), (sb, rb) = suites[0]
    df = probe_deltas(ra, rb).to_frame()
    assert set(df.metric) == {"delta_accuracy_mover", "delta_accuracy_mean_mover", "accuracy_a", "accuracy_b"}
    fa = ra.to_frame().query("metric == 'accuracy'").set_index(["site", "seed"])
    fb = rb.to_frame().query("metric == 'accuracy'").set_index(["site", "seed"])
    for _, row in df[df.metric == "delta_accuracy_mover"].iterrows():
        a, b = fa.loc[(row.site, row.seed)], fb.loc[(row.site_b, row.seed)]
        assert row.layer == a.layer
        assert row.value == pytest.approx(b.value - a.value)
        # never narrower than either model's own interval
        assert row.value - row.ci_low >= max(b.value - b.ci_low, a.ci_high - a.value) - 1e-12
        assert row.ci_high - row.value >= max(b.ci_high - b.value, a.value - a.ci_low) - 1e-12
    with pytest.raises(TypeError, match="not one of each"):
        probe_deltas(sa, rb)


def test_delta_heatmap_and_diagonal_plots(suites):
    (sa, _), (sb, _) = suites[0]
    df = probe_deltas(sa, sb, n_boot=50).to_frame()
    fig = probe_delta_heatmap(df)
    assert len(fig.axes) == 2  # panel + colour bar
    with pytest.raises(ValueError, match="no seed-mean delta rows"):
        probe_delta_heatmap(df[df.metric == "mcnemar_p"])
    frame = df.assign(metric="linear_cka:sentence", value=0.5)
    fig = diagonal_curves(frame)
    assert len(fig.axes[0].lines) == 1
    with pytest.raises(ValueError, match="no aligned-layer rows for measure 'svcca'"):
        diagonal_curves(frame, measure="svcca")
