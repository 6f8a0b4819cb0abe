"""Extract once, analyse many: task stores derived from a token-level store, each sentence run through a model once."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import transformers

import probekit
from probekit.data import build_task
from probekit.probes import ProbeSuite, extract_task, extract_tasks, random_init_copy
from probekit.store import FingerprintMismatchError
from tests.conftest import overflowing_model, tiny_config

N = 24


@pytest.fixture(scope="module")
def model():
    return probekit.load_model(transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                       intermediate_size=37), seed=0)


@pytest.fixture(scope="module")
def tasks():
    # sentiment and upos share the RT sentences; bigramshift rewrites half of them
    return [build_task(t, "rt", limit=N) for t in ("sentiment", "bigramshift", "upos", "deprel")]


class Counting:
    """Counts how often each sentence (its token ids) goes through the model's forward.

    The one-word forward extract runs to learn the sites' widths is not counted.
    """

    def __init__(self, model, monkeypatch):
        self.seen: Counter = Counter()
        inner = model.forward_rows
        sniff = tuple(model.tokenize(["probe"]).windows[0].row_ids)

        def forward_rows(rows, **kw):
            self.seen.update(tuple(r) for r in rows if tuple(r) != sniff)
            return inner(rows, **kw)

        monkeypatch.setattr(model, "forward_rows", forward_rows)


def _main(model, tasks, path):
    words = [list(w) for w in tasks[2].dataset.word_lists()]  # the experiment's sentences, token rows kept
    return probekit.extract(model, words, out=path, dtype="float32", progress=False)


def test_each_sentence_runs_once(model, tasks, tmp_path, monkeypatch):
    main = _main(model, tasks, tmp_path / "main")
    count = Counting(model, monkeypatch)
    groups = extract_tasks(model, tasks, tmp_path / "tasks", sources=[main], progress=False)
    assert [[t.name for t in g] for g, _ in groups] == [["sentiment", "upos", "deprel"], ["bigramshift"]]
    main_words = {tuple(w) for w in main.examples["words"]}
    shifted = {tuple(w) for w in tasks[1].dataset.word_lists()} - main_words
    assert 0 < len(shifted) < N
    # only the rewritten sentences ran, once each
    assert sum(count.seen.values()) == len(count.seen) == len(shifted)
    extracted = probekit.ActivationStore.open(tmp_path / "tasks" / "@extracted")
    assert {tuple(w) for w in extracted.examples["words"]} == shifted
    assert extracted.settings["tokens"] is False and extracted.settings["word_pooling"] == []
    # each group keeps the rows its tasks read
    stores = {g[0].name: st for g, st in groups}
    assert stores["sentiment"].settings["word_pooling"] == stores["sentiment"].settings["sentence_pooling"] == ["mean"]
    assert stores["bigramshift"].settings["word_pooling"] == []
    assert all(st.manifest["stats"]["derived"] for st in stores.values())

    # a re-run reuses everything and runs nothing
    count.seen.clear()
    extract_tasks(model, tasks, tmp_path / "tasks", sources=[main], progress=False)
    assert not count.seen


def test_random_copy_runs_each_task_sentence_once(model, tasks, tmp_path, monkeypatch):
    rand = random_init_copy(model, seed=3)
    count = Counting(rand, monkeypatch)
    groups = extract_tasks(rand, tasks, tmp_path / "random", progress=False)
    distinct = {tuple(w) for t in tasks for w in t.dataset.word_lists()}
    assert sum(count.seen.values()) == len(count.seen) == len(distinct)
    store = probekit.ActivationStore.open(tmp_path / "random" / "@extracted")
    assert store.settings["tokens"] is False  # a baseline keeps pooled rows only
    assert len(groups) == 2


def test_derived_rows_match_direct_extraction(model, tasks, tmp_path):
    main = _main(model, tasks, tmp_path / "main")
    groups = {t.name: st for g, st in extract_tasks(model, tasks, tmp_path / "tasks", sources=[main],
                                                    dtype="float32", progress=False)
              for t in g}
    for name, level in (("upos", "word"), ("sentiment", "sentence"), ("bigramshift", "sentence")):
        task = next(t for t in tasks if t.name == name)
        direct = extract_task(model, task, tmp_path / f"direct-{name}", dtype="float32", progress=False)
        for s in ("emb", "L0.resid", "L1.resid"):
            np.testing.assert_allclose(groups[name][s].numpy(level), direct[s].numpy(level), atol=2e-5)


def test_suite_results_on_derived_stores(model, tasks, tmp_path):
    main = _main(model, tasks, tmp_path / "main")
    [(members, store)] = [g for g in extract_tasks(model, tasks[2:], tmp_path / "tasks", sources=[main],
                                                   progress=False)]
    direct = extract_task(model, tasks[2], tmp_path / "direct", progress=False)
    a = ProbeSuite(members, seeds=(0,), n_boot=10).run({"m": store}).to_frame()
    b = ProbeSuite(members, seeds=(0,), n_boot=10).run({"m": direct}).to_frame()
    acc = "accuracy_mean"
    np.testing.assert_allclose(a[a.metric == acc].value.to_numpy(), b[b.metric == acc].value.to_numpy(), atol=0.02)


def test_a_source_of_another_model_is_refused(model, tasks, tmp_path):
    main = _main(model, tasks, tmp_path / "main")
    with pytest.raises(FingerprintMismatchError, match="other model weights"):
        extract_tasks(random_init_copy(model, seed=3), tasks, tmp_path / "tasks", sources=[main], progress=False)


def test_task_stores_are_float16_unless_a_value_overflows_it(tasks, tmp_path, caplog):
    """The task stores default to float16; a model whose activations go beyond its range gets float32 stores
    (and a warning) instead of rows of inf, while an explicit float16 is an error."""
    import logging

    from probekit.store import Float16OverflowError

    small = probekit.load_model(tiny_config("bert"), seed=0)
    [(_, st)] = extract_tasks(small, tasks[2:], tmp_path / "plain", progress=False)
    assert st.manifest["settings"]["dtype"] == "float16"
    assert extract_task(small, tasks[2], tmp_path / "one", progress=False).manifest["settings"]["dtype"] == "float16"
    small = overflowing_model()  # the same model with its layer norms scaled by 1e6
    with pytest.raises(Float16OverflowError, match="float16's range"):
        extract_tasks(small, tasks[2:], tmp_path / "f16", dtype="float16", progress=False)
    with caplog.at_level(logging.WARNING, logger="probekit.probes._task_store"):
        [(_, big)] = extract_tasks(small, tasks[2:], tmp_path / "auto", progress=False)
    assert big.manifest["settings"]["dtype"] == "float32" and "in float32 instead" in caplog.text
    with pytest.raises(Float16OverflowError, match="float16's range"):  # one task: the same rule
        extract_task(small, tasks[2], tmp_path / "one", dtype="float16", overwrite=True, progress=False)
    one = extract_task(small, tasks[2], tmp_path / "one", progress=False)
    assert one.manifest["settings"]["dtype"] == "float32"
    rows = big["L1.resid"].numpy("word", "mean")
    assert np.isfinite(rows).all() and np.abs(rows).max() > 65504
