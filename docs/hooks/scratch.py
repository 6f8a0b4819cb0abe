"""mkdocs hook: the tutorials executed during a build write their stores under one scratch folder, removed after it.

Each tutorial makes its working folder with ``tempfile.mkdtemp`` and removes it in its last cell; this hook points
``TMPDIR`` of the build (and so of the notebook kernels it starts) at a folder of its own and removes that folder
when mkdocs exits, so a tutorial that fails half-way leaves nothing behind either. Before, every build left its
tutorials' folders (up to 800 MB each) in the system's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_state: dict[str, str | None] = {}


def on_startup(command: str, dirty: bool) -> None:
    scratch = tempfile.mkdtemp(prefix="probekit-docs-build-")
    _state["previous"] = os.environ.get("TMPDIR")
    _state["scratch"] = scratch
    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = None  # the next call reads TMPDIR again


def on_shutdown() -> None:
    scratch = _state.pop("scratch", None)
    previous = _state.pop("previous", None)
    if previous is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = previous
    tempfile.tempdir = None
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
