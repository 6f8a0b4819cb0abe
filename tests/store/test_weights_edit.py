"""A store is never reused for weights edited in place (both directions of the stale-fingerprint case)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import probekit
from probekit.store import FingerprintMismatchError
from tests.store._common import make_texts, tiny_model

TEXTS = make_texts(12, seed=3)
SITE = "L1.resid"


def _extract(model, out, **kw):
    return probekit.extract(model, TEXTS, [SITE], out, dtype="float32", progress=False, **kw)


def _fresh(model) -> np.ndarray:
    """The model's activations now, straight from a forward pass."""
    cache = model.run_with_cache(TEXTS, [SITE])
    return np.concatenate([t.numpy() for t in cache.examples(SITE)])


def _stored(store) -> np.ndarray:
    return np.concatenate([store[SITE].example(i) for i in range(len(store))])


def _halve(model, how: str) -> None:
    if how == "no_grad":
        with torch.no_grad():
            for p in model.model.parameters():
                p.mul_(0.5)
    else:  # writes through .data bypass the version counters
        for p in model.model.parameters():
            p.data.mul_(0.5)


@pytest.mark.parametrize("how", ["no_grad", "data"])
def test_edit_then_extract_into_the_same_store_recomputes(tmp_path, how):
    m = tiny_model()
    out = tmp_path / "A"
    before = _extract(m, out)
    _halve(m, how)
    with pytest.raises(FingerprintMismatchError, match="model weights"):
        _extract(m, out)  # the old shards are not silently reused
    after = _extract(m, out, overwrite=True)
    assert after.manifest["stats"]["shards_reused"] == 0
    assert after.manifest["components"]["weights"] != before.manifest["components"]["weights"]
    np.testing.assert_allclose(_stored(after), _fresh(m), atol=1e-5)


@pytest.mark.parametrize("how", ["no_grad", "data"])
def test_hash_taken_then_edit_records_the_new_weights(tmp_path, how):
    m = tiny_model()
    original = m.weights_hash()  # taken before the edit, as any earlier extraction does
    _halve(m, how)
    store = _extract(m, tmp_path / "B")
    assert store.manifest["components"]["weights"] == m.weights_hash() != original
    np.testing.assert_allclose(_stored(store), _fresh(m), atol=1e-5)
    # the unedited model does not "reuse" B, and opening B for it is refused
    with pytest.raises(FingerprintMismatchError, match="model weights"):
        _extract(tiny_model(), tmp_path / "B")
    with pytest.raises(FingerprintMismatchError, match="other model weights"):
        probekit.ActivationStore.open(tmp_path / "B", model=tiny_model())
    probekit.ActivationStore.open(tmp_path / "B", model=m)


def test_a_one_element_edit_the_signature_misses_is_never_reused(tmp_path):
    """``w.data[i, j] += 5`` bypasses the version counter and misses the sampled elements: extraction hashes every
    byte, so the store is not reused for the edited weights."""
    m = tiny_model()
    out = tmp_path / "A"
    before = _extract(m, out)
    rows_before = _stored(before)
    w = m.model.embeddings.word_embeddings.weight
    token = m.tokenizer.convert_tokens_to_ids("the")  # in every text, so the edit changes the activations
    sampled = m.weights_hash()
    w.data[token, 7] += 5
    assert m.weights_hash() == sampled  # the cheap signature does not see this edit...
    with pytest.raises(FingerprintMismatchError, match="model weights"):
        _extract(m, out)  # ...the extraction does: the old rows are not reused
    after = _extract(m, out, overwrite=True)
    assert after.manifest["stats"]["shards_reused"] == 0
    assert after.manifest["components"]["weights"] != before.manifest["components"]["weights"]
    fresh = _extract(m, tmp_path / "fresh")
    np.testing.assert_array_equal(_stored(after), _stored(fresh))
    np.testing.assert_allclose(_stored(after), _fresh(m), atol=1e-5)
    assert np.abs(_stored(after) - rows_before).max() > 1e-3  # the edit did change the rows
