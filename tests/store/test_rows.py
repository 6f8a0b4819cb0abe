"""RowReader: selected rows of a stored level, read without keeping the store mapped."""

from __future__ import annotations

import numpy as np
import pytest

import probekit
from probekit.store import RowReader
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    model = probekit.load_model(tiny_config("bert"), seed=0)
    texts = [f"the cat number {i} sat on mat {i % 3} today" for i in range(23)]
    return probekit.extract(model, texts, ["emb", "L1.resid"], tmp_path_factory.mktemp("rows") / "s",
                            dtype="float16", shard_size=5, word_pooling=("mean",), sentence_pooling=("mean",),
                            progress=False)


@pytest.mark.parametrize("level", ["token", "word", "sentence"])
def test_rows_match_numpy_across_shards(sharded, level):
    view = sharded["L1.resid"]
    full = np.asarray(view.numpy(level, None if level == "token" else "mean"))
    reader = view.rows(level, None if level == "token" else "mean")
    assert isinstance(reader, RowReader) and len(sharded._sidecars) > 1
    assert (reader.n, reader.d, reader.dtype) == (full.shape[0], full.shape[1], np.float16)
    rng = np.random.default_rng(0)
    for rows in (np.arange(reader.n), np.arange(3, 17), rng.permutation(reader.n)[:11], np.array([4, 4, 0])):
        got = reader.read(rows)
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, full[rows])
    np.testing.assert_array_equal(reader.read([1, 2], dtype=np.float32), full[[1, 2]].astype(np.float32))


def test_rows_keep_nothing_mapped(sharded):
    reader = sharded["emb"].rows("word", "mean")
    reader.read(np.arange(reader.n))
    assert not any(k[1] == reader.name for k in sharded._maps)


def test_rows_errors(sharded):
    reader = sharded["emb"].rows("sentence", "mean")
    with pytest.raises(IndexError, match="out of range"):
        reader.read([reader.n])
    with pytest.raises(KeyError, match="no stored word rows pooled by 'first'"):
        sharded["emb"].rows("word", "first")
    with pytest.raises(ValueError, match="level must be"):
        sharded["emb"].rows("paragraph")


@pytest.mark.parametrize(("level", "how"), [("word", "mean"), ("word", "first"), ("sentence", "mean"),
                                            ("sentence", "last"), ("token", None)])
def test_one_reader_gives_probes_and_erasers_the_same_rows(sharded, level, how):
    from probekit.interventions._rows import resolve_rows
    from probekit.probes._task_store import _level_reader

    view = sharded["L1.resid"]
    full = np.asarray(view.numpy(level, how))  # stored, or pooled into memory
    reader = view.reader(level, how)
    stored = how in (None, "mean")
    assert isinstance(reader, RowReader) == stored and (reader.n, reader.d) == full.shape
    rows = np.random.default_rng(1).permutation(reader.n)[: reader.n // 2]
    np.testing.assert_array_equal(reader.read(rows), full[rows])
    if how == "mean":  # probes read mean-pooled rows
        read, d = _level_reader(sharded, "L1.resid", level)
        assert d == reader.d
        np.testing.assert_array_equal(read(rows), full[rows])
    labels = np.arange(reader.n) % 2
    fitted = resolve_rows(sharded, labels, site="L1.resid", level=level, pooling=how, rows=np.sort(rows))
    chunks = list(fitted.chunks(7))
    assert max(len(x) for x, _ in chunks) == 7
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in chunks]), full[np.sort(rows)])
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), labels[np.sort(rows)])


def test_pooled_reader_refuses_rows_out_of_range(sharded):
    reader = sharded["emb"].reader("word", "last")
    with pytest.raises(IndexError, match="out of range"):
        reader.read([reader.n])
