"""extract's settings are checked before the store folder is made (long_inputs, stride, device; issue 25)."""

from __future__ import annotations

import numpy as np
import pytest

import probekit
from probekit.validation import InvalidParameterError
from tests.conftest import overflowing_model, tiny_config


@pytest.fixture(scope="module")
def model():
    return probekit.load_model(tiny_config("bert"), seed=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"long_inputs": "windows"}, r"'long_inputs' parameter of extract must be one of 'error', 'window'; got "
                                 r"'windows' \(did you mean 'window'\?\)"),
    ({"long_inputs": "window", "stride": -1}, r"'stride' parameter of extract must be an int in the range \[0, inf\)"),
    ({"long_inputs": "window", "stride": 510}, r"stride must be in \[0, 510\) for random-bert"),
    ({"batch_tokens": 0}, r"'batch_tokens' parameter of extract"),
    ({"dtype": "bfloat16"}, r"'dtype' parameter of extract must be one of 'float16', 'float32'"),
])
def test_bad_settings_fail_before_the_store_folder_exists(model, tmp_path, kwargs, message):
    out = tmp_path / "store"
    with pytest.raises((InvalidParameterError, ValueError), match=message):
        probekit.extract(model, ["a cat sat", "it rained"], ["L0.resid"], out, **kwargs)
    assert not out.exists()


def test_a_long_text_with_a_good_stride_still_windows(model, tmp_path):
    text = " ".join(f"w{i}" for i in range(300))  # longer than 512 tokens
    store = probekit.extract(model, [text], ["L0.resid"], tmp_path / "s", long_inputs="window", stride=64,
                             progress=False)
    assert store["L0.resid"].example(0).shape[0] > 512


def test_default_shard_size_follows_what_the_store_holds(model, tmp_path):
    """Token rows (or attention patterns) come in shards of 512 examples; pooled rows only, a few per example, in
    shards of 2048, which the batch planner length-sorts over more examples; a given size is kept."""
    texts = [f"the cat number {i} sat" for i in range(3)]
    tok = probekit.extract(model, texts, ["L0.resid"], tmp_path / "tok", progress=False)
    pooled = probekit.extract(model, texts, ["L0.resid"], tmp_path / "pooled", tokens=False,
                              sentence_pooling=["mean"], progress=False)
    attn = probekit.extract(model, texts, ["L0.attn.pattern"], tmp_path / "attn", tokens=False, progress=False)
    given = probekit.extract(model, texts, ["L0.resid"], tmp_path / "given", tokens=False,
                             sentence_pooling=["mean"], shard_size=2, progress=False)
    sizes = [s.manifest["settings"]["shard_size"] for s in (tok, pooled, attn, given)]
    assert sizes == [512, 2048, 512, 2]
    assert given.manifest["n_shards"] == 2
    with pytest.raises(InvalidParameterError, match="'shard_size' parameter of extract"):
        probekit.extract(model, texts, ["L0.resid"], tmp_path / "bad", shard_size=0)


@pytest.mark.parametrize("kwargs", [{}, {"tokens": False, "word_pooling": ["mean"]}])
def test_float16_overflow_is_refused_not_stored_as_inf(tmp_path, kwargs):
    """Activations beyond float16's range (models with massive activations) stop the extraction with an error
    naming the stream and the way out, instead of rows of inf; float32 stores them."""
    big, texts = overflowing_model(), ["the cat sat", "it rained all day"]
    with pytest.raises(ValueError, match=r"beyond float16's range .* with dtype='float32'"):
        probekit.extract(big, texts, ["L0.resid"], tmp_path / "f16", dtype="float16", progress=False, **kwargs)
    store = probekit.extract(big, texts, ["L0.resid"], tmp_path / "f32", dtype="float32", progress=False, **kwargs)
    rows = store["L0.resid"].numpy("word" if kwargs else "token", "mean" if kwargs else None)
    assert store.n_examples == 2 and np.isfinite(rows).all() and np.abs(rows).max() > 65504


def test_a_float16_derived_store_refuses_overflow_too(tmp_path):
    """derive pools float32 token rows into a float16 store: values beyond its range are refused there as well."""
    from probekit.store import derive

    big, texts = overflowing_model(), ["the cat sat", "it rained all day"]
    src = probekit.extract(big, texts, ["L0.resid"], tmp_path / "src", dtype="float32", progress=False)
    with pytest.raises(ValueError, match=r"beyond float16's range"):
        derive([src], texts, tmp_path / "derived", ["L0.resid"], word_pooling=["mean"], dtype="float16",
               progress=False)
