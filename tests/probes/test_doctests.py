"""The docstring examples of every probes module run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["_linear", "_mlp", "_batched", "_mdl", "_stats", "_stream", "_structural", "_tree_metrics"]


@pytest.mark.parametrize("name", ["probekit.probes"] + [f"probekit.probes.{m}" for m in MODULES])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and (result.attempted > 0 or name == "probekit.probes")
