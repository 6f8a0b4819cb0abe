"""Token-budget batching and small invariants of an extraction."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

import probekit
from probekit.store._batching import token_budget_batches


def test_token_budget_batches_cover_every_row_once_within_budget():
    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(500)]
    plan = token_budget_batches(lengths, 512)
    flat = [i for b in plan for i in b]
    assert sorted(flat) == list(range(500))
    for b in plan:
        assert len(b) * max(lengths[i] for i in b) <= 512
    # length-sorted: padding is small
    padded = sum(len(b) * max(lengths[i] for i in b) for b in plan)
    assert padded / sum(lengths) < 1.1
    assert token_budget_batches(lengths, 512) == plan
    assert token_budget_batches([700, 3], 512) == [[0], [1]]
    with pytest.raises(ValueError, match="batch_tokens"):
        token_budget_batches(lengths, 0)


def test_a_small_shard_of_spread_lengths_is_not_padded_to_its_long_rows():
    """512 rows of treebank-like lengths (a long tail) at the default budget: filling every batch to the budget
    padded a real shard by 25%; the plan weighs padding against the cost of one more call."""
    rng = random.Random(1)
    lengths = [min(200, max(3, int(math.exp(rng.gauss(3.1, 0.6))))) for _ in range(512)]
    plan = token_budget_batches(lengths, 2048)
    assert sorted(i for b in plan for i in b) == list(range(512))
    assert all(len(b) * max(lengths[i] for i in b) <= 2048 for b in plan)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in plan)
    assert padded / sum(lengths) < 1.08
    assert len(plan) < 3 * -(-sum(lengths) // 2048)  # not a call per row: batches stay large
    assert token_budget_batches([30, 3, 3, 3, 3], 40, overhead=1) == [[0], [1, 2, 3, 4]]
    assert token_budget_batches([30, 3, 3, 3, 3], 40, overhead=100) == [[0], [1, 2, 3, 4]]  # 5 * 30 > 40


def test_extract_leaves_no_hooks(tmp_path, tiny, texts):
    probekit.extract(tiny, texts[:20], ["L0.resid", "L1.attn.pattern"], tmp_path / "s", progress=False)
    for m in tiny.model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_sentence_means_beside_attention_patterns_pool_the_right_rows(tmp_path, tiny, texts):
    """An attention pattern ([batch, heads, tokens, tokens]) captured first in a batch gave the pooling plan its head
    count as the padded width: sentence means of the other sites read the wrong rows (or ran out of bounds)."""
    kw = dict(sentence_pooling=["mean"], batch_tokens=256, progress=False)
    both = probekit.extract(tiny, texts[:40], ["L0.attn.pattern", "L1.resid"], tmp_path / "both", **kw)
    alone = probekit.extract(tiny, texts[:40], ["L1.resid"], tmp_path / "alone", **kw)
    got = both["L1.resid"].rows("sentence", "mean")
    want = alone["L1.resid"].rows("sentence", "mean")
    np.testing.assert_array_equal(got.read(np.arange(got.n)), want.read(np.arange(want.n)))
