"""The linear-chain baseline of ``papers/hewitt_manning_2019/run.py``, checked on hand-built trees."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from probekit.data import tree_depths, tree_distances

RUN = Path(__file__).resolve().parents[2] / "papers" / "hewitt_manning_2019" / "run.py"


@pytest.fixture(scope="module")
def hm():
    spec = importlib.util.spec_from_file_location("hewitt_manning_run", RUN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _gold(heads):
    return np.asarray(tree_distances(heads), dtype=float), np.asarray(tree_depths(heads), dtype=float)


def test_chain_baseline_on_a_chain_is_perfect(hm):
    d, dep = _gold([0, 1, 2, 3, 4, 5])  # word 1 is the root, each next word hangs on the previous one
    res = hm.chain_baseline([d], [dep], [np.ones(6, bool)])
    assert res["uuas"] == 1.0 and res["root_accuracy"] == 1.0
    assert res["distance_spearman"] == pytest.approx(1.0) and res["depth_spearman"] == pytest.approx(1.0)


def test_chain_baseline_on_a_star_by_hand(hm):
    # the last word (6) is the root and every other word hangs on it: the chain finds only the edge 5-6
    d, dep = _gold([6, 6, 6, 6, 6, 0])
    res = hm.chain_baseline([d], [dep], [np.ones(6, bool)])
    assert res["uuas"] == pytest.approx(1 / 5)
    assert res["root_accuracy"] == 0.0  # the chain puts the root at the first word
    # punctuation masking: with only words 5 and 6 kept, the one gold edge is found
    keep = np.array([False, False, False, False, True, True])
    assert hm.chain_baseline([d], [dep], [keep])["uuas"] == 1.0
