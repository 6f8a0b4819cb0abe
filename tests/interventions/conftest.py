"""Eraser tests run torch single-threaded: the problems are small and the 2 cores are shared."""

from __future__ import annotations

import pytest

from tests.conftest import single_torch_thread


@pytest.fixture(autouse=True, scope="package")
def _single_thread_torch():
    with single_torch_thread():
        yield
