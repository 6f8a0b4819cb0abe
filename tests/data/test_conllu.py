"""The CoNLL-U reader: real UD counts, multiword tokens, empty nodes, malformed input."""

from __future__ import annotations

import numpy as np
import pytest

from probekit.data import ConlluError, from_conllu, read_conllu, tree_depths, tree_distances, ud_files

ROW = "{id}\t{form}\t{form}\t{upos}\tXX\t_\t{head}\t{rel}\t_\t_"


def _write(tmp_path, text, name="x.conllu"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_ud_dev_counts_match_the_treebank(ud_full):
    sents = read_conllu(ud_full / "en_ewt-ud-dev.conllu")
    assert len(sents) == 2001
    # UD counts syntactic words (integer IDs): multiword-token lines and empty nodes are not words
    assert sum(len(s) for s in sents) == 25147
    assert sum(len(s.tokens) for s in sents) == 359
    assert sum(s.n_empty for s in sents) == 4
    assert all(len(s.words) == len(s.heads) == len(s.upos) == len(s.deprels) for s in sents)
    assert sents[0].words == ("From", "the", "AP", "comes", "this", "story", ":")
    assert sents[0].heads == (3, 3, 4, 0, 6, 4, 4)


@pytest.mark.parametrize("split, n_sents, n_words, n_mwt, n_empty", [
    ("train", 400, 9323, 88, 3), ("dev", 300, 5708, 83, 1)])
def test_sample_counts_match_grep(ud_sample, split, n_sents, n_words, n_mwt, n_empty):
    """The reader's counts on the bundled sample equal those taken with grep (the sample's README)."""
    sents = read_conllu(ud_sample / f"en_ewt-ud-{split}.conllu")
    assert len(sents) == n_sents and sum(len(s) for s in sents) == n_words
    assert sum(len(s.tokens) for s in sents) == n_mwt and sum(s.n_empty for s in sents) == n_empty
    assert all(len(s.words) == len(s.heads) == len(s.upos) == len(s.deprels) for s in sents)
    if split == "dev":
        assert sents[0].words == ("From", "the", "AP", "comes", "this", "story", ":")
        assert sents[0].heads == (3, 3, 4, 0, 6, 4, 4)
    else:
        assert sents[0].words[:4] == ("Al", "-", "Zaman", ":") and sents[0].heads[:4] == (0, 3, 1, 7)


def test_ud_multiword_tokens_split_into_syntactic_words(ud_sample):
    sents = read_conllu(ud_sample / "en_ewt-ud-dev.conllu")
    mwt = [(s, t) for s in sents for t in s.tokens]
    for s, (a, b, _form) in mwt:
        assert 0 <= a < b < len(s)
        # the surface token is the concatenation of its words (modulo case/spelling in a few)
        assert len("".join(s.words[a: b + 1])) >= 2
    s, (a, b, form) = next((s, t) for s, t in mwt if t[2].lower() == "don't")
    assert [w.lower() for w in s.words[a: b + 1]] == ["do", "n't"]


def test_ud_files_finds_splits(ud_sample):
    files = ud_files(ud_sample)
    assert set(files) == {"train", "dev"}
    assert ud_files(ud_sample / "en_ewt-ud-dev.conllu") == {"dev": ud_sample / "en_ewt-ud-dev.conllu"}


def test_multiword_and_empty_nodes_the_ud_way(tmp_path):
    text = "\n".join([
        "# sent_id = a",
        "# text = I don't know.",
        ROW.format(id=1, form="I", upos="PRON", head=3, rel="nsubj"),
        "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_",
        ROW.format(id=2, form="do", upos="AUX", head=4, rel="aux"),
        ROW.format(id=3, form="n't", upos="PART", head=4, rel="advmod"),
        ROW.format(id=4, form="know", upos="VERB", head=0, rel="root"),
        "4.1\tknow\tknow\tVERB\tVB\t_\t_\t_\t4:conj\t_",
        ROW.format(id=5, form=".", upos="PUNCT", head=4, rel="punct"),
        "", ""])
    text = text.replace("\t3\tnsubj", "\t4\tnsubj")
    (s,) = read_conllu(_write(tmp_path, text))
    assert s.words == ("I", "do", "n't", "know", ".")
    assert s.tokens == ((1, 2, "don't"),)
    assert s.n_empty == 1
    assert s.heads == (4, 4, 4, 0, 4)
    assert s.sent_id == "a" and s.text == "I don't know."
    ds = from_conllu(tmp_path / "x.conllu", "upos")
    assert ds.words[0] == s.words and ds.labels[0] == ("PRON", "AUX", "PART", "VERB", "PUNCT")


def _sent(*rows):
    return "\n".join(rows) + "\n\n"


GOOD = _sent(ROW.format(id=1, form="Dogs", upos="NOUN", head=2, rel="nsubj"),
             ROW.format(id=2, form="bark", upos="VERB", head=0, rel="root"))


@pytest.mark.parametrize("bad_line, message", [
    ("1\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_", "expected 10 tab-separated columns, found 9"),
    (ROW.format(id=1, form="Dogs", upos="NOUN", head="two", rel="nsubj"), "HEAD 'two' of word 1 is not an integer"),
    (ROW.format(id=1, form="Dogs", upos="NOUN", head=7, rel="nsubj"), "outside the sentence"),
    ("x\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_", "ID 'x' is not an integer"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    text = GOOD + "# sent_id = 2\n" + bad_line + "\n" + ROW.format(id=2, form="bark", upos="VERB", head=0,
                                                                    rel="root") + "\n\n"
    p = _write(tmp_path, text, "bad.conllu")
    with pytest.raises(ConlluError, match=message) as info:
        read_conllu(p)
    assert info.value.line == 5 and str(p) in str(info.value) and f"{p}:5:" in str(info.value)


def test_cycle_is_an_error_naming_file_and_line(tmp_path):
    text = GOOD + _sent(ROW.format(id=1, form="a", upos="X", head=0, rel="root"),
                        ROW.format(id=2, form="b", upos="X", head=3, rel="dep"),
                        ROW.format(id=3, form="c", upos="X", head=2, rel="dep"))
    p = _write(tmp_path, text, "cycle.conllu")
    with pytest.raises(ConlluError, match="cycle") as info:
        read_conllu(p)
    assert info.value.line in (5, 6) and f"{p}:" in str(info.value)
    no_root = _sent(ROW.format(id=1, form="a", upos="X", head=2, rel="dep"),
                    ROW.format(id=2, form="b", upos="X", head=1, rel="dep"))
    with pytest.raises(ConlluError, match="no root"):
        read_conllu(_write(tmp_path, no_root, "noroot.conllu"))
    self_loop = _sent(ROW.format(id=1, form="a", upos="X", head=1, rel="dep"))
    with pytest.raises(ConlluError, match="own head"):
        read_conllu(_write(tmp_path, self_loop, "self.conllu"))


def test_missing_file_and_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_conllu(tmp_path / "nope.conllu")
    with pytest.raises(FileNotFoundError, match="probekit data fetch ud_ewt"):
        ud_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist.*probekit data fetch ud_ewt"):
        ud_files(tmp_path / "nope")


def test_tree_depths_and_distances_by_hand():
    # 1 <- 2 (root) -> 3 -> 4
    heads = (2, 0, 2, 3)
    assert tree_depths(heads) == [1, 0, 1, 2]
    d = tree_distances(heads)
    want = np.array([[0, 1, 2, 3], [1, 0, 1, 2], [2, 1, 0, 1], [3, 2, 1, 0]])
    np.testing.assert_array_equal(d, want)
    with pytest.raises(ValueError, match="cycle"):
        tree_depths((2, 1))


@pytest.mark.parametrize("split", ["train", "dev"])
def test_reader_agrees_with_the_conllu_package(ud_sample, split):
    conllu = pytest.importorskip("conllu", reason="the conllu package (probekit[dev]) is the reference reader")
    dev = ud_sample / f"en_ewt-ud-{split}.conllu"
    ours = read_conllu(dev)
    with open(dev, encoding="utf-8") as fh:
        theirs = list(conllu.parse_incr(fh))
    assert len(theirs) == len(ours)
    for a, b in zip(ours, theirs):
        words = [t for t in b if isinstance(t["id"], int)]
        assert a.words == tuple(t["form"] for t in words)
        assert a.heads == tuple(t["head"] for t in words)
        assert a.deprels == tuple(t["deprel"] for t in words)
        assert a.xpos == tuple(t["xpos"] for t in words)
        assert a.feats == tuple(dict(t["feats"] or {}) for t in words)


def test_a_byte_order_mark_is_accepted(tmp_path):
    """A CoNLL-U file saved with a UTF-8 BOM gave a misleading column-count error (issue 25)."""
    p = tmp_path / "bom.conllu"
    p.write_bytes(b"\xef\xbb\xbf" + GOOD.encode("utf-8"))
    plain = read_conllu(_write(tmp_path, GOOD, "plain.conllu"))
    assert [s.words for s in read_conllu(p)] == [s.words for s in plain]
    p.write_bytes(b"\xef\xbb\xbf" + ROW.format(id=1, form="Hi", upos="INTJ", head=0, rel="root").encode() + b"\n\n")
    assert read_conllu(p)[0].words == ("Hi",)


def test_a_sentence_with_two_roots_is_refused_by_name(tmp_path):
    text = GOOD + "# sent_id = two-roots\n" + "\n".join([
        ROW.format(id=1, form="Dogs", upos="NOUN", head=0, rel="root"),
        ROW.format(id=2, form="bark", upos="VERB", head=0, rel="root")]) + "\n\n"
    p = _write(tmp_path, text, "roots.conllu")
    with pytest.raises(ConlluError, match=r"sentence two-roots has 2 roots \(words 1, 2 have HEAD 0\)") as info:
        read_conllu(p)
    assert info.value.line == 6 and f"{p}:6:" in str(info.value)
