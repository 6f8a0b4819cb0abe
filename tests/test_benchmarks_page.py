"""The benchmarks page is generated from ``benchmarks/results/*.json``: every committed result renders, and
every target it records is a verdict (met or missed), not a bare threshold the page would show as missed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = sorted(p for p in (ROOT / "benchmarks" / "results").glob("*.json") if not p.name.endswith(".quick.json"))


def _hook():
    spec = importlib.util.spec_from_file_location("benchmarks_hook", ROOT / "docs" / "hooks" / "benchmarks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_result_renders_on_the_page():
    hook = _hook()
    page = hook.render()
    for path in RESULTS:
        assert f"## {hook.TABLES[path.name][0]}" in page, path.name


def _verdicts(x, where: str):
    if isinstance(x, dict):
        for k, v in x.items():
            if k == "targets" and isinstance(v, dict):
                for name, t in v.items():
                    yield f"{where}{name}", t
            elif isinstance(v, dict) and k not in ("machine", "setup"):
                yield from _verdicts(v, f"{where}{k}/")


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_targets_are_verdicts(path):
    for name, t in _verdicts(json.loads(path.read_text()), ""):
        if isinstance(t, dict) and "met" in t:
            assert isinstance(t["met"], bool), (path.name, name, t)
        elif isinstance(t, dict):
            assert all(isinstance(v, bool) for v in t.values()), (path.name, name, t)
        else:
            assert t is None or isinstance(t, bool), (path.name, name, t)
