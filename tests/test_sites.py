import pytest

import probekit
from probekit import Site
from tests.conftest import FAMILIES, tiny_config


@pytest.mark.parametrize("text", ["emb", "final", "L0.resid", "L3.attn.pattern", "L3.attn.pattern.h2",
                                  "L11.attn.out", "L1.mlp.hidden", "L1.mlp.out"])
def test_round_trip(text):
    s = Site.parse(text)
    assert str(s) == text
    assert Site.parse(str(s)) == s
    assert hash(s) == hash(Site.parse(text))


def test_fields_and_order():
    s = Site.parse("L3.attn.pattern.h2")
    assert (s.layer, s.component, s.head) == (3, "attn.pattern", 2)
    assert s.is_attention and not s.is_token_level
    assert not hasattr(Site, "depth")  # one layer axis: site_layer, not a second definition with a sentinel
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        s.layer = 4


@pytest.mark.parametrize("typo, suggestion", [
    ("L3.atn.pattern", "L3.attn.pattern"),
    ("L3.resi", "L3.resid"),
    ("L2.mlp.outt", "L2.mlp.out"),
])
def test_typo_suggests_close_match(typo, suggestion):
    with pytest.raises(ValueError, match=f"did you mean '{suggestion}'"):
        Site.parse(typo)


@pytest.mark.parametrize("bad", ["", "L.resid", "3.resid", "Lx.resid", "resid", "L-1.resid", "embedding"])
def test_strict_parse(bad):
    with pytest.raises(ValueError):
        Site.parse(bad)


def test_bad_types_and_fields():
    with pytest.raises(TypeError):
        Site.parse(3)
    with pytest.raises(ValueError, match="takes no layer"):
        Site(2, "emb")
    with pytest.raises(ValueError, match="only attn.pattern"):
        Site(1, "resid", head=0)
    with pytest.raises(ValueError, match="unknown site component"):
        Site(1, "attention")


def test_model_checks_range_and_components():
    m = probekit.load_model(tiny_config("bert"))
    assert m.site("L1.resid") == Site(1, "resid")
    with pytest.raises(ValueError, match="out of range.*layers 0-1"):
        m.site("L2.resid")
    with pytest.raises(ValueError, match="no final norm"):
        m.site("final")
    with pytest.raises(ValueError, match="head 4 is out of range"):
        m.site("L0.attn.pattern.h4")


GOLDEN_BLOCK = ["resid", "attn.pattern", "attn.out", "mlp.hidden", "mlp.out"]


@pytest.mark.parametrize("family", FAMILIES)
def test_golden_site_list(family):
    m = probekit.load_model(tiny_config(family))
    expected = ["emb"] + [f"L{i}.{c}" for i in range(2) for c in GOLDEN_BLOCK]
    if family in ("gpt2", "llama"):
        expected.append("final")
    assert [str(s) for s in m.sites()] == expected
    assert [str(s) for s in m.residual_sites()] == ["emb", "L0.resid", "L1.resid"]


def test_layer_axis():
    from probekit import site_block, site_layer

    assert [site_layer(s) for s in ("emb", "L0.resid", "L0.attn.pattern", "L0.mlp.out", "L5.resid")] == [0, 1, 1, 1, 6]
    assert site_layer("L3.attn.pattern.h2") == 4 and site_block("L3.attn.pattern.h2") == 3
    assert site_layer("final", n_blocks=2) == 3  # after the last block (L1.resid is 2), never emb's 0
    assert site_block("L3.resid") is None and site_block("emb") is None and site_block("final") is None
    assert site_block("L3.mlp.hidden") == 3 and site_block("L0.attn.out") == 0
    with pytest.raises(ValueError, match="pass n_blocks"):
        site_layer("final")
    with pytest.raises(ValueError, match="n_blocks must be an int"):
        site_layer("final", n_blocks=0)
