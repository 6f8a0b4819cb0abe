"""Every task builds on real data with sane class statistics."""

from __future__ import annotations

import numpy as np
import pytest

from probekit.data import Task, build_task, list_tasks
from probekit.model._tokenize import validate_inputs
from tests.data.conftest import RT_LIMIT

WORD_EDGE = ["upos", "xpos", "deprel", "headdist", "depth", "arc", "arclabel"]
SENTEVAL = ["sentlen", "wordcontent", "bigramshift", "treedepth", "tense", "subjnum", "objnum", "coordinv"]


def _stats_ok(t: Task):
    st = t.class_stats()
    assert list(st.columns) == ["label", "train", "dev", "test", "total", "share"]
    assert tuple(st["label"]) == t.label_names
    assert (st[["train", "dev", "test"]] >= 0).all().all() and st["total"].sum() > 0
    assert abs(st["share"].sum() - 1) < 1e-9
    assert set(t.splits) == {"train", "dev", "test"}
    validate_inputs(t.dataset.inputs[:50])  # the words go to the tokenizer as they are
    return st


def test_registry_lists_every_task():
    names = set(list_tasks()["name"])
    assert set(WORD_EDGE + SENTEVAL + ["ner", "structural", "sentiment"]) <= names
    with pytest.raises(LookupError, match="did you mean upos"):
        build_task("upso")
    with pytest.raises(ValueError, match="source rt"):
        build_task("sentiment", "ud")


@pytest.mark.parametrize("name", WORD_EDGE)
def test_word_and_edge_tasks_on_ud(ud_sample, name):
    t = build_task(name, "ud", path=ud_sample)
    st = _stats_ok(t)
    # train file = train (400 sentences in the sample), dev file (300) cut into dev/test halves
    n_train = t.splits.count("train")
    assert (n_train == 400) if t.level == "word" else (360 <= n_train <= 400)
    assert 140 <= t.splits.count("test") <= 150 and t.splits.count("dev") <= 150
    if name == "upos":
        # 9,323 + 5,708 syntactic words, counted in the sample's README with grep
        assert len(t.label_names) == 17 and st["total"].sum() == 9323 + 5708
        assert st.set_index("label")["share"].idxmax() == "NOUN"
    if name in ("deprel", "arclabel"):
        assert "nsubj" in t.label_names and not any(":" in n for n in t.label_names)
    if name == "arc":
        assert st["total"].iloc[0] == st["total"].iloc[1]  # exactly balanced
        ws, row = t.dataset.words[0], t.dataset.labels[0]
        assert all(0 <= a < len(ws) and 0 <= b < len(ws) and a != b for a, b, _ in row)


def test_upos_on_the_whole_treebank(ud_full):
    t = build_task("upos", "ud", path={"train": ud_full / "en_ewt-ud-train.conllu",
                                       "dev": ud_full / "en_ewt-ud-dev.conllu"})
    st = _stats_ok(t)
    assert t.splits.count("train") == 12544 and t.splits.count("test") == 1000
    assert len(t.label_names) == 17 and st["total"].sum() == 204577 + 25147
    arc = build_task("arc", "ud", path=ud_full)
    assert arc.splits.count("train") >= 11000


def test_a_test_file_is_the_test_split(ud_sample, tmp_path):
    """With a test file, it is ``test`` and the whole dev file ``dev``; without, the dev file is halved."""
    for split in ("train", "dev"):
        (tmp_path / f"en_ewt-ud-{split}.conllu").write_bytes((ud_sample / f"en_ewt-ud-{split}.conllu").read_bytes())
    dev = (ud_sample / "en_ewt-ud-dev.conllu").read_text(encoding="utf-8")
    (tmp_path / "en_ewt-ud-test.conllu").write_text("\n\n".join(dev.split("\n\n")[:20]) + "\n\n", encoding="utf-8")
    t = build_task("upos", "ud", path=tmp_path)
    assert (t.splits.count("train"), t.splits.count("dev"), t.splits.count("test")) == (400, 300, 20)
    only = build_task("upos", "ud", path={"train": tmp_path / "en_ewt-ud-train.conllu",
                                          "dev": tmp_path / "en_ewt-ud-dev.conllu"})
    assert (only.splits.count("train"), only.splits.count("dev"), only.splits.count("test")) == (400, 150, 150)
    with pytest.raises(ValueError, match="train, dev, test"):
        build_task("upos", "ud", path={"training": tmp_path / "en_ewt-ud-train.conllu"})
    with pytest.raises(FileNotFoundError, match="nope.conllu"):
        build_task("upos", "ud", path={"train": tmp_path / "nope.conllu"})


def test_the_default_folder_is_resolved_on_every_call(ud_sample, tmp_path, monkeypatch):
    """Sentences are cached per resolved file, so a changed PROBEKIT_UD_PATH is never served stale."""
    for split, n in (("train", 20), ("dev", 10)):
        text = (ud_sample / f"en_ewt-ud-{split}.conllu").read_text(encoding="utf-8")
        (tmp_path / f"en_ewt-ud-{split}.conllu").write_text("\n\n".join(text.split("\n\n")[:n]) + "\n\n",
                                                             encoding="utf-8")
    monkeypatch.setenv("PROBEKIT_UD_PATH", str(ud_sample))
    assert len(build_task("upos", "ud").dataset) == 700
    monkeypatch.setenv("PROBEKIT_UD_PATH", str(tmp_path))
    assert len(build_task("upos", "ud").dataset) == 30


