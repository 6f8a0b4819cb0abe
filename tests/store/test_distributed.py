"""Two processes (torchrun, gloo on CPU) give the same store as one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

import probekit
from tests.store._common import make_texts, store_files
from tests.store.conftest import CHILD

N, SHARD, SITES = 100, 16, "emb,L1.resid,L1.attn.pattern"


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="torchrun is not installed")
def test_two_process_store_is_identical(tmp_path, tiny):
    ref = tmp_path / "one"
    probekit.extract(tiny, make_texts(N), SITES.split(","), ref, shard_size=SHARD, batch_tokens=512, progress=False)
    out = tmp_path / "two"
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun if os.path.exists(torchrun) else "torchrun", "--standalone", "--nproc_per_node",
                           "2", str(CHILD), str(out), str(N), "--shard-size", str(SHARD), "--sites", SITES],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = probekit.ActivationStore.open(out, verify="full")
    assert st.manifest["stats"]["ranks"] == 2
    assert st.manifest["stats"]["shards_computed"] == -(-N // SHARD)
    assert store_files(out) == store_files(ref)


def test_a_failure_on_rank_0_ends_every_rank(tmp_path, tiny):
    """Rank 0 refuses a foreign store; rank 1 must not wait for it at a barrier but fail with its reason."""
    out = tmp_path / "store"
    probekit.extract(tiny, make_texts(N // 2), SITES.split(","), out, shard_size=SHARD, batch_tokens=512,
                     progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": "2"}
        procs.append(subprocess.Popen([sys.executable, str(CHILD), str(out), str(N), "--shard-size", str(SHARD),
                                       "--sites", SITES], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    try:
        results = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] != [0, 0]
    assert procs[0].returncode != 0 and "FingerprintMismatchError" in results[0][1], results[0][1][-2000:]
    assert procs[1].returncode != 0, results[1][1][-2000:]
    assert "rank 0 failed while preparing the store: FingerprintMismatchError" in results[1][1], results[1][1][-2000:]
