"""Two processes (torchrun, gloo on CPU) give the same store as one."""

from __future__ import annotations

import os
import shutil
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
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = probekit.ActivationStore.open(out, verify="full")
    assert st.manifest["stats"]["ranks"] == 2
    assert st.manifest["stats"]["shards_computed"] == -(-N // SHARD)
    assert store_files(out) == store_files(ref)
