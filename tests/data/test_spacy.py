"""Silver annotation with spaCy and its on-disk cache."""

from __future__ import annotations

import json

import pytest

from probekit.data import _spacy, annotate, tree_depths


def test_annotate_keeps_words_and_caches(tmp_path, monkeypatch, spacy_ok):
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path))
    words = [["The", "cats", "slept", "on", "the", "mat", "."], ["Barack", "Obama", "visited", "Paris", "."]]
    out = annotate(words)
    assert [s.words for s in out] == [tuple(w) for w in words]
    s = out[0]
    assert s.upos[:3] == ("DET", "NOUN", "VERB") and s.xpos[1] == "NNS" and s.feats[1]["Number"] == "Plur"
    assert s.heads[2] == 0 and s.deprels[2] == "root" and s.heads[1] == 3
    assert "PERSON" in out[1].ents[0] and out[1].ents[3].endswith("GPE")
    for x in out:
        tree_depths(x.heads)  # a forest, no cycle
    files = list((tmp_path / "spacy").glob("*.json"))
    assert len(files) == 1 and isinstance(json.loads(files[0].read_text()), list)
    assert not list((tmp_path / "spacy").glob("*.tmp"))
    # the second call reads the cache: spaCy's pipe must not run
    nlp = _spacy.load_spacy()
    monkeypatch.setattr(nlp, "pipe", lambda *a, **k: (_ for _ in ()).throw(AssertionError("not cached")))
    again = annotate(words)
    assert again == out
    # other inputs miss the cache and run spaCy
    with pytest.raises(AssertionError, match="not cached"):
        annotate([["Another", "sentence", "."]])


def test_plain_text_and_errors(tmp_path, monkeypatch, spacy_ok):
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path))
    (s,) = annotate(["It rained yesterday."], use_cache=False)
    assert s.words == ("It", "rained", "yesterday", ".") and s.feats[1]["Tense"] == "Past"
    assert not (tmp_path / "spacy").exists()
    with pytest.raises(ValueError, match="input 1 is empty"):
        annotate(["fine", " "])
    with pytest.raises(ImportError, match="no spaCy English model"):
        _spacy.load_spacy("no_such_model_xyz")
