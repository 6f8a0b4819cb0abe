import numpy as np
import pandas as pd
import pytest
import torch

from probekit.plots import (
    attention_heatmap,
    attribution_html,
    attribution_png,
    layer_head_grid,
    pattern_frame,
    similarity_heatmap,
)


def test_attention_heatmap_labels_every_token_at_60(tmp_path):
    tokens = ["[CLS]"] + [f"w{i}" for i in range(58)] + ["[SEP]"]
    p = torch.softmax(torch.randn(4, 60, 60), -1)
    frame = pattern_frame(p, tokens)
    assert frame.shape == (60, 60) and np.allclose(frame.values, p.mean(0).numpy(), atol=1e-6)
    fig = attention_heatmap(frame, title="L5 mean")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens
    assert len(ax.get_yticklabels()) == 60
    fig.savefig(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="3 tokens"):
        pattern_frame(p, tokens[:3])


def test_repeated_tokens_stay_distinct():
    frame = pattern_frame(torch.eye(3), ["the", "cat", "the"], head=0)
    assert frame.index.is_unique


def test_grid_and_similarity(tmp_path):
    df = pd.DataFrame([(la, h, la + h / 10) for la in range(3) for h in range(4)], columns=["layer", "head", "value"])
    fig = layer_head_grid(df, title="entropy")
    assert fig.axes[0].get_title() == "entropy"
    with pytest.raises(ValueError, match="missing"):
        layer_head_grid(df.drop(columns="head"))
    sim = pd.DataFrame(np.eye(3), index=["emb", "L0", "L1"], columns=["emb", "L0", "L1"])
    similarity_heatmap(sim).savefig(tmp_path / "s.png")


def test_attribution_views():
    tokens = ["[CLS]", "good", "<b>", "[SEP]"]
    html = attribution_html(tokens, {"ig": np.array([0, 1.0, -0.5, 0]), "saliency": np.ones(4)}, title="ex")
    assert html.count("<tr>") == 2 and "&lt;b&gt;" in html and "rgba(210,40,40,0.50)" in html
    with pytest.raises(ValueError, match="3 scores for 4 tokens"):
        attribution_html(tokens, {"x": np.ones(3)})
    fig = attribution_png(tokens, {"ig": np.array([0, 1.0, -0.5, 0])})
    assert len(fig.axes[0].get_xticklabels()) == 4


def test_amnesic_plot_runs_its_example_and_rejects_a_table_without_changes():
    import doctest

    import pandas as pd
    import pytest

    from probekit.plots import _amnesic, amnesic_plot

    assert doctest.testmod(_amnesic).failed == 0
    with pytest.raises(ValueError, match="behaviour change"):
        amnesic_plot(pd.DataFrame({"task": ["upos"], "layer": [1], "probe_accuracy_before": [0.9]}))
