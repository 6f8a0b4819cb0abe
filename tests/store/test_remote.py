"""Stores at URLs against a real S3 server (SeaweedFS, started by the ``s3_server`` fixture), ``memory://`` and
``file://``: written, resumed after a kill, read through the verified cache, verified, pushed and pulled,
written by two torchrun ranks, streamed by the probe suite, and refused when forged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import probekit
from probekit.cli import main
from probekit.store import CorruptShardError, StoreError, StoreLockedError, derive
from probekit.store._remote import Remote
from probekit.store._remote_write import Lease
from probekit.store._transfer import push
from tests.store._common import comparable, make_texts, store_files
from tests.store.conftest import CHILD, run_child
from tests.store.test_forged import (
    absolute,
    huge_consistent,
    huge_shape,
    nested_sidecar,
    object_dtype,
    stream_key_traversal,
    traversal,
)

SITES = ["emb", "L1.resid", "L0.attn.pattern"]
N, SHARD = 40, 8


def _extract(model, out, **kw):
    return probekit.extract(model, make_texts(N), SITES, out, shard_size=SHARD, batch_tokens=512, progress=False,
                            word_pooling=["mean"], sentence_pooling=["mean"], **kw)


def remote_files(url: str) -> dict[str, bytes]:
    """Every object of a store at ``url`` as bytes, the manifest without its run statistics (as store_files)."""
    r = Remote(url)
    out = {}
    for rel in sorted(r.listing()):
        out[rel] = comparable(rel, r.fs.cat_file(r.key(rel)))
    return out


@pytest.fixture(scope="module")
def local_ref(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("remote") / "ref"
    _extract(tiny, out)
    return out


def test_s3_write_gives_the_bytes_of_a_local_store(s3_url, tiny, local_ref):
    store = _extract(tiny, s3_url)
    assert store.url == s3_url and store.location == s3_url
    assert remote_files(s3_url) == store_files(local_ref)  # no lease object left, nothing else
    ref = probekit.ActivationStore.open(local_ref)
    assert store.fingerprint == ref.fingerprint
    np.testing.assert_array_equal(store["L1.resid"].numpy(), ref["L1.resid"].numpy())
    np.testing.assert_array_equal(store["L0.attn.pattern"][7], ref["L0.attn.pattern"][7])
    pd.testing.assert_frame_equal(store.examples, ref.examples)
    again = _extract(tiny, s3_url)  # a second run reuses every shard
    assert again.manifest["stats"]["shards_reused"] == N // SHARD


def test_s3_resume_after_a_kill_between_data_and_sidecar(s3_url, local_ref):
    proc = run_child(s3_url, str(N), "--shard-size", str(SHARD), "--sites", ",".join(SITES), "--pooling",
                     "--kill", "before-remote-sidecar", "2", check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]
    objects = Remote(s3_url).listing()
    assert "shards/00002.json" not in objects and any(k.startswith("shards/00002/") for k in objects)
    with pytest.raises(StoreError, match="incomplete"):
        probekit.ActivationStore.open(s3_url)
    run_child(s3_url, str(N), "--shard-size", str(SHARD), "--sites", ",".join(SITES), "--pooling")
    store = probekit.ActivationStore.open(s3_url, verify="full")
    assert store.manifest["stats"]["shards_reused"] == 2  # shards 0 and 1 were committed before the kill
    ref = store_files(local_ref)
    got = remote_files(s3_url)
    assert got.keys() == ref.keys()  # the orphaned data objects of shard 2 were replaced, the lease is gone
    assert {k: v for k, v in got.items() if k != "manifest.json"} == {k: v for k, v in ref.items()
                                                                       if k != "manifest.json"}


def test_s3_read_goes_through_the_verified_cache_within_its_budget(s3_url, tiny, local_ref, monkeypatch, tmp_path):
    push(local_ref, s3_url)
    cold = probekit.ActivationStore.open(s3_url)
    x = cold["L1.resid"].numpy()
    assert cold._fetcher.fetched > 0
    cached = sorted((tmp_path / "cache" / "stores").rglob("*.bin"))
    assert cached and all(p.stat().st_size > 0 for p in cached)
    warm = probekit.ActivationStore.open(s3_url)
    np.testing.assert_array_equal(warm["L1.resid"].numpy(), x)
    assert warm._fetcher.fetched == 0  # every file came from the cache, hashed again before use
    cached[0].write_bytes(b"\0" * cached[0].stat().st_size)  # a damaged cached copy is fetched again
    fresh = probekit.ActivationStore.open(s3_url)
    fresh.verify()
    assert fresh._fetcher.fetched > 0
    shutil.rmtree(tmp_path / "cache")
    monkeypatch.setenv("PROBEKIT_CACHE_BYTES", "20KB")
    small = probekit.ActivationStore.open(s3_url)
    np.testing.assert_array_equal(small["L1.resid"].numpy(), x)
    small.verify()
    sizes = sorted(p.stat().st_size for p in (tmp_path / "cache" / "stores").rglob("*.bin"))
    assert sum(sizes) <= (20 << 10) + sum(sizes[-2:]) and sum(sizes) < small._fetcher.fetched  # latest 2 kept


def test_s3_flipped_byte_is_found_and_never_served(s3_url, local_ref, s3):
    push(local_ref, s3_url)
    key = s3_url[len("s3://"):] + "/shards/00001/L1.resid.tok.bin"
    data = bytearray(s3.cat_file(key))
    data[len(data) // 2] ^= 0x40
    s3.pipe_file(key, bytes(data))
    store = probekit.ActivationStore.open(s3_url)
    store["L1.resid"].example(0)  # shard 0 is intact
    with pytest.raises(CorruptShardError, match=r"00001/L1\.resid\.tok\.bin does not match its"):
        store["L1.resid"].example(SHARD)
    assert not list(store.path.rglob("00001/L1.resid.tok.bin"))  # nothing of it reached the cache
    res = CliRunner().invoke(main, ["store", "verify", s3_url])
    assert res.exit_code == 1 and "00001/L1.resid.tok.bin (shard 1, stream L1.resid.tok) does not match" in res.output


def test_remote_push_ls_verify_pull_are_verified_and_idempotent(s3_url, local_ref, tmp_path):
    run = CliRunner()
    res = run.invoke(main, ["store", "push", str(local_ref), s3_url])
    assert res.exit_code == 0, res.output
    assert "0 already there" in res.output
    res = run.invoke(main, ["store", "push", str(local_ref), s3_url])
    assert res.exit_code == 0 and " 0 files copied" in res.output, res.output  # idempotent
    res = run.invoke(main, ["store", "ls", s3_url.rsplit("/", 1)[0]])
    assert s3_url in res.output and f"{N} examples  {N // SHARD} shards" in res.output and "complete" in res.output
    res = run.invoke(main, ["store", "verify", s3_url])
    assert res.exit_code == 0 and "every file matches" in res.output, res.output
    dest = tmp_path / "pulled"
    res = run.invoke(main, ["store", "pull", s3_url, str(dest)])
    assert res.exit_code == 0, res.output
    assert store_files(dest) == store_files(local_ref)
    shutil.rmtree(dest / "shards" / "00003")  # an interrupted pull: only the missing shard is copied again
    (dest / "shards" / "00003.json").unlink()
    res = run.invoke(main, ["store", "pull", s3_url, str(dest)])
    assert res.exit_code == 0, res.output
    assert store_files(dest) == store_files(local_ref)
    assert "already there" in res.output and ", 0 already there" not in res.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    res = run.invoke(main, ["store", "pull", s3_url, str(tmp_path / "mine")])
    assert res.exit_code == 1 and "notes.txt" in res.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def _torchrun(out: str, *extra: str) -> subprocess.CompletedProcess:
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([torchrun if os.path.exists(torchrun) else "torchrun", "--standalone", "--nproc_per_node",
                           "2", str(CHILD), out, str(N), "--shard-size", str(SHARD), "--sites", ",".join(SITES),
                           "--pooling", *extra], capture_output=True, text=True, env=env, timeout=900)


def test_s3_two_torchrun_ranks_write_one_store_and_a_killed_rank_resumes(s3_url, local_ref):
    proc = _torchrun(s3_url, "--kill", "before-remote-sidecar", "3")  # shard 3 is rank 1's
    assert proc.returncode != 0
    objects = Remote(s3_url).listing()
    assert "shards/00003.json" not in objects and "shards/00000.json" in objects
    proc = _torchrun(s3_url)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    store = probekit.ActivationStore.open(s3_url, verify="full")
    assert store.manifest["stats"]["ranks"] == 2
    assert store.manifest["stats"]["shards_reused"] >= 1 and store.manifest["stats"]["shards_computed"] >= 1
    assert store.fingerprint == probekit.ActivationStore.open(local_ref).fingerprint
    assert remote_files(s3_url) == store_files(local_ref)


def test_remote_store_streams_into_the_probe_suite(s3_url, tmp_path):
    from probekit.data import build_task
    from probekit.probes import ProbeSuite, extract_task
    from tests.conftest import tiny_config
    from tests.data.conftest import UD_SAMPLE_DEV

    task = build_task("upos", "ud", path=UD_SAMPLE_DEV, limit=60)
    model = probekit.load_model(tiny_config("bert"), seed=0)
    local = extract_task(model, task, tmp_path / "local", dtype="float16", progress=False, shard_size=16)
    remote = extract_task(model, task, s3_url, dtype="float16", progress=False, shard_size=16)
    assert len(remote._sidecars) > 1
    frames = [ProbeSuite(task, seeds=(0,), n_boot=50).run({"tiny": st}).to_frame() for st in (local, remote)]
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert remote._fetcher.fetched > 0 and remote._fetcher._pending  # the next shard was fetched ahead
    res = CliRunner().invoke(main, ["probe", "--store", s3_url, "--task", "upos", "--ud-path", str(UD_SAMPLE_DEV),
                                    "--limit", "60", "--n-boot", "50", "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert list((tmp_path / "cli").rglob("*.csv")) or list((tmp_path / "cli").rglob("*.parquet"))


def test_s3_oversized_json_is_refused_unread(s3_url, local_ref, monkeypatch, tmp_path):
    push(local_ref, s3_url)
    sizes = Remote(s3_url).listing()
    limit = sizes["manifest.json"]
    assert sizes["shards/00000.json"] > limit
    monkeypatch.setattr("probekit.store._cache.MAX_JSON_BYTES", limit)  # the sidecar is now "huge"
    with pytest.raises(StoreError, match=rf"shards/00000\.json is \d+ bytes, more than the {limit} a probekit file"):
        probekit.ActivationStore.open(s3_url)
    assert not (tmp_path / "cache" / "stores").exists() or not list((tmp_path / "cache").rglob("00000.json"))


def _forged_copy(local_ref, tmp_path, forge) -> tuple:
    store = tmp_path / "forged"
    shutil.copytree(local_ref, store)
    return store, forge(store, tmp_path)


@pytest.mark.parametrize("forge", [traversal, absolute, huge_shape, huge_consistent, nested_sidecar, object_dtype,
                                   stream_key_traversal], ids=lambda f: f.__name__)
def test_s3_forged_store_is_refused(s3_url, s3, local_ref, tmp_path, forge):
    store, message = _forged_copy(local_ref, tmp_path, forge)
    s3.put(str(store) + "/", s3_url[len("s3://"):], recursive=True)
    with pytest.raises(StoreError) as err:
        opened = probekit.ActivationStore.open(s3_url)
        for site in SITES:
            for i in range(len(opened)):
                np.asarray(opened[site][i]).sum()
    # (the sizes, checked against the object's before anything is fetched, fail first: another message)
    assert (message if forge is not huge_consistent else "counts make [1000000000") in str(err.value)
    assert not list((tmp_path / "cache").rglob("*.bin"))  # nothing was fetched
    outside = [p for p in (tmp_path / "cache").rglob("*") if not p.resolve().is_relative_to(tmp_path / "cache")]
    assert not outside


def test_remote_writer_refuses_foreign_objects_and_leaves_them(s3_url, s3, tiny):
    key = s3_url[len("s3://"):]
    s3.pipe_file(f"{key}/notes.txt", b"mine")
    with pytest.raises(StoreError, match="notes.txt, which probekit did not write"):
        _extract(tiny, s3_url)
    assert s3.cat_file(f"{key}/notes.txt") == b"mine" and Remote(s3_url).listing() == {"notes.txt": 4}


def test_remote_lease_keeps_a_second_writer_out(s3_url, tiny):
    lease = Lease(Remote(s3_url))
    lease.acquire()
    try:
        with pytest.raises(StoreLockedError, match="being written by another probekit process"):
            _extract(tiny, s3_url)
    finally:
        lease.release()
    r = Remote(s3_url)
    r.put_bytes("probekit.lock", json.dumps({"owner": "gone", "host": "elsewhere", "pid": 1,
                                             "expires": 0}).encode())  # an expired lease is taken over
    assert _extract(tiny, s3_url).manifest["complete"]
    assert "probekit.lock" not in r.listing()


def test_remote_memory_and_file_urls(tiny, local_ref, tmp_path, monkeypatch):
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path / "cache"))
    mem = _extract(tiny, "memory://probekit-tests/remote-memory")
    assert remote_files("memory://probekit-tests/remote-memory") == store_files(local_ref)
    np.testing.assert_array_equal(mem["L1.resid"].words(3), probekit.ActivationStore.open(local_ref)["L1.resid"]
                                  .words(3))
    url = (tmp_path / "as-file-url").as_uri()
    st = _extract(tiny, url)
    assert st.url is None and st.path == tmp_path / "as-file-url"  # a file:// URL is a local path
    assert store_files(tmp_path / "as-file-url") == store_files(local_ref)
    hub = Remote("memory://x/y")
    hub.scheme = "hf"  # hf:// itself needs the Hub (offline here): its scheme is what makes it read-only
    with pytest.raises(StoreError, match="read-only"):
        hub.put_bytes("manifest.json", b"{}")


def test_remote_derive_from_and_into_s3(s3_url, tiny, local_ref, tmp_path):
    push(local_ref, s3_url + "/tokens")
    subset = make_texts(N)[5:17]
    local = derive(probekit.ActivationStore.open(local_ref), subset, tmp_path / "derived", shard_size=5)
    remote = derive(s3_url + "/tokens", subset, s3_url + "/derived", shard_size=5)
    assert remote.url == s3_url + "/derived" and remote.fingerprint == local.fingerprint
    got = remote_files(s3_url + "/derived")
    want = store_files(tmp_path / "derived")
    assert got.keys() == want.keys()
    assert {k: v for k, v in got.items() if k != "manifest.json"} == {k: v for k, v in want.items()
                                                                       if k != "manifest.json"}
    assert not list((tmp_path / "cache" / "staging").glob("*.derive"))  # the staged copy is gone
