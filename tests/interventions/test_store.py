"""Erasers fitted from a real store of a tiny random BERT equal erasers fitted from the same rows in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import probekit
from probekit.data import build_task
from probekit.interventions import InlpEraser, LeaceEraser, RandomEraser
from probekit.probes import extract_task
from tests.conftest import tiny_config
from tests.data.conftest import UD_SAMPLE
from tests.store._common import make_texts

NOUNS = set("film movie plot actor scene story director camera music score ending beginning character dialogue "
            "script".split())
ADJECTIVES = set("good bad great boring funny sad long short remarkable dull charming clever predictable "
                 "moving".split())


def word_class(w: str) -> str:
    return "noun" if w in NOUNS else "adj" if w in ADJECTIVES else "other"


@pytest.fixture(scope="module")
def tiny_bert():
    return probekit.load_model(tiny_config("bert"), seed=0)


@pytest.fixture(scope="module")
def store(tiny_bert, tmp_path_factory):
    texts = make_texts(60, seed=3, max_words=25)
    return probekit.extract(tiny_bert, [t.split() for t in texts], ["emb", "L1.resid", "L0.attn.pattern"],
                            tmp_path_factory.mktemp("erase") / "store", dtype="float16", word_pooling=("mean",),
                            sentence_pooling=("mean",), shard_size=16, progress=False)


def word_labels(store) -> np.ndarray:
    return np.array([word_class(w) for ws in store.examples["words"] for w in ws])


def assert_same_eraser(a, b, X):
    """Same eraser up to float64 rounding. Layer-normed fp16 rows have one near-null covariance direction
    (eigenvalue ~1e-8 of ~2: the normalisation's constraint, broken only by fp16 rounding), which the oblique
    projection amplifies; chunked and one-pass sums then agree to ~1e-8 relative, the erased rows to ~1e-9."""
    pa, pb = a.left_ @ a.right_, b.left_ @ b.right_
    torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-6 * float(pb.abs().max()))
    torch.testing.assert_close(a.bias_, b.bias_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a(X), b(X), rtol=0, atol=1e-8)
    assert a.classes_ == b.classes_ and a.rank_ == b.rank_


def test_word_rows_streamed_from_store_equal_in_memory(store):
    assert store.manifest["n_shards"] > 1
    y = word_labels(store)
    X = np.asarray(store["L1.resid"].numpy("word"), dtype=np.float64)
    streamed = LeaceEraser("L1.resid", chunk_rows=50).fit(store, y)
    memory = LeaceEraser().fit(X, y)
    assert_same_eraser(streamed, memory, X)
    assert streamed.rank_ == 2 and str(streamed.site_) == "L1.resid"
    fit = streamed.fit_info_
    assert (fit["source"], fit["store_fingerprint"], fit["level"], fit["pooling"], fit["rows"]) == (
        "store", store.fingerprint, "word", "mean", len(y))
    view = LeaceEraser(chunk_rows=50).fit(store["L1.resid"], y)  # a SiteView names its site
    assert_same_eraser(view, memory, X)
    assert str(view.site_) == "L1.resid"


def test_store_rows_are_read_in_bounded_chunks(store, monkeypatch):
    from probekit.interventions._leace import LeaceStatistics

    seen: list[tuple[int, object]] = []
    update = LeaceStatistics.update

    def record(self, x, codes):
        seen.append((len(x), x.dtype))
        return update(self, x, codes)

    monkeypatch.setattr(LeaceStatistics, "update", record)
    y = word_labels(store)
    longest = int(store.n_words.max())
    LeaceEraser("L1.resid", chunk_rows=3 * longest).fit(store, y)
    assert sum(n for n, _ in seen) == len(y) and len(seen) > 3
    assert max(n for n, _ in seen) <= 3 * longest
    assert {dt for _, dt in seen} == {torch.float16}  # converted to float64 by the statistics, chunk by chunk
    seen.clear()
    LeaceEraser("L1.resid", chunk_rows=5).fit(store, y)  # shorter than the longest example: rows, not examples
    assert 5 < longest and [n for n, _ in seen] == [5] * (len(y) // 5) + ([len(y) % 5] if len(y) % 5 else [])


def test_token_and_sentence_rows_and_a_row_mask(store):
    view = store["emb"]
    Xt = np.asarray(view.numpy("token"), dtype=np.float64)
    yt = np.concatenate([["special" if w < 0 else "word" + str(w % 3) for w in store.word_ids(i)]
                         for i in range(len(store))])
    assert_same_eraser(LeaceEraser("emb", chunk_rows=64).fit(store, yt, level="token"), LeaceEraser().fit(Xt, yt),
                       Xt)
    Xs = np.asarray(view.numpy("sentence"), dtype=np.float64)
    ys = (store.n_words > np.median(store.n_words)).astype(int)
    assert_same_eraser(LeaceEraser("emb", chunk_rows=7).fit(store, ys, level="sentence"), LeaceEraser().fit(Xs, ys),
                       Xs)
    y = word_labels(store)
    X = np.asarray(store["L1.resid"].numpy("word"), dtype=np.float64)
    mask = np.arange(len(y)) % 3 != 0
    masked = LeaceEraser("L1.resid", chunk_rows=40).fit(store, y, rows=mask)
    assert_same_eraser(masked, LeaceEraser().fit(X[mask], y[mask]), X)
    other = LeaceEraser("L1.resid", chunk_rows=40).fit(store, y, rows=np.flatnonzero(~mask))
    assert masked.fit_info_["rows_sha256"] != other.fit_info_["rows_sha256"]
    assert masked.fit_info_["labels_sha256"] == LeaceEraser().fit(X[mask], y[mask]).fit_info_["labels_sha256"]
    r = RandomEraser("L1.resid", rank=2).fit(store, chunk_rows=33)
    np.testing.assert_allclose(r.bias_.numpy(), X.mean(0), atol=1e-9)


def test_store_inputs_are_checked(store):
    y = word_labels(store)
    with pytest.raises(ValueError, match="needs the site"):
        LeaceEraser().fit(store, y)
    with pytest.raises(KeyError, match="L0.resid is not in store"):
        LeaceEraser("L0.resid").fit(store, y)
    with pytest.raises(ValueError, match=f"{len(y) - 1} labels for the {len(y)} word rows"):
        LeaceEraser("L1.resid").fit(store, y[:-1])
    with pytest.raises(ValueError, match="attention pattern"):
        LeaceEraser("L0.attn.pattern").fit(store, y)
    with pytest.raises(ValueError, match="level must be one of"):
        LeaceEraser("L1.resid").fit(store, y, level="words")
    with pytest.raises(ValueError, match="for in-memory features pass rows="):
        LeaceEraser().fit(np.zeros((4, 2)), [0, 1, 0, 1], level="word")


# ------------------------------------------------------------------ with a real UD task
@pytest.fixture(scope="module")
def ud_folder() -> Path:
    return UD_SAMPLE  # the bundled sample of UD English EWT (400 train / 300 dev sentences)


@pytest.fixture(scope="module")
def upos_store(tiny_bert, ud_folder, tmp_path_factory):
    task = build_task("upos", "ud", path=ud_folder, limit=60)
    return task, extract_task(tiny_bert, task, tmp_path_factory.mktemp("upos") / "s", sites=["L1.resid"],
                              dtype="float16", shard_size=32, progress=False)


def test_task_train_rows_from_store_equal_in_memory(upos_store):
    task, store = upos_store
    labels = np.array([lab for row in task.dataset.labels for lab in row])
    train = np.repeat(np.asarray(task.dataset.splits), [len(r) for r in task.dataset.labels]) == "train"
    X = np.asarray(store["L1.resid"].numpy("word"), dtype=np.float64)
    streamed = LeaceEraser("L1.resid", chunk_rows=100).fit(store, task)
    memory = LeaceEraser().fit(X[train], labels[train])
    assert_same_eraser(streamed, memory, X)
    assert streamed.fit_info_["task"] == "upos" and streamed.fit_info_["split"] == "train"
    assert streamed.rank_ == len(set(labels[train])) - 1
    Xe = streamed(X[train])
    gap = max(np.abs(Xe[labels[train] == c].mean(0) - Xe.mean(0)).max() for c in set(labels[train]))
    assert gap < 1e-8
    inlp = InlpEraser("L1.resid", n_iter=2, random_state=0).fit(store, task)
    assert inlp.fit_info_["eval"] == "task dev split"
    assert inlp.fit_info_["eval_rows"] == int((np.repeat(np.asarray(task.dataset.splits),
                                                         [len(r) for r in task.dataset.labels]) == "dev").sum())
    with pytest.raises(ValueError, match="no 'validation' split"):
        LeaceEraser("L1.resid").fit(store, task, split="validation")
    with pytest.raises(ValueError, match="a Task labels the rows of a store"):
        LeaceEraser().fit(X, task)


def test_edge_and_structural_tasks_are_refused(upos_store, ud_folder):
    _, store = upos_store
    arc = build_task("arc", "ud", path=ud_folder, limit=20)
    with pytest.raises(ValueError, match="edge-level: an eraser is fitted on the rows of one site"):
        LeaceEraser("L1.resid").fit(store, arc)


def test_a_task_without_a_train_split_says_the_eraser_fits_every_row(tmp_path):
    from probekit.data import ProbingDataset, SplitWarning, Task

    texts = [["a", "cat"], ["the", "dog"], ["one", "bird"], ["some", "fish"]]
    labels = [["DET", "NOUN"], ["DET", "NOUN"], ["NUM", "NOUN"], ["DET", "NOUN"]]
    ds = ProbingDataset.from_lists(texts, labels, level="word", splits=["dev", "dev", "test", "test"])
    task = Task("tags", "word", ds, ds.label_names, 0, "hand-made", "custom")
    store = extract_task(probekit.load_model(tiny_config("bert"), seed=0), task, tmp_path / "s", ["L1.resid"],
                         progress=False)
    with pytest.warns(SplitWarning, match=r"task 'tags' has no 'train' split \(it has dev, test\): the eraser is "
                                          r"fitted on every row"):
        eraser = LeaceEraser("L1.resid").fit(store, task)
    assert eraser.fit_info_["rows"] == 8
