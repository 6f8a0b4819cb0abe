"""Fixtures of the store tests: a tiny random BERT and deterministic texts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.store._common import make_texts, tiny_model

CHILD = Path(__file__).with_name("_child.py")


@pytest.fixture(scope="session")
def tiny():
    return tiny_model()


@pytest.fixture(scope="session")
def texts() -> list[str]:
    return make_texts(80)


def run_child(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``_child.py`` with ``args`` in a fresh interpreter."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    proc = subprocess.run([sys.executable, str(CHILD), *args], capture_output=True, text=True, env=full_env,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
