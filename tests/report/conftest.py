"""A real run folder shared by the report tests (MiniLM-L6 on Rotten Tomatoes sentences)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.report._realrun import build_real_run


@pytest.fixture(scope="session")
def real_run(minilm, tmp_path_factory):
    """A run folder written per the run-folder contract from real library outputs (reports not yet written)."""
    try:
        from probekit.data._spacy import load_spacy

        load_spacy()
    except ImportError as exc:
        pytest.skip(f"spaCy or its English model is not installed (the RT task needs it): {exc}")
    old = os.environ.get("PROBEKIT_CACHE")
    os.environ["PROBEKIT_CACHE"] = str(tmp_path_factory.mktemp("probekit_cache"))
    try:
        yield build_real_run(minilm, tmp_path_factory.mktemp("run") / "demo")
    finally:
        if old is None:
            os.environ.pop("PROBEKIT_CACHE", None)
        else:
            os.environ["PROBEKIT_CACHE"] = old


@pytest.fixture
def run_copy(real_run, tmp_path):
    """A private copy of the run folder (without its stores) that a test may change."""
    dst = tmp_path / "run"
    shutil.copytree(real_run, dst, ignore=shutil.ignore_patterns("stores"))
    return dst
