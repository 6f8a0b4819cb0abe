"""The docstring examples of every interventions module run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["_eraser", "_leace", "_inlp", "_random", "_rows", "_io", "_base", "_patch", "_behaviour"]


@pytest.mark.parametrize("name", ["probekit.interventions"] + [f"probekit.interventions.{m}" for m in MODULES])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and (result.attempted > 0 or name == "probekit.interventions._io")
