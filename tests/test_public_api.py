"""The public API: every package's ``__all__`` is checked in, and every docstring example runs.

``tests/public_api.json`` lists each public module's ``__all__``; a change to the
API shows up here as a diff to that file, made on purpose with
``PROBEKIT_UPDATE_API=1 pytest tests/test_public_api.py``.
"""

from __future__ import annotations

import doctest
import importlib
import json
import os
import pkgutil
from pathlib import Path

import pytest

import probekit

SNAPSHOT = Path(__file__).parent / "public_api.json"


def all_modules() -> list[str]:
    """Every module of probekit, private ones included (public names are defined there)."""
    names = ["probekit"]
    for info in pkgutil.walk_packages(probekit.__path__, "probekit."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


def public_modules() -> list[str]:
    return [m for m in all_modules() if not any(p.startswith("_") for p in m.split("."))]


def api() -> dict[str, list[str]]:
    return {m: sorted(getattr(importlib.import_module(m), "__all__", [])) for m in public_modules()}


def test_public_api_matches_snapshot():
    current = api()
    if os.environ.get("PROBEKIT_UPDATE_API"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    snap = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    added = {m: sorted(set(v) - set(snap.get(m, []))) for m, v in current.items()}
    removed = {m: sorted(set(v) - set(current.get(m, []))) for m, v in snap.items()}
    diff = {k: v for k, v in {**{f"+{m}": a for m, a in added.items()},
                              **{f"-{m}": r for m, r in removed.items()}}.items() if v}
    assert not diff, (f"the public API changed: {diff}; if on purpose, run "
                      "PROBEKIT_UPDATE_API=1 pytest tests/test_public_api.py and commit tests/public_api.json")
    assert current == snap


@pytest.mark.parametrize("module", public_modules())
def test_every_exported_name_exists(module):
    mod = importlib.import_module(module)
    exported = getattr(mod, "__all__", None)
    assert exported is not None, f"{module} has no __all__"
    assert len(exported) == len(set(exported)), f"{module}.__all__ lists a name twice"
    missing = [n for n in exported if not hasattr(mod, n)]
    assert not missing, f"{module}.__all__ names {missing}, which it does not define"


@pytest.mark.parametrize("module", all_modules())
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {module} failed"
