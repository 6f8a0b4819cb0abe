"""Splits are said aloud: no train split (a UD folder of dev and test only), and classes found only in test."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import probekit
from probekit.data import ProbingDataset, SplitWarning, Task, build_task
from probekit.probes import ProbeSuite, extract_task, task_inputs
from tests.conftest import tiny_config
from tests.data.conftest import UD_SAMPLE_DEV, UD_SAMPLE_TRAIN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    return probekit.load_model(tiny_config("bert"), seed=0)


def test_a_ud_folder_without_a_train_file_says_it_trains_on_dev(model, tmp_path):
    """UD English GUM ships dev and test files only: probekit trained on dev without saying so (issue 25)."""
    folder = tmp_path / "gum"
    folder.mkdir()
    shutil.copy(UD_SAMPLE_DEV, folder / "en_gum-ud-dev.conllu")
    shutil.copy(UD_SAMPLE_TRAIN, folder / "en_gum-ud-test.conllu")
    task = build_task("upos", "ud", path=folder, limit=40)
    assert set(task.splits) == {"dev", "test"}
    store = extract_task(model, task, tmp_path / "store", ["L1.resid"], progress=False)
    with pytest.warns(SplitWarning, match=r"task 'upos' has no 'train' split \(it has dev, test; e.g. a UD folder "
                                          r"without a \*-ud-train.conllu file\): the probes are trained on the 40 "
                                          r"'dev' examples and tested on 'test'"):
        task_inputs(store, task)
    with pytest.warns(SplitWarning, match="no 'train' split"):
        ProbeSuite(task, n_boot=20, controls=False).run(store)


def test_a_class_present_only_in_test_is_warned_about(model, tmp_path):
    texts = [["a", "cat"], ["the", "dog"], ["one", "bird"], ["some", "fish"], ["a", "frog"], ["the", "owl"]]
    labels = [["DET", "NOUN"], ["DET", "NOUN"], ["NUM", "NOUN"], ["DET", "NOUN"], ["DET", "NOUN"], ["DET", "X"]]
    ds = ProbingDataset.from_lists(texts, labels, level="word", splits=["train"] * 4 + ["test"] * 2)
    task = Task("tags", "word", ds, ds.label_names, 0, "hand-made", "custom")
    store = extract_task(model, task, tmp_path / "store", ["L1.resid"], progress=False)
    with pytest.warns(SplitWarning, match=r"task 'tags': class 'X' occurs only in the test split \(1 of 4 test "
                                          r"rows\): no probe trained on the training rows can predict them"):
        inp = task_inputs(store, task)
    assert np.asarray(inp.y)[inp.test].tolist() == ["DET", "NOUN", "DET", "X"]