def test_structural_task_on_ud(ud_sample):
    t = build_task("structural", "ud", path=ud_sample, limit=300)
    st = t.class_stats()
    assert set(st["split"]) == {"train", "dev", "test"} and st["words"].sum() > 5000
    lab, ws = t.dataset.labels[1], t.dataset.words[1]
    d = lab["distance"]
    assert d.shape == (len(ws), len(ws)) and (d == d.T).all() and (np.diag(d) == 0).all()
    assert (d[np.triu_indices(len(ws), 1)] >= 1).all() and lab["depth"].min() == 0


#: the least examples each sentence task must make from the sample's 700 sentences (200 unless named); measured:
#: sentlen 246, wordcontent 10, bigramshift 432, treedepth 260, tense 280, subjnum 94, objnum 58, coordinv 14
SAMPLE_MIN = {"coordinv": 10, "wordcontent": 10, "objnum": 50, "subjnum": 80}
#: and from the whole treebank
FULL_MIN = {"coordinv": 400, "treedepth": 3000, "wordcontent": 2000}


@pytest.mark.parametrize("name", SENTEVAL)
def test_senteval_tasks_on_ud_are_balanced_and_seeded(ud_sample, name):
    t = build_task(name, "ud", path=ud_sample, seed=0)
    st = _stats_ok(t)
    assert st["total"].nunique() == 1, st  # balanced classes
    assert len(t.dataset) >= SAMPLE_MIN.get(name, 200)
    skipped = t.meta["skipped"]
    assert sum(skipped.values()) + len(t.dataset) == t.meta["n_source_sentences"]  # nothing silently dropped
    again = build_task(name, "ud", path=ud_sample, seed=0)
    assert again.dataset == t.dataset
    if name in ("bigramshift", "coordinv"):
        other = build_task(name, "ud", path=ud_sample, seed=1)
        assert other.dataset.labels != t.dataset.labels
    if name == "wordcontent":
        for text, lab in zip(t.dataset.texts[:200], t.dataset.labels[:200]):
            assert lab in text.lower().split()


@pytest.mark.parametrize("name", ["coordinv", "treedepth", "wordcontent", "sentlen"])
def test_senteval_sizes_on_the_whole_treebank(ud_full, name):
    t = build_task(name, "ud", path=ud_full, seed=0)
    assert _stats_ok(t)["total"].nunique() == 1
    assert len(t.dataset) >= FULL_MIN.get(name, 1000)
    if name == "wordcontent":
        assert t.meta["n_words"] >= 50


def test_bigramshift_and_coordinv_edit_their_source_sentence(ud_sample):
    from probekit.data import load_sentences

    sents, _ = load_sentences("ud", path=ud_sample, limit=600)
    t = build_task("bigramshift", "ud", path=ud_sample, limit=600)
    for ws, lab, k in zip(t.dataset.words, t.dataset.labels, t.meta["source_index"]):
        src = sents[k].words
        diff = [j for j in range(len(src)) if src[j] != ws[j]]
        if lab == "original":
            assert diff == []
        else:  # exactly one adjacent pair swapped
            assert len(diff) == 2 and diff[1] == diff[0] + 1
            assert (ws[diff[0]], ws[diff[1]]) == (src[diff[1]], src[diff[0]])
    t = build_task("coordinv", "ud", path=ud_sample)
    sents, _ = load_sentences("ud", path=ud_sample)
    assert len(t.dataset) > 0
    for ws, lab, k in zip(t.dataset.words, t.dataset.labels, t.meta["source_index"]):
        src = sents[k].words
        assert sorted(w.lower() for w in ws) == sorted(w.lower() for w in src)  # same words, reordered
        assert (ws == src) == (lab == "original")


@pytest.mark.parametrize("name", SENTEVAL + ["sentiment", "upos", "arc"])
def test_tasks_on_rotten_tomatoes_silver(rt_ok, name):
    t = build_task(name, "rt", limit=RT_LIMIT, seed=0)
    st = _stats_ok(t)
    if t.level == "sentence":
        assert st["total"].nunique() == 1
        n_min = {"coordinv": 60, "tense": 60, "objnum": 60, "wordcontent": 100}.get(name, 200)
        assert len(t.dataset) >= n_min, st
    # seeded 80/10/10 split
    frac = t.splits.count("train") / len(t.splits)
    assert 0.7 < frac < 0.9


def test_ner_is_silver_on_ud(ud_sample, spacy_ok):
    t = build_task("ner", "ud", path=ud_sample, limit=150)
    st = _stats_ok(t).set_index("label")
    assert st["share"].idxmax() == "O" and {"PERSON", "ORG", "GPE"} & set(t.label_names)
