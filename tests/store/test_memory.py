"""Peak RSS of an extraction does not grow with the dataset."""

from __future__ import annotations

import json

from tests.store.conftest import run_child

# float32, every site of the tiny model including attention patterns: about 60 kB per example on disk, so
# holding 10N = 5,000 examples' activations in RAM would add ~300 MB to a 400-700 MB process (the larger where
# transformers imports torchao as it loads a model): a ratio of 1.4 or more
SITES = "emb,L0.resid,L0.attn.out,L0.mlp.hidden,L0.mlp.out,L0.attn.pattern,L1.resid,L1.attn.out,L1.mlp.hidden," \
        "L1.mlp.out,L1.attn.pattern"
N = 500


def _peak(tmp_path, n: int) -> dict:
    proc = run_child(str(tmp_path / f"s{n}"), str(n), "--shard-size", "64", "--sites", SITES, "--dtype", "float32",
                     "--rss")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_peak_rss_flat_in_dataset_size(tmp_path):
    small, large = _peak(tmp_path, N), _peak(tmp_path, 10 * N)
    stored = sum(p.stat().st_size for p in (tmp_path / f"s{10 * N}").rglob("*.bin"))
    ratio = large["maxrss_kb"] / small["maxrss_kb"]
    # the test can fail: what is on disk would be a large share of the process if it were held in memory
    # (holding it would lift the ratio to at least 1 + stored / small > 1.3)
    assert stored / 1024 > 0.3 * small["maxrss_kb"], (stored, small)
    assert ratio < 1.2, f"peak RSS {small['maxrss_kb']} kB for {N} examples, {large['maxrss_kb']} kB for {10 * N}"


def test_the_heap_is_trimmed_where_the_c_library_can():
    import platform

    from probekit.store._writer import trim_heap

    # glibc (Linux, CI) has malloc_trim; macOS, Windows and musl have none, and the call is then a no-op
    assert trim_heap() == (platform.libc_ver()[0] == "glibc")
