"""Derived stores: pooled rows of some examples, taken from stores of the same model without a forward pass."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import probekit
from probekit.model import pool_sentence, pool_words
from probekit.store import (
    ActivationStore,
    CorruptShardError,
    FingerprintMismatchError,
    MissingExamplesError,
    StoreError,
    derive,
    find_examples,
)
from tests.store._common import WORDS, store_files, tiny_model

SITES = ["emb", "L0.resid", "L1.resid"]


def _sentences(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(WORDS) for _ in range(rng.randint(2, 14))] for _ in range(n)]


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def sents():
    return _sentences(30, 0)


@pytest.fixture(scope="module")
def full(model, sents, tmp_path_factory):
    """Token rows and the pooled rows extract computes from the same forward, float32."""
    out = tmp_path_factory.mktemp("full") / "s"
    return probekit.extract(model, sents, SITES, out, dtype="float32", word_pooling=("mean", "first"),
                            sentence_pooling=("mean", "cls"), shard_size=8, progress=False)


def test_rows_equal_extract_pooling_of_the_same_forward(full, sents, tmp_path):
    """Pooling the stored float32 token rows gives exactly the rows extract pooled from the forward."""
    want = [9, 3, 3, 27, 0]  # reordered, repeated
    d = derive(full, [sents[i] for i in want], tmp_path / "d", word_pooling=("mean", "first"),
               sentence_pooling=("mean", "cls"), shard_size=2)
    assert d.n_examples == len(want) and d.settings["tokens"] is False
    assert list(d.n_words) == [len(sents[i]) for i in want]
    for s in SITES:
        for how in ("mean", "first"):
            got = d[s].numpy("word", how)
            ref = np.concatenate([full[s].words(i, how) for i in want])
            np.testing.assert_array_equal(got, ref)
        for how in ("mean", "cls"):
            np.testing.assert_array_equal(d[s].sentences(how), full[s].sentences(how)[want])
    for e, i in enumerate(want):  # the alignment travels with the rows
        assert d.words(e) == sents[i]
        np.testing.assert_array_equal(d.input_ids(e), full.input_ids(i))
        assert d.word_spans(e) == full.word_spans(i)
    with pytest.raises(KeyError, match="token rows were not stored"):
        d["L0.resid"].example(0)


def test_pooled_from_token_rows_only(model, sents, full, tmp_path):
    """A source without pooled rows is pooled here, as extract would pool the same token rows."""
    tok = probekit.extract(model, sents[:12], SITES, tmp_path / "tok", dtype="float32", progress=False)
    d = derive(tok, sents[2:12], tmp_path / "d")
    for j, i in enumerate(range(2, 12)):
        x = torch.from_numpy(np.asarray(tok["L1.resid"].example(i)))
        np.testing.assert_array_equal(d["L1.resid"].words(j), pool_words(x, tok.word_spans(i), "mean").numpy())
        np.testing.assert_array_equal(d["L1.resid"].sentences()[j], pool_sentence(x, "mean").numpy())
    # the same forward (another batch plan, so not bit-equal) as a direct pooled extraction
    direct = probekit.extract(model, sents[2:12], SITES, tmp_path / "direct", dtype="float32", tokens=False,
                              word_pooling=("mean",), sentence_pooling=("mean",), progress=False)
    np.testing.assert_allclose(d["L1.resid"].numpy("word"), direct["L1.resid"].numpy("word"), atol=2e-5)


def test_several_sources_and_float16(model, sents, full, tmp_path):
    extra = _sentences(5, 1)
    pooled = probekit.extract(model, extra, SITES, tmp_path / "extra", dtype="float32", tokens=False,
                              word_pooling=("mean",), sentence_pooling=(), progress=False)
    data = [extra[2], sents[4], extra[0], sents[4]]
    src, ex = find_examples([full, pooled], data)
    assert src.tolist() == [1, 0, 1, 0] and ex.tolist() == [2, 4, 0, 4]
    d32 = derive([full, pooled], data, tmp_path / "d32", sentence_pooling=())
    d16 = derive([full, pooled], data, tmp_path / "d16", sentence_pooling=(), dtype="float16")
    assert d16.dtype == np.float16 and d16.fingerprint != d32.fingerprint
    np.testing.assert_array_equal(d32["emb"].words(0), pooled["emb"].words(2))
    np.testing.assert_array_equal(d32["emb"].words(1), full["emb"].words(4))
    np.testing.assert_array_equal(d16["L0.resid"].numpy("word"), d32["L0.resid"].numpy("word").astype(np.float16))
    # the pooled-only source cannot give sentence rows it did not store
    with pytest.raises(StoreError, match="neither token rows nor sentence rows"):
        derive([full, pooled], data, tmp_path / "bad")


def test_missing_example_writes_nothing(full, sents, tmp_path):
    out = tmp_path / "d"
    with pytest.raises(MissingExamplesError, match=r"2 of 3 examples are in none of the source stores, first "
                                                   r"example 1: 'never seen'") as info:
        derive(full, [sents[0], ["never", "seen"], ["nor", "this"]], out)
    assert info.value.missing == [1, 2]
    assert not out.exists()


def test_texts_match_texts_not_words(model, tmp_path):
    texts = ["a film , good", "the plot"]
    st = probekit.extract(model, texts, SITES, tmp_path / "texts", dtype="float32", progress=False)
    d = derive(st, ["the plot"], tmp_path / "d")
    np.testing.assert_array_equal(d["emb"].sentences()[0], np.asarray(st["emb"].sentences()[1]))
    # the same words, pre-split, tokenize another way: not looked up among texts
    with pytest.raises(MissingExamplesError):
        derive(st, [["the", "plot"]], tmp_path / "d2")


def test_sources_of_other_models_refused(model, sents, full, tmp_path):
    other = probekit.load_model(model.config, tokenizer=model.tokenizer, seed=1)
    o = probekit.extract(other, sents[:3], SITES, tmp_path / "o", dtype="float32", progress=False)
    with pytest.raises(StoreError, match="differ in 'weights'"):
        derive([full, o], sents[:3], tmp_path / "d")


def test_fingerprint_checks_like_an_extracted_store(model, full, sents, tmp_path):
    d = derive(full, sents[:4], tmp_path / "d")
    ActivationStore.open(d.path, model=model, data=sents[:4])
    other = probekit.load_model(model.config, tokenizer=model.tokenizer, seed=1)
    with pytest.raises(FingerprintMismatchError, match="other model weights"):
        ActivationStore.open(d.path, model=other)
    with pytest.raises(FingerprintMismatchError, match="other data"):
        ActivationStore.open(d.path, data=sents[:3])
    # other examples at the same place: refused unless overwrite
    with pytest.raises(FingerprintMismatchError):
        derive(full, sents[:5], tmp_path / "d")
    assert derive(full, sents[:5], tmp_path / "d", overwrite=True).n_examples == 5


def test_resumes_and_repairs_to_the_same_bytes(full, sents, tmp_path):
    out = tmp_path / "d"
    derive(full, sents, out, shard_size=8)
    before = store_files(out)
    (out / "shards" / "00002.json").unlink()  # as if killed before shard 2 was committed
    side = json.loads((out / "shards" / "00001.json").read_text())
    name = next(iter(side["streams"].values()))["file"]
    with open(out / "shards" / "00001" / name, "r+b") as fh:  # a flipped byte
        fh.seek(5)
        b = fh.read(1)
        fh.seek(5)
        fh.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(CorruptShardError):
        ActivationStore.open(out, verify="full")
    again = derive(full, sents, out, shard_size=8)
    assert again.manifest["stats"]["shards_computed"] == 2 and again.manifest["stats"]["shards_reused"] == 2
    assert store_files(out) == before
    ActivationStore.open(out, verify="full")


def test_refuses_a_foreign_folder(full, sents, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="notes.txt"):
        derive(full, sents[:2], out, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"


def test_bad_arguments(full, sents, tmp_path):
    with pytest.raises(ValueError, match="pooled rows only"):
        derive(full, sents[:2], tmp_path / "a", word_pooling=(), sentence_pooling=())
    with pytest.raises(ValueError, match="word_pooling entries"):
        derive(full, sents[:2], tmp_path / "b", word_pooling=("max",))
    with pytest.raises(StoreError, match="site L5.resid is not in the source store"):
        derive(full, sents[:2], tmp_path / "c", ["L5.resid"])
    with pytest.raises(ValueError, match="attention pattern"):
        derive(full, sents[:2], tmp_path / "e", ["L0.attn.pattern"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pooling on a GPU needs CUDA (none on this machine)")
def test_pooling_on_cuda(full, sents, tmp_path):
    cpu = derive(full, sents[:10], tmp_path / "cpu", word_pooling=("mean", "first"), sentence_pooling=("mean",))
    gpu = derive(full, sents[:10], tmp_path / "gpu", word_pooling=("mean", "first"), sentence_pooling=("mean",),
                 device="cuda")
    for s in SITES:
        for level, how in (("word", "mean"), ("word", "first"), ("sentence", "mean")):
            np.testing.assert_allclose(gpu[s].numpy(level, how), cpu[s].numpy(level, how), rtol=1e-5, atol=1e-6)
