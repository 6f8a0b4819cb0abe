"""Kill-and-resume, corrupted shards, fingerprint checks and reuse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import probekit
from probekit.store import CorruptShardError, FingerprintMismatchError, StoreError
from tests.store._common import make_texts, store_files, tiny_model
from tests.store.conftest import CHILD, run_child

N, SHARD, SITES = 120, 16, "emb,L0.resid,L1.resid"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("ref") / "store"
    probekit.extract(tiny, make_texts(N), SITES.split(","), out, shard_size=SHARD, batch_tokens=512, progress=False)
    return out


def _extract(model, out, **kw):
    return probekit.extract(model, make_texts(N), SITES.split(","), out, shard_size=SHARD, batch_tokens=512,
                            progress=False, **kw)


@pytest.mark.parametrize("mode", ["mid-write", "before-sidecar"])
def test_sigkill_then_resume_is_bit_identical(tmp_path, reference, tiny, mode):
    out = tmp_path / "store"
    proc = run_child(str(out), str(N), "--shard-size", str(SHARD), "--sites", SITES, "--kill", mode, "3", check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    shards = out / "shards"
    done = sorted(p.name for p in shards.glob("*.json"))
    assert done == [f"{k:05d}.json" for k in range(3)]  # exactly the shards before the kill are complete
    with pytest.raises(StoreError, match="incomplete"):
        probekit.ActivationStore.open(out)
    store = _extract(tiny, out)
    assert store.manifest["stats"]["shards_reused"] == 3
    assert store.manifest["stats"]["shards_computed"] == -(-N // SHARD) - 3
    assert store_files(out) == store_files(reference)


def test_external_sigkill_when_nth_shard_appears(tmp_path, reference, tiny):
    out = tmp_path / "store"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(CHILD), str(out), str(N), "--shard-size", str(SHARD),
                             "--sites", SITES, "--sleep", "0.05"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while not (out / "shards" / "00002.json").exists():
            assert proc.poll() is None and time.time() < deadline, "child ended before the 3rd shard"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "manifest.json").exists() or not json.loads((out / "manifest.json").read_text())["complete"]
    store = _extract(tiny, out)
    assert store.manifest["stats"]["shards_reused"] >= 3
    assert store_files(out) == store_files(reference)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_shard_is_detected_and_redone(tmp_path, reference, tiny, damage):
    out = tmp_path / "store"
    _extract(tiny, out)
    victim = out / "shards" / "00002" / "L0.resid.tok.bin"
    data = bytearray(victim.read_bytes())
    if damage == "truncate":
        victim.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 3] ^= 0x40
        victim.write_bytes(bytes(data))
    if damage == "truncate":  # every file's size is compared with its sidecar when the store is opened
        with pytest.raises(CorruptShardError, match="00002.*truncated"):
            probekit.ActivationStore.open(out)
    else:  # its bytes are hashed when first read (verify="lazy") or on open (verify="full")
        store = probekit.ActivationStore.open(out)
        store["L0.resid"].example(0)  # another shard still reads fine
        with pytest.raises(CorruptShardError, match="00002"):
            store["L0.resid"].example(2 * SHARD + 1)
    with pytest.raises(CorruptShardError):
        probekit.ActivationStore.open(out, verify="full")
    repaired = _extract(tiny, out)
    assert repaired.manifest["stats"]["shards_computed"] == 1
    assert store_files(out) == store_files(reference)
    probekit.ActivationStore.open(out, verify="full")


def test_damaged_sidecar_is_redone(tmp_path, reference, tiny):
    out = tmp_path / "store"
    _extract(tiny, out)
    side = out / "shards" / "00001.json"
    side.write_text(side.read_text().replace('"start": 16', '"start": 17'))
    with pytest.raises(CorruptShardError, match="shard 1"):
        probekit.ActivationStore.open(out)
    assert _extract(tiny, out).manifest["stats"]["shards_computed"] == 1
    assert store_files(out) == store_files(reference)


def test_existing_matching_store_is_reused_without_compute(tmp_path, tiny, monkeypatch):
    out = tmp_path / "store"
    first = _extract(tiny, out)
    before = store_files(out)

    def boom(*a, **k):
        raise AssertionError("the model ran although the store was complete")
    monkeypatch.setattr(tiny, "forward_rows", boom)
    again = _extract(tiny, out)
    assert again.manifest["stats"]["shards_computed"] == 0
    assert again.fingerprint == first.fingerprint
    assert store_files(out) == before


def test_fingerprint_mismatch_is_a_clear_error(tmp_path, tiny):
    out = tmp_path / "store"
    _extract(tiny, out)
    other = probekit.load_model(tiny_model().config, seed=1)
    with pytest.raises(FingerprintMismatchError, match="model weights"):
        _extract(other, out)
    with pytest.raises(FingerprintMismatchError, match="data"):
        probekit.extract(tiny, make_texts(N, seed=5), SITES.split(","), out, shard_size=SHARD, progress=False)
    with pytest.raises(FingerprintMismatchError, match="dtype"):
        _extract(tiny, out, dtype="float32")
    with pytest.raises(FingerprintMismatchError, match="sites"):
        probekit.extract(tiny, make_texts(N), ["emb"], out, shard_size=SHARD, progress=False)
    # opening with a model or data checks them too
    probekit.ActivationStore.open(out, model=tiny, data=make_texts(N))
    with pytest.raises(FingerprintMismatchError, match="other model weights"):
        probekit.ActivationStore.open(out, model=other)
    with pytest.raises(FingerprintMismatchError, match="other data"):
        probekit.ActivationStore.open(out, data=make_texts(N, seed=5))
    # overwrite replaces it
    st = probekit.extract(tiny, make_texts(10), ["emb"], out, shard_size=SHARD, progress=False, overwrite=True)
    assert st.n_examples == 10


def test_never_read_without_manifest(tmp_path, tiny):
    out = tmp_path / "store"
    _extract(tiny, out)
    (out / "manifest.json").unlink()
    with pytest.raises(StoreError, match="no manifest"):
        probekit.ActivationStore.open(out)
    with pytest.raises(StoreError, match="holds no probekit manifest"):
        _extract(tiny, out)
    with pytest.raises(StoreError, match="does not exist"):
        probekit.ActivationStore.open(tmp_path / "nowhere")


def test_float32_store_matches_float16_within_rounding(tmp_path, reference, tiny):
    st32 = _extract(tiny, tmp_path / "s32", dtype="float32")
    st16 = probekit.ActivationStore.open(reference)
    a, b = st32["L1.resid"].numpy(), st16["L1.resid"].numpy()
    assert a.dtype == np.float32 and b.dtype == np.float16
    np.testing.assert_allclose(a.astype(np.float16), b, rtol=0, atol=0)


def test_batch_budget_is_part_of_the_fingerprint_only_for_batch_dependent_models(tmp_path, tiny):
    """Dynamic int8 picks activation scales per batch: another token budget would mix two sets of batches."""
    from probekit.store._extract import batch_dependent
    from probekit.variants import quantize

    texts = make_texts(N)
    out = tmp_path / "float"
    probekit.extract(tiny, texts, ["L0.resid"], out, shard_size=SHARD, batch_tokens=512, progress=False)
    # a float model's activations do not depend on batching: the store is reused under another budget
    probekit.extract(tiny, texts, ["L0.resid"], out, shard_size=SHARD, batch_tokens=128, progress=False)
    assert not batch_dependent(tiny)

    q = quantize(tiny, method="dynamic-int8").model
    assert batch_dependent(q)
    out_q = tmp_path / "int8"
    probekit.extract(q, texts, ["L0.resid"], out_q, shard_size=SHARD, batch_tokens=512, progress=False)
    with pytest.raises(FingerprintMismatchError, match="layout"):
        probekit.extract(q, texts, ["L0.resid"], out_q, shard_size=SHARD, batch_tokens=128, progress=False)


@pytest.mark.parametrize("overlap", [True, False])
def test_background_and_inline_writing_give_the_same_bytes(tmp_path, reference, tiny, overlap):
    _extract(tiny, tmp_path / "store", overlap=overlap)
    assert store_files(tmp_path / "store") == store_files(reference)


def test_default_overlap_only_with_a_spare_core(tiny, monkeypatch):
    import torch

    from probekit.store._extract import _spare_core

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: cores)
    assert not _spare_core(tiny)  # torch's threads fill every core: write inline
    monkeypatch.setattr(torch, "get_num_threads", lambda: cores - 1)
    assert _spare_core(tiny)
