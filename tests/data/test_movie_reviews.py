"""The Rotten Tomatoes loader: real corpus, repaired encoding, every word tokenizable."""

from __future__ import annotations

import pytest

from probekit.data import load_movie_reviews


def test_c1_control_characters_are_repaired():
    raw = load_movie_reviews("rotten_tomatoes", fix_encoding=False)
    fixed = load_movie_reviews("rotten_tomatoes")
    bad = raw["text"].str.contains("[\x80-\x9f]")
    assert bad.sum() > 0  # the corpus really has them
    assert not fixed["text"].str.contains("[\x80-\x9f]").any()
    assert len(fixed) == len(raw) and (fixed["label"] == raw["label"]).all()
    assert "—" in fixed.loc[bad.idxmax(), "text"] or "…" in fixed.loc[bad.idxmax(), "text"] \
        or "–" in fixed.loc[bad.idxmax(), "text"] or "‘" in fixed.loc[bad.idxmax(), "text"]


def test_every_repaired_word_gets_tokens(minilm):
    raw = load_movie_reviews("rotten_tomatoes", fix_encoding=False)
    rows = load_movie_reviews("rotten_tomatoes")[raw["text"].str.contains("[\x80-\x9f]")]
    words = [w for t in rows["text"] for w in t.split()]
    empty = [w for w in words if not minilm.tokenizer(w, add_special_tokens=False)["input_ids"]]
    assert empty == []


def test_imdb_private_use_bullet_is_repaired(minilm):
    """One IMDB review lists songs after a Symbol-font bullet (U+F0B7), which tokenizers drop: extraction
    would refuse that review, so the loader spells it as a bullet."""
    raw = load_movie_reviews("imdb", fix_encoding=False)
    fixed = load_movie_reviews("imdb")
    hit = raw["text"].str.contains("\uf0b7")
    assert hit.sum() == 1 and not fixed["text"].str.contains("\uf0b7").any()
    words = [w for t in fixed.loc[hit, "text"] for w in t.split()]
    assert "\u2022" in words
    assert [w for w in words if not minilm.tokenizer(w, add_special_tokens=False)["input_ids"]] == []


def test_unknown_source_is_named():
    with pytest.raises(ValueError, match="rotten_tomatoes"):
        load_movie_reviews("sst2")
