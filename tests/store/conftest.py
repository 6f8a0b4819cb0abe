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


# ---------------------------------------------------------------- a real S3 server (SeaweedFS)
S3_BUCKET = "probekit-tests"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A SeaweedFS server (``weed mini``) on free local ports with the bucket ``probekit-tests``.

    Yields the S3 endpoint URL; the process is stopped at the end of the session. Fails (never skips) when
    the server cannot start, naming the install line.
    """
    from tests.store._seaweed import SeaweedError, seaweedfs

    try:
        with seaweedfs(tmp_path_factory.mktemp("seaweedfs"), S3_BUCKET) as endpoint:
            yield endpoint
    except SeaweedError as exc:
        pytest.fail(f"the remote-store tests need a SeaweedFS S3 server: {exc}")


@pytest.fixture
def s3_url(s3_server, tmp_path, monkeypatch, request):
    """A fresh store URL in the test bucket, with S3 credentials, endpoint and a private cache in the environment
    (so subprocesses see them too)."""
    import re
    import uuid

    import fsspec.config

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "probekit")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "probekit")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": s3_server})
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40]
    return f"s3://{S3_BUCKET}/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def s3(s3_server):
    """An s3fs filesystem on the test server (to look at and tamper with the objects directly)."""
    from tests.store._seaweed import s3fs_for

    return s3fs_for(s3_server)
