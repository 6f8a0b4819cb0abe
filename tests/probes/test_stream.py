"""Streamed linear probes: bounded memory, the same results whatever the budget, exact intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import probekit
from probekit.data import build_task
from probekit.probes import ProbeSuite, _stream, bootstrap_ci, extract_task
from probekit.probes._stream import fit_streamed, parse_bytes
from tests.conftest import tiny_config
from tests.data.conftest import UD_SAMPLE_DEV

SEEDS = (0, 1)
N_BOOT = 100


@pytest.fixture(scope="module")
def tasks():
    return [build_task(name, "ud", path=UD_SAMPLE_DEV, limit=120) for name in ("upos", "deprel")]


@pytest.fixture(scope="module")
def store(tasks, tmp_path_factory):
    model = probekit.load_model(tiny_config("bert"), seed=0)
    return extract_task(model, tasks[0], tmp_path_factory.mktemp("stream") / "s", dtype="float16", progress=False)


def _frame(suite, store):
    df = suite.run({"tiny": store}).to_frame()
    return df.sort_values(["task", "site", "probe", "seed", "metric"], na_position="first").reset_index(drop=True)


@pytest.fixture()
def small_blocks(monkeypatch):
    monkeypatch.setattr(_stream, "BLOCK_ROWS", 128)


def test_a_store_larger_than_the_budget_gives_the_in_memory_results(tasks, store, small_blocks):
    words = store["emb"].rows("word", "mean")
    budget = 3 * words.itemsize * 128  # 3 blocks of 128 rows: far less than one layer's rows
    assert words.n * words.itemsize > 5 * budget
    small = ProbeSuite(tasks, seeds=SEEDS, n_boot=N_BOOT, memory_budget=budget)
    big = ProbeSuite(tasks, seeds=SEEDS, n_boot=N_BOOT, memory_budget="4GB")
    a, b = _frame(small, store), _frame(big, store)
    pd.testing.assert_frame_equal(a, b)
    assert small.profile_["peak_cache_bytes"] <= budget
    assert big.profile_["peak_cache_bytes"] > budget  # everything was cached in memory


def test_intervals_are_exact_bootstraps_of_the_predictions(tasks, store):
    suite = ProbeSuite(tasks[0], seeds=SEEDS, n_boot=N_BOOT)
    df = suite.run({"tiny": store}).to_frame()
    row = df[(df.metric == "macro_f1") & (df.seed == 1) & (df.site == "L1.resid") & (df.task == "upos.control")]
    pred = suite.predictions_[("tiny", None, "upos.control", "L1.resid", "linear", 1)]
    ci = bootstrap_ci(suite.truth_[("tiny", None, "upos.control")], pred, "macro_f1", n_boot=N_BOOT, random_state=1)
    assert (row.value.item(), row.ci_low.item(), row.ci_high.item()) == (ci.estimate, ci.low, ci.high)


def test_close_to_the_in_memory_path(tasks, store):
    streamed = ProbeSuite(tasks[0], seeds=(0,), n_boot=N_BOOT).run({"tiny": store}).to_frame()
    memory = ProbeSuite(tasks[0], seeds=(0,), n_boot=N_BOOT, stream=False).run({"tiny": store}).to_frame()
    key = ["task", "site", "metric"]
    m = streamed[streamed.metric == "accuracy_mean"].merge(memory[memory.metric == "accuracy_mean"], on=key)
    assert len(m) == 2 * len(store.sites)  # task and control at every site
    assert np.abs(m.value_x - m.value_y).max() < 0.05  # two optimisers of one convex objective
    assert (m[m.task == "upos"].value_x > 0.3).all()


def test_tasks_of_the_same_rows_share_one_pass(tasks, store, monkeypatch):
    calls = []
    real = _stream.fit_streamed

    def counting(*args, **kwargs):
        calls.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr("probekit.probes._suite.fit_streamed", counting)
    both = ProbeSuite(tasks, seeds=SEEDS, n_boot=N_BOOT).run({"tiny": store}).to_frame()
    assert calls == [4]  # upos, upos.control, deprel, deprel.control in one streamed fit
    one = ProbeSuite(tasks[0], seeds=SEEDS, n_boot=N_BOOT).run({"tiny": store}).to_frame()
    sel = ["task", "site", "seed", "metric"]
    m = both[both.task == "upos"].merge(one, on=sel)
    # each label set's columns have their own loss, gradient and stopping: the same probe up to round-off
    assert np.abs(m.value_x - m.value_y).max() < 0.01


def test_fit_streamed_seeds_and_budget():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 5000)
    X = (rng.normal(size=(5000, 6)) + 1.5 * np.eye(6)[y]).astype(np.float16)
    cfg = _stream.StreamConfig(memory_budget=1)  # nothing cached: every block read again
    fit = fit_streamed([lambda r: X[r]], 6, [y, (y + 1) % 4], [4, 4], np.arange(4000), np.arange(4000, 5000), [3, 4],
                       cfg)
    p = fit.predictions[0]
    assert [(pp == yy).mean() > 0.6 for pp, yy in zip((p[0][0], p[1][0]), (y[4000:], (y[4000:] + 1) % 4))] == [True] * 2
    assert fit.profile["peak_cache_bytes"] == 0
    assert fit.n_iter[0].shape == (2, 2)


def test_parse_bytes():
    assert parse_bytes("512MB") == 512 << 20 and parse_bytes("2 GiB") == 2 << 30 and parse_bytes(1000) == 1000
    for bad in ("lots", 0, "-1GB"):
        with pytest.raises(ValueError, match="memory_budget"):
            parse_bytes(bad)


def test_device_argument_is_used(tasks, store):
    with pytest.raises((RuntimeError, NotImplementedError)):  # the meta device holds no data: training fails there
        ProbeSuite(tasks[0], seeds=(0,), n_boot=N_BOOT, device="meta").run({"tiny": store})
    with pytest.raises(ValueError, match="'device' parameter of ProbeSuite"):  # no such device: refused when given
        ProbeSuite(tasks[0], seeds=(0,), n_boot=N_BOOT, device="meta-no-such-device")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(tasks, store):
    cpu = ProbeSuite(tasks[0], seeds=(0,), n_boot=N_BOOT, device="cpu").run({"tiny": store}).to_frame()
    gpu = ProbeSuite(tasks[0], seeds=(0,), n_boot=N_BOOT, device="cuda").run({"tiny": store}).to_frame()
    a, b = (f[f.metric == "accuracy_mean"].set_index(["task", "site"]).value for f in (cpu, gpu))
    assert np.abs(a - b.loc[a.index]).max() < 0.02
