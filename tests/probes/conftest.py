"""Probe tests run torch single-threaded: the problems are small, and torch's intra-op
thread pool is slowed down by orders of magnitude when other processes share the cores."""

from __future__ import annotations

import pytest

from tests.conftest import single_torch_thread


@pytest.fixture(autouse=True, scope="package")
def _single_thread_torch():
    with single_torch_thread():
        yield
