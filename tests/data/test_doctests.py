"""The docstring examples of the data modules that have them run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["_conllu", "_fetch", "_pins"])
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path))  # nothing is written to the user's cache
    result = doctest.testmod(importlib.import_module(f"probekit.data.{name}"))
    assert result.failed == 0 and result.attempted > 0
