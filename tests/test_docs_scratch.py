"""The documentation build leaves nothing in the temporary folder: its hook and the tutorials' last cells."""

from __future__ import annotations

import ast
import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.py"))


def _hook():
    spec = importlib.util.spec_from_file_location("scratch_hook", ROOT / "docs" / "hooks" / "scratch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_build_writes_under_a_scratch_folder_it_removes(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read from TMPDIR, as in a build
    hook = _hook()
    hook.on_startup(command="build", dirty=False)
    try:
        scratch = Path(os.environ["TMPDIR"])
        assert scratch.parent == tmp_path and scratch.name.startswith("probekit-docs-build-")
        made = Path(tempfile.mkdtemp(prefix="probekit-tutorial-"))  # what a tutorial does
        assert made.parent == scratch
        (made / "rows.bin").write_bytes(b"x" * 1000)
    finally:
        hook.on_shutdown()
    assert not scratch.exists() and os.environ["TMPDIR"] == str(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_each_tutorial_removes_its_folder_in_its_last_statement(path):
    tree = ast.parse(path.read_text())
    made = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "tempfile.mkdtemp"]
    last = ast.unparse(tree.body[-1])
    assert made and last == "shutil.rmtree(work)", f"{path.name} ends with {last!r}"
