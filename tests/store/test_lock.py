"""One writer at a time: a second writer gets one line naming the holder; a killed writer's lock is taken over."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import probekit
from probekit.store import StoreError, StoreLockedError
from probekit.store._lock import store_lock
from tests.store._common import make_texts, store_files
from tests.store.conftest import CHILD, run_child

N, SHARD, SITES = 40, 16, "emb,L1.resid"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("ref") / "store"
    _extract(tiny, out)
    return out


def _extract(model, out, texts=None, **kw):
    return probekit.extract(model, texts or make_texts(N), SITES.split(","), out, shard_size=SHARD,
                            batch_tokens=512, progress=False, **kw)


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _wait_for(predicate, what: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the first writer ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("second", ["identical", "cli-other-data-overwrite"])
def test_a_second_writer_gets_one_line_naming_the_holder(tmp_path, reference, second):
    out = tmp_path / "store"
    go = tmp_path / "go"
    args = [str(out), str(N), "--shard-size", str(SHARD), "--sites", SITES]
    first = subprocess.Popen([sys.executable, str(CHILD), *args, "--hold", str(go)], env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the first writer holds the lock and has begun the store (it waits at its first forward pass)
        _wait_for(lambda: (out / "probekit.lock").exists() and (out / "manifest.json").exists(),
                  "the first writer's lock", first)
        if second == "identical":  # the same extraction again (on main both wrote the same shards at once)
            cmd = [sys.executable, str(CHILD), *args, "--one-line-errors"]
        else:  # another model and other data, replacing the store: overwrite does not get past the lock
            texts = tmp_path / "texts.txt"
            texts.write_text("\n".join(make_texts(7, seed=5)) + "\n")
            cmd = [sys.executable, "-m", "probekit", "extract", "--data", str(texts), "--sites", "emb", "--out",
                   str(out), "--no-progress", "--overwrite"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
        assert first.poll() is None, "the first writer finished before the second one ran: nothing was tested"
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, proc.stderr
        assert f"is being written by another probekit process (pid {first.pid} on host {socket.gethostname()}, since " \
               in errors[0], errors[0]
        assert "_child.py" in errors[0]  # the holder's command line
    finally:
        go.touch()
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    # the first writer completed a valid store, untouched by the second
    probekit.ActivationStore.open(out, verify="full")
    assert store_files(out) == store_files(reference)
    assert not (out / "probekit.lock").exists()


def test_a_second_writer_in_the_same_process_is_refused(tmp_path, tiny, reference):
    out = tmp_path / "store"
    out.mkdir()
    with store_lock(out):
        info = json.loads((out / "probekit.lock").read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname() and info["since"]
        for overwrite in (False, True):
            with pytest.raises(StoreLockedError, match=f"pid {os.getpid()} on host"):
                _extract(tiny, out, overwrite=overwrite)
        assert sorted(p.name for p in out.iterdir()) == ["probekit.lock"]  # nothing else was written
    assert list(out.iterdir()) == []  # the lock is removed with the last writer
    _extract(tiny, out)
    assert store_files(out) == store_files(reference)


@pytest.mark.timeout(600)
def test_a_killed_writer_s_lock_is_taken_over_and_the_work_resumed(tmp_path, tiny, reference, caplog):
    out = tmp_path / "store"
    proc = run_child(str(out), str(N), "--shard-size", str(SHARD), "--sites", SITES, "--kill", "mid-write", "1",
                     check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = json.loads((out / "probekit.lock").read_text())  # the killed writer's lock file stays behind...
    assert left["pid"] != os.getpid()
    with caplog.at_level(logging.WARNING, logger="probekit.store._lock"):
        store = _extract(tiny, out)  # ...and the next writer takes it over (the kernel released the lock)
    assert f"taking over the lock left by pid {left['pid']}" in caplog.text
    assert store.manifest["stats"]["shards_reused"] == 1  # shard 0 was complete
    assert store_files(out) == store_files(reference)
    assert not (out / "probekit.lock").exists()


def test_a_killed_writer_s_store_can_be_replaced(tmp_path, tiny):
    out = tmp_path / "store"
    proc = run_child(str(out), str(N), "--shard-size", str(SHARD), "--sites", SITES, "--kill", "mid-write", "1",
                     check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (out / "probekit.lock").exists()
    with pytest.raises(probekit.store.FingerprintMismatchError):
        _extract(tiny, out, texts=make_texts(9, seed=4))
    # the left lock file is probekit's own: replacing the store does not call the folder foreign
    store = _extract(tiny, out, texts=make_texts(9, seed=4), overwrite=True)
    assert store.n_examples == 9 and not (out / "probekit.lock").exists()


@pytest.mark.parametrize("kind", ["symlink", "directory"])
def test_a_lock_file_that_is_not_probekit_s_makes_the_folder_foreign(tmp_path, tiny, kind):
    out = tmp_path / "store"
    out.mkdir()
    mine = tmp_path / "my-notes.txt"
    mine.write_text("mine")
    if kind == "symlink":
        (out / "probekit.lock").symlink_to(mine)
    else:
        (out / "probekit.lock").mkdir()
    for overwrite in (False, True):
        with pytest.raises(StoreError, match="not a probekit store"):
            _extract(tiny, out, overwrite=overwrite)
    assert mine.read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["probekit.lock"]


def test_derive_takes_the_same_lock(tmp_path, reference):
    out = tmp_path / "derived"
    out.mkdir()
    with store_lock(out):
        with pytest.raises(StoreLockedError, match=f"pid {os.getpid()} on host"):
            probekit.store.derive(reference, make_texts(5), out, sentence_pooling=("mean",), word_pooling=())
    derived = probekit.store.derive(reference, make_texts(5), out, sentence_pooling=("mean",), word_pooling=())
    assert derived.n_examples == 5 and not (out / "probekit.lock").exists()
