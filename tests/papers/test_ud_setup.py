"""The shared set-up of the UD paper checks (``papers/_ud.py``): train sample and the whole dev file as test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.data.conftest import UD_SAMPLE_DEV as UD_DEV
from tests.data.conftest import UD_SAMPLE_TRAIN as UD_TRAIN

ROOT = Path(__file__).resolve().parents[2]


def _head(src: Path, dst: Path, n: int) -> None:
    """The first ``n`` sentences of a CoNLL-U file."""
    blocks = src.read_text(encoding="utf-8").split("\n\n")[:n]
    dst.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")


@pytest.fixture(scope="module")
def ud():
    sys.path.insert(0, str(ROOT / "papers"))
    import _ud

    yield _ud
    sys.path.remove(str(ROOT / "papers"))


@pytest.fixture
def small_ud(tmp_path):
    _head(UD_TRAIN, tmp_path / "en_ewt-ud-train.conllu", 40)
    _head(UD_DEV, tmp_path / "en_ewt-ud-dev.conllu", 11)
    return tmp_path


def test_sample_and_whole_dev_as_test(ud, small_ud):
    task = ud.ud_task("upos", small_ud, train_sentences=15, seed=3)
    splits = task.dataset.splits
    assert splits.count("train") == 15 and splits.count("test") == 11 and "dev" not in splits
    src = task.meta["source_index"]
    assert src[:15] == sorted(src[:15]) and max(src[:15]) < 40  # train sample, in file order
    assert src[15:] == list(range(40, 51))  # every dev sentence, both halves
    assert task.meta["train_sample"] == {"n_train_file": 40, "n_kept": 15, "n_fit": 15, "seed": 3}
    again = ud.ud_task("upos", small_ud, train_sentences=15, seed=3)
    other = ud.ud_task("upos", small_ud, train_sentences=15, seed=4)
    assert again.meta["source_index"] == src and other.meta["source_index"] != src
    deprel = ud.ud_task("deprel", small_ud, train_sentences=15, seed=3)
    assert deprel.dataset.word_lists() == task.dataset.word_lists()  # one store serves every word task
    words = ud.words_by_split(task)
    assert words["train"] + words["test"] == sum(len(w) for w in task.dataset.word_lists())


def test_all_train_sentences_and_bad_input(ud, small_ud):
    full = ud.ud_task("upos", small_ud, train_sentences=None)
    assert full.dataset.splits.count("train") == 40
    assert ud.ud_task("upos", small_ud, train_sentences=1000).dataset.splits.count("train") == 40
    with pytest.raises(ValueError, match="train_sentences must be a positive"):
        ud.ud_task("upos", small_ud, train_sentences=0)
    (small_ud / "en_ewt-ud-train.conllu").unlink()
    with pytest.raises(ValueError, match="no train file"):
        ud.ud_task("upos", small_ud)


def test_fit_subset_keeps_the_store_examples(ud, small_ud):
    store_task = ud.ud_task("upos", small_ud, train_sentences=20, seed=1)
    task = ud.ud_task("upos", small_ud, train_sentences=20, fit_sentences=6, seed=1)
    assert task.dataset.word_lists() == store_task.dataset.word_lists()  # the same store serves both
    splits = task.dataset.splits
    assert splits.count("train") == 6 and splits.count("dev") == 14 and splits.count("test") == 11
    assert task.meta["train_sample"]["n_fit"] == 6 and task.meta["train_sample"]["n_kept"] == 20
    assert ud.words_by_split(task)["train"] < ud.words_by_split(store_task)["train"]
    with pytest.raises(ValueError, match="fit_sentences must be a positive"):
        ud.ud_task("upos", small_ud, train_sentences=20, fit_sentences=-1)


def test_a_test_file_beside_train_and_dev_changes_nothing(ud, small_ud):
    """The checks read train and dev only: a test file beside them (the fetched copy has one) is left out."""
    before = ud.ud_task("deprel", small_ud, train_sentences=15, seed=3)
    row = "1\tHi\thi\tINTJ\tUH\t_\t0\tvocative_only_in_test\t_\t_\n\n"
    (small_ud / "en_ewt-ud-test.conllu").write_text(row * 5, encoding="utf-8")
    after = ud.ud_task("deprel", small_ud, train_sentences=15, seed=3)
    assert "vocative_only_in_test" not in after.label_names
    assert after.label_names == before.label_names and after.dataset == before.dataset
    assert after.meta["source_index"] == before.meta["source_index"]


def test_default_folder_is_the_library_default(ud, small_ud, monkeypatch):
    monkeypatch.setenv("PROBEKIT_UD_PATH", str(small_ud))
    assert ud.ud_task("upos", train_sentences=15, seed=3).dataset == ud.ud_task(
        "upos", small_ud, train_sentences=15, seed=3).dataset
