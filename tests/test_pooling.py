"""Batched pooling: a whole padded batch pooled at once gives the bytes of one example at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import probekit
from probekit.model import PoolPlan, pool_sentence, pool_sentences_many, pool_words, pool_words_many


def _random_batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 30, (9,), generator=g).tolist()
    width = max(lengths)
    x = torch.randn(len(lengths), width, 16, generator=g)
    spans = []
    for n in lengths:
        cuts = sorted(set(torch.randint(2, n - 1, (n // 3,), generator=g).tolist()) | {1, n - 1})
        spans.append(list(zip(cuts[:-1], cuts[1:])))  # words cover tokens 1..n-2 (specials at both ends)
    return x, lengths, spans


@pytest.mark.parametrize("how", ["first", "last", "mean"])
def test_batched_word_pooling_is_bitwise_the_one_example_pooling(how):
    x, lengths, spans = _random_batch(0)
    width = x.shape[1]
    plan = PoolPlan.build([b * width for b in range(len(lengths))], lengths, spans)
    batched = pool_words_many(x.reshape(-1, x.shape[-1]), plan, how)
    one_by_one = torch.cat([pool_words(x[b, :n], spans[b], how) for b, n in enumerate(lengths)])
    assert torch.equal(batched, one_by_one)
    assert plan.n_words == tuple(len(s) for s in spans)


@pytest.mark.parametrize("how", ["cls", "last", "mean"])
def test_batched_sentence_pooling_is_bitwise_the_one_example_pooling(how):
    x, lengths, _ = _random_batch(1)
    width = x.shape[1]
    plan = PoolPlan.build([b * width for b in range(len(lengths))], lengths)
    batched = pool_sentences_many(x.reshape(-1, x.shape[-1]), plan, how)
    one_by_one = torch.stack([pool_sentence(x[b, :n], how) for b, n in enumerate(lengths)])
    assert torch.equal(batched, one_by_one)


@pytest.mark.parametrize("spare", [0, 3])
def test_means_summed_from_the_batch_or_from_a_gathered_copy_are_the_same_bits(spare):
    # little padding: the rows are summed straight from the batch (padding into a spare row); much padding
    # (spare = 3 widths more): from a gathered copy of the pooled rows. Both are the gather-then-sum reference.
    g = torch.Generator().manual_seed(7)
    lengths = torch.randint(20, 31, (12,), generator=g).tolist()
    width = max(lengths) * (1 + spare)
    x = torch.randn(len(lengths) * width, 32, generator=g) * 100
    spans = [[(i, i + 2) for i in range(1, n - 2, 2)] for n in lengths]
    plan = PoolPlan.build([b * width for b in range(len(lengths))], lengths, spans)
    for got, rows, index, counts in (
        (pool_words_many(x, plan, "mean"), plan.word_rows, plan.word_index, plan.word_lengths),
        (pool_sentences_many(x, plan, "mean"), plan.token_rows, plan.token_index, plan.lengths),
    ):
        ref = torch.zeros(len(counts), 32).index_add_(0, index, x[rows]) / counts.float()[:, None]
        assert torch.equal(got, ref)


def test_a_row_shared_by_two_segments_counts_in_both():
    # the spare-row sum holds one segment per row; a plan whose segments share a row is summed from a gathered copy
    x = torch.arange(12.0).reshape(4, 3)
    plan = PoolPlan.build([0], [4], [[(0, 3), (2, 4)]])  # token 2 in both words
    assert pool_words_many(x, plan, "mean").tolist() == [[3.0, 4.0, 5.0], [7.5, 8.5, 9.5]]


def test_mean_is_accumulated_in_float32_and_cast_once():
    x = torch.tensor([[1.0], [2.0], [4.0]], dtype=torch.float16)
    plan = PoolPlan.build([0], [3], [[(0, 3)]])
    assert pool_words_many(x, plan, "mean").dtype == torch.float16
    assert pool_words_many(x, plan, "mean", dtype=torch.float32).item() == pytest.approx(7 / 3)


def test_a_word_without_tokens_is_an_error_naming_it():
    with pytest.raises(ValueError, match="example 0, word 1"):
        PoolPlan.build([0], [4], [[(0, 1), (2, 2)]])


def test_pooled_store_rows_are_the_one_example_pooling_of_its_token_rows(tmp_path, tiny):
    """Rows pooled a whole batch at a time during extraction equal pooling each example's stored token rows."""
    texts = ["a cat sat on the mat", "it rained", "the dog , which barked , ran away quickly", "so it goes"] * 3
    store = probekit.extract(tiny, texts, ["L0.resid", "L1.resid"], tmp_path / "a", batch_tokens=40,
                             word_pooling=["mean", "first"], sentence_pooling=["mean", "last"], progress=False,
                             dtype="float32")
    for site in ("L0.resid", "L1.resid"):
        view = store[site]
        for i in range(len(texts)):
            x = torch.from_numpy(np.array(view.example(i)))
            for how in ("mean", "first"):
                assert np.array_equal(view.words(i, how), pool_words(x, store.word_spans(i), how).numpy())
            for how in ("mean", "last"):
                assert np.array_equal(view.numpy("sentence", how)[i], pool_sentence(x, how).numpy())
