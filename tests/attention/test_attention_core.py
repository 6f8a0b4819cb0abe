"""Hand-computable checks of head statistics, word attention, heads-as-parsers, rollout and flow."""

import numpy as np
import pytest
import torch

from probekit.attention import (
    DependencyHeadAccuracy,
    HeadStatistics,
    attention_flow,
    attention_rollout,
    fixed_offset_baseline,
    punctuation_mask,
    word_attention,
)


def test_head_statistics_by_hand():
    # head 0 attends to the previous token (first token to itself); head 1 uniformly
    T = 4
    prev = torch.zeros(T, T)
    prev[0, 0] = 1
    for q in range(1, T):
        prev[q, q - 1] = 1
    uniform = torch.full((T, T), 1 / T)
    acc = HeadStatistics()
    cls = torch.tensor([1, 0, 0, 0]).bool()
    sep = torch.tensor([0, 0, 0, 1]).bool()
    punct = torch.tensor([0, 0, 1, 0]).bool()
    acc.update(2, torch.stack([prev, uniform]), cls=cls, sep=sep, punct=punct)
    df = acc.to_frame().set_index(["head", "metric"])["value"]
    assert df[(0, "prev")] == pytest.approx(3 / 4)
    assert df[(0, "self")] == pytest.approx(1 / 4)
    assert df[(0, "entropy")] == pytest.approx(0.0)
    assert df[(0, "distance")] == pytest.approx(3 / 4)
    assert df[(0, "cls")] == pytest.approx(2 / 4)  # queries 0 and 1 attend to token 0
    assert df[(1, "entropy")] == pytest.approx(np.log(4))
    assert df[(1, "sep")] == pytest.approx(1 / 4)
    assert df[(1, "punct")] == pytest.approx(1 / 4)
    assert df[(1, "next")] == pytest.approx(3 / 16)
    # distance of uniform attention over 4 tokens: mean |q-k| = (6+4+4+6)/16
    assert df[(1, "distance")] == pytest.approx(20 / 16)
    assert set(acc.to_frame()["block"]) == {2} and set(acc.to_frame()["layer"]) == {3}


def test_head_statistics_weights_queries_equally_across_examples():
    acc = HeadStatistics()
    long = torch.eye(6)[None]
    short = torch.full((1, 2, 2), 0.5)
    acc.update(0, long, cls=torch.zeros(6, dtype=torch.bool), sep=torch.zeros(6, dtype=torch.bool))
    acc.update(0, short, cls=torch.zeros(2, dtype=torch.bool), sep=torch.zeros(2, dtype=torch.bool))
    self_mass = acc.to_frame().query("metric == 'self'")["value"].item()
    assert self_mass == pytest.approx((6 * 1 + 2 * 0.5) / 8)
    with pytest.raises(ValueError, match="cls mask"):
        acc.update(0, long, cls=torch.zeros(5, dtype=torch.bool), sep=torch.zeros(6, dtype=torch.bool))


def test_punctuation_mask():
    assert punctuation_mask(["[CLS]", "hello", ",", "##.", "Ġ!", "...", "a.b"]).tolist() == [
        False, False, True, True, True, True, False]


def test_word_attention_sum_to_mean_from():
    # tokens: [CLS] w0a w0b w1 [SEP]; words: (1,3), (3,4)
    p = torch.tensor([[0.2, 0.2, 0.2, 0.2, 0.2],
                      [0.0, 0.1, 0.3, 0.6, 0.0],
                      [0.0, 0.5, 0.1, 0.2, 0.2],
                      [0.1, 0.4, 0.4, 0.1, 0.0],
                      [0.2, 0.2, 0.2, 0.2, 0.2]])
    w = word_attention(p[None], [(1, 3), (3, 4)])[0]
    assert w[0, 0].item() == pytest.approx(((0.1 + 0.3) + (0.5 + 0.1)) / 2)
    assert w[0, 1].item() == pytest.approx((0.6 + 0.2) / 2)
    assert w[1, 0].item() == pytest.approx(0.8)
    assert w[1, 1].item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="outside"):
        word_attention(p[None], [(4, 6)])


def test_dependency_head_accuracy_and_baseline():
    # "the cat sat": the->cat (det), cat->sat (nsubj), sat root
    heads, rels = [2, 3, 0], ["det", "nsubj", "root"]
    good = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    bad = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    acc = DependencyHeadAccuracy()
    acc.update(1, torch.stack([good, bad]), heads=heads, relations=rels)
    df = acc.to_frame().set_index(["head", "relation", "direction"])["accuracy"]
    assert df[(0, "det", "dep->head")] == 1.0 and df[(1, "det", "dep->head")] == 0.0
    assert df[(0, "nsubj", "head->dep")] == 1.0  # 'sat' attends most to 'cat'
    best = acc.best_heads().set_index("relation")
    assert best.loc["det", "head"] == 0 and best.loc["det", "accuracy"] == 1.0
    base = fixed_offset_baseline([(heads, rels), ([0, 1], ["root", "obj"])]).set_index("relation")
    assert base.loc["det", "offset"] == 1 and base.loc["det", "accuracy"] == 1.0
    assert base.loc["obj", "offset"] == -1
    with pytest.raises(ValueError, match="3 words"):
        acc.update(0, good[None], heads=[1, 0], relations=["a", "b"])


def test_rollout_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # everyone attends to token 0
    r = attention_rollout([a[None], a[None]])
    layer1 = np.array([[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(r[0], layer1)
    np.testing.assert_allclose(r[1], layer1 @ layer1)
    np.testing.assert_allclose(r.sum(-1), 1.0)


def test_flow_by_hand_and_bound():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    f = attention_flow([a[None]], output=1)
    # one layer: the flow into output 1 is the capacity of each edge, 0.5 from each input
    np.testing.assert_allclose(f[0], [0.5, 0.5])
    two = attention_flow([a[None], a[None]], output=1)
    assert two.shape == (2, 2)
    # flow is limited by the bottleneck: into (2,1) capacity 0.5+0.5, from token 1 only via (1,1)
    assert two[1, 1] == pytest.approx(0.5) and two[1, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="max_tokens=3"):
        attention_flow([torch.eye(4)[None]], max_tokens=3)


def test_flow_matches_a_float_max_flow_reference():
    """Integer-capacity max-flow equals networkx's float max-flow on random residual attention."""
    nx = pytest.importorskip("networkx")
    from probekit.attention import residual_attention

    g = torch.Generator().manual_seed(0)
    pats = [torch.softmax(torch.randn(3, 7, 7, generator=g) * 2, -1) for _ in range(3)]
    got = attention_flow(pats, output=0)
    mats = [np.asarray(m, dtype=np.float64) for m in residual_attention(pats)]
    for top in range(3):
        ref = nx.DiGraph()
        for layer in range(top + 1):
            for i in range(7):
                for j in range(7):
                    ref.add_edge((layer, j), (layer + 1, i), capacity=float(mats[layer][i, j]))
        want = [nx.maximum_flow_value(ref, (0, j), (top + 1, 0)) for j in range(7)]
        np.testing.assert_allclose(got[top], want, atol=1e-5)
