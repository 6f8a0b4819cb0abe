"""compare() over two stores: identity, a perturbed variant, layer maps, data mismatch."""

import numpy as np
import pandas as pd
import pytest
import torch

import probekit
from probekit.compare import CompareSuite, compare, linear_cka
from probekit.results import Results
from probekit.store import extract
from probekit.validation import InvalidParameterError
from tests.conftest import tiny_config

TEXTS = [f"sentence number {i} says something about the film ." for i in range(24)]
SITES = ["emb", "L0.resid", "L1.resid", "L0.attn.pattern", "L1.attn.pattern"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    base = probekit.load_model(tiny_config("bert"), seed=0)
    other = probekit.load_model(tiny_config("bert"), seed=0)
    with torch.no_grad():  # a "variant": perturb the second block only
        for p in other.blocks[1].parameters():
            p.add_(0.5 * torch.randn_like(p))
    a = extract(base, TEXTS, SITES, root / "a", progress=False, dtype="float32")
    b = extract(other, TEXTS, SITES, root / "b", progress=False, dtype="float32")
    c = extract(base, TEXTS[:12], SITES, root / "c", progress=False, dtype="float32")
    return a, b, c


def test_self_comparison_is_identity(stores):
    a, _, _ = stores
    cmp = compare(a, a, progress=False)
    diag = cmp.diagonal()
    assert np.allclose(diag["linear_cka"], 1.0, atol=1e-9)
    df = cmp.results.to_frame()
    jsd = df[df.metric == "attention_jsd_bits"]["value"]
    assert len(jsd) == 2 * 4 and np.allclose(jsd, 0, atol=1e-12)


def test_variant_changes_only_the_perturbed_layer(stores):
    a, b, _ = stores
    cmp = compare(a, b, progress=False)
    d = cmp.diagonal().set_index("site_a")["linear_cka"]
    assert d["emb"] == pytest.approx(1.0, abs=1e-9) and d["L0.resid"] == pytest.approx(1.0, abs=1e-9)
    assert d["L1.resid"] < 0.99
    # the streamed matrix equals the direct float64 computation on the same rows
    x = a["L1.resid"].sentences("mean")
    y = b["L1.resid"].sentences("mean")
    assert cmp.matrices["linear_cka"].loc["L1.resid", "L1.resid"] == pytest.approx(linear_cka(x, y), abs=1e-6)
    df = cmp.results.to_frame()
    jsd = df[df.metric == "attention_jsd_bits"].set_index(["block", "head"])["value"]
    assert np.allclose(jsd.loc[0], 0, atol=1e-12) and (jsd.loc[1] > 1e-4).all()
    # head rows: block i's pattern is layer i + 1, B's head named in site_b
    heads = df[df.metric == "attention_jsd_bits"]
    assert (heads["layer"] == heads["block"] + 1).all()
    assert set(heads["site_b"]) == {f"L{b}.attn.pattern.h{h}" for b in (0, 1) for h in range(4)}


def test_token_level_and_layer_map(stores):
    a, b, _ = stores
    cmp = compare(a, b, level="token", layer_map={"L0.resid": "L1.resid"}, attention=False, progress=False)
    assert list(cmp.diagonal()["site_b"]) == ["L1.resid"]
    assert cmp.matrices["linear_cka"].shape == (3, 3)
    with pytest.raises(ValueError, match="layer map entries"):
        compare(a, b, layer_map={"L7.resid": "L1.resid"}, progress=False)


def test_different_data_is_refused(stores):
    a, _, c = stores
    with pytest.raises(ValueError, match="different data"):
        compare(a, c, progress=False)


def test_compare_suite_runs_like_every_suite(stores):
    a, b, _ = stores
    suite = CompareSuite(a, b, measures=["linear_cka"], level="sentence")
    assert suite.comparison is None
    results = suite.run(progress=False)
    assert isinstance(results, Results)
    direct = compare(a, b, measures=["linear_cka"], progress=False)
    pd.testing.assert_frame_equal(results.to_frame(), direct.to_results().to_frame())
    assert suite.comparison is not None and suite.comparison.layer_map == direct.layer_map
    with_matrix = suite.run(progress=False, matrix=True).to_frame()
    assert len(with_matrix) == len(results.to_frame()) + 3 * 3  # every cell of the 3 x 3 residual matrix


def test_compare_suite_checks_options_before_running(stores):
    a, b, _ = stores
    with pytest.raises(TypeError, match="unknown options \\['measure'\\]"):
        CompareSuite(a, b, measure="linear_cka")
    with pytest.raises(InvalidParameterError, match="'level'"):
        CompareSuite(a, b, level="phrase")
