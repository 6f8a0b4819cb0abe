"""Readers: values equal run_with_cache, pooled views, metadata, data formats, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import probekit
from probekit.cli import main
from probekit.model._pooling import pool_sentence, pool_words
from probekit.store import ActivationStore

SITES = ["emb", "L0.resid", "L1.resid", "L1.mlp.hidden", "L0.attn.pattern"]


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny, texts):
    out = tmp_path_factory.mktemp("readers") / "store"
    frame = pd.DataFrame({"text": texts, "label": [i % 2 for i in range(len(texts))],
                          "id": [f"ex{i}" for i in range(len(texts))]})
    return probekit.extract(tiny, frame, SITES, out, shard_size=24, batch_tokens=300, word_pooling=["mean", "first"],
                            sentence_pooling=["cls", "mean"], progress=False)


@pytest.fixture(scope="module")
def cache(tiny, texts):
    return tiny.run_with_cache(texts, SITES)


def test_token_rows_equal_run_with_cache(store, cache, texts):
    for site in ["emb", "L0.resid", "L1.resid", "L1.mlp.hidden"]:
        view = store[site]
        assert len(view) == len(texts)
        for i, ref in enumerate(cache.examples(site)):
            got = view[i]
            assert got.dtype == np.float16 and got.shape == tuple(ref.shape)
            np.testing.assert_allclose(got.astype(np.float32), ref.numpy(), rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(view.numpy().astype(np.float32), torch.cat(cache.examples(site)).numpy(),
                                   rtol=2e-3, atol=2e-3)


def test_attention_patterns_unpadded(store, cache):
    for i, ref in enumerate(cache.examples("L0.attn.pattern")):
        got = store["L0.attn.pattern"][i]
        assert got.shape == tuple(ref.shape)
        np.testing.assert_allclose(got.astype(np.float32), ref.numpy(), atol=1e-3)
        np.testing.assert_allclose(got.astype(np.float32).sum(-1), 1.0, atol=5e-3)
        np.testing.assert_array_equal(store["L0.attn.pattern.h3"][i], got[3])
    with pytest.raises(TypeError, match="attention pattern"):
        store["L0.attn.pattern"].numpy()


def test_pooled_views_equal_pooling_of_token_rows(store, cache):
    view = store["L1.resid"]
    ex = cache.batch.examples
    for i, x in enumerate(cache.examples("L1.resid")):
        for how in ("mean", "first"):
            ref = pool_words(x, ex[i].word_spans(), how).numpy()
            np.testing.assert_allclose(view.words(i, how).astype(np.float32), ref, rtol=2e-3, atol=2e-3)
        # pooling the stored float16 token rows on the fly agrees too
        tok = torch.from_numpy(view[i].astype(np.float32))
        np.testing.assert_allclose(view.words(i, "mean").astype(np.float32),
                                   pool_words(tok, store.word_spans(i), "mean").numpy(), atol=3e-3)
    sent = view.sentences("mean")
    assert sent.shape == (len(view), view.d)
    ref = torch.stack([pool_sentence(x, "mean") for x in cache.examples("L1.resid")]).numpy()
    np.testing.assert_allclose(sent.astype(np.float32), ref, rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(view.sentences("cls"), view.numpy()[np.r_[0, np.cumsum(store.n_tokens)[:-1]]])
    words = view.numpy("word", "mean")
    assert words.shape == (int(store.n_words.sum()), view.d)
    assert len(view.example_of_row("word")) == len(words)


def test_word_level_reads_do_not_touch_token_rows(store):
    fresh = ActivationStore.open(store.path)
    fresh["L1.resid"].numpy("word", "mean")
    fresh["L1.resid"].sentences("cls")
    assert not any(name.endswith(".tok") for _, name in fresh._checked)


def test_batches_torch_views_and_metadata(store, texts):
    view = store["L0.resid"]
    seen = []
    for b in view.iter_batches(batch_size=25, level="token", as_torch=True):
        assert isinstance(b.x, torch.Tensor) and b.x.shape[0] == len(b.example_of_row)
        seen.extend(b.examples.tolist())
    assert seen == list(range(len(texts)))
    sb = next(view.iter_batches(batch_size=10, level="sentence", how="mean"))
    assert sb.x.shape == (10, view.d)
    t = view.torch("word", "first")
    assert t.dtype == torch.float16 and t.shape == (int(store.n_words.sum()), 32)
    df = store.examples
    assert list(df["id"][:2]) == ["ex0", "ex1"] and list(df["label"][:3]) == [0, 1, 0]
    assert list(df["text"]) == texts
    assert (df["n_tokens"] == [len(store.input_ids(i)) for i in range(len(df))]).all()
    assert store.words(0) == texts[0].split()
    assert "L1.resid" in store and "L1.mlp.out" not in store
    with pytest.raises(KeyError, match="not in this store"):
        store["L1.mlp.out"]
    with pytest.raises(IndexError):
        view.example(len(texts))
    assert view[-1].shape == view.example(len(texts) - 1).shape
    assert len(view[2:5]) == 3


def test_pre_split_words_and_long_inputs(tmp_path, tiny):
    words = [["New", "York", "is", "big"], ["unbelievably", "good"]]
    st = probekit.extract(tiny, words, ["L1.resid"], tmp_path / "w", word_pooling=["last"], progress=False)
    assert st.words(0) == words[0] and st["L1.resid"].words(1).shape == (2, 32)
    assert st.examples["words"][0] == words[0]
    long = [" ".join(["word"] * 700), "short text"]
    with pytest.raises(ValueError, match="long_inputs='window'"):
        probekit.extract(tiny, long, ["L1.resid"], tmp_path / "l", progress=False)
    st = probekit.extract(tiny, long, ["L1.resid"], tmp_path / "l2", long_inputs="window", progress=False)
    ref = tiny.run_with_cache(long, ["L1.resid"], long_inputs="window")
    np.testing.assert_allclose(st["L1.resid"][0].astype(np.float32), ref.examples("L1.resid")[0].numpy(),
                               rtol=2e-3, atol=2e-3)


def test_bad_input_is_a_clear_error(tmp_path, tiny):
    with pytest.raises(ValueError, match="input 1 is empty"):
        probekit.extract(tiny, ["ok", "  "], None, tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="'text' or a 'words' column"):
        probekit.extract(tiny, pd.DataFrame({"sentence": ["x"]}), None, tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="dtype"):
        probekit.extract(tiny, ["x"], None, tmp_path / "c", dtype="int8", progress=False)
    with pytest.raises(ValueError, match="did you mean"):
        probekit.extract(tiny, ["x"], ["L1.rsid"], tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="word_pooling"):
        probekit.extract(tiny, ["x"], None, tmp_path / "e", word_pooling=["max"], progress=False)
    assert not (tmp_path / "a").exists()


def test_bf16_autocast_runs(tmp_path, tiny, texts):
    st = probekit.extract(tiny, texts[:10], ["L1.resid"], tmp_path / "bf", autocast="bf16", progress=False)
    ref = tiny.run_with_cache(texts[:10], ["L1.resid"]).examples("L1.resid")[0].numpy()
    np.testing.assert_allclose(st["L1.resid"][0].astype(np.float32), ref, atol=0.1)


@pytest.mark.slow
def test_cli_extract_on_real_rotten_tomatoes(tmp_path):
    out = tmp_path / "rt"
    runner = CliRunner()
    args = ["extract", "--data", "rt", "--limit", "40", "--sites", "emb,L5.resid", "--out", str(out),
            "--sentence-pooling", "mean", "--shard-size", "16", "--no-progress"]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "40 examples" in res.output and "3 shards computed" in res.output
    st = ActivationStore.open(out, verify="full")
    assert st["L5.resid"].example(0).shape[1] == 384
    assert {"id", "text", "label", "source", "n_tokens"} <= set(st.examples.columns)
    res = runner.invoke(main, args)
    assert res.exit_code == 0 and "0 shards computed, 3 reused" in res.output
    res = runner.invoke(main, args + ["--limit", "41"])
    assert res.exit_code != 0 and "other inputs: data" in res.output
    res = runner.invoke(main, ["extract", "--data", "nope.tsv", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "neither a known corpus" in res.output
