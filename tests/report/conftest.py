"""A run folder shared by the report tests, written by the pipeline itself.

``probekit.pipeline.run_experiment`` on a tiny 2-layer BERT built from a config
and 40 Rotten Tomatoes sentences: every stage (extraction, task stores,
probes with controls and the random-weights baseline, attention, fine-tuning,
a dynamic-int8 variant, attributions, comparison), the report stage left to
the tests. So the report is tested on exactly what the pipeline writes.
"""

from __future__ import annotations

import copy
import os
import shutil

import pytest

from probekit.pipeline import run_experiment
from tests.pipeline.conftest import ANALYSIS

RUN_CONFIG = {
    **copy.deepcopy(ANALYSIS),
    "name": "report-test",
    "probes": {"tasks": ["sentiment"], "seeds": [0, 1], "n_boot": 50},
    "finetune": {"train_size": 32, "eval_size": 16, "epochs": 1, "batch_size": 16, "max_length": 24},
    "variants": {"quantize": {"method": "dynamic-int8"}, "latency_repeats": 2},
    "attribution": {"sentences": 2, "n_steps": 4},
    "compare": {"sentences": 30},
    "outputs": {"figures": True, "report": False},
}


@pytest.fixture(scope="session")
def real_run(tmp_path_factory):
    """The pipeline's run folder (reports not yet written)."""
    try:
        from probekit.data import load_spacy

        load_spacy()
    except ImportError as exc:
        pytest.skip(f"spaCy or its English model is not installed (the RT task needs it): {exc}")
    old = os.environ.get("PROBEKIT_CACHE")
    os.environ["PROBEKIT_CACHE"] = str(tmp_path_factory.mktemp("probekit_cache"))
    try:
        out = tmp_path_factory.mktemp("run") / "demo"
        run_experiment(copy.deepcopy(RUN_CONFIG), out, progress=False)
        yield out
    finally:
        if old is None:
            os.environ.pop("PROBEKIT_CACHE", None)
        else:
            os.environ["PROBEKIT_CACHE"] = old


@pytest.fixture
def run_copy(real_run, tmp_path):
    """A private copy of the run folder (without its stores and models) that a test may change."""
    dst = tmp_path / "run"
    shutil.copytree(real_run, dst, ignore=shutil.ignore_patterns("stores", "models"))
    return dst
