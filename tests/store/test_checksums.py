"""Shard file checksums, with both algorithms."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from probekit import fingerprint
from probekit.store import _shards
from probekit.store._manifest import CorruptShardError

ALGORITHMS = ["crc32"] + (["xxh3_128"] if fingerprint._xxh3_128() is not None else [])


def _shard(root, monkeypatch, algorithm, rows=6000, dim=200):
    monkeypatch.setattr(_shards, "CHECKSUM", algorithm)
    x = (np.arange(rows * dim) % 2039).reshape(rows, dim).astype(np.float16)
    sw = _shards.ShardWriter(root, 0, {"x": (np.float16, x.shape)}, {"start": 0})
    # out of order, as length-sorted batches write
    for a in range(rows - 1000, -1, -1000):
        sw.write("x", a, x[a: a + 1000])
    side = sw.commit()
    return side, root / "00000" / "x.bin", x


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksum_is_over_the_whole_file_and_detects_damage(tmp_path, monkeypatch, algorithm):
    side, path, x = _shard(tmp_path, monkeypatch, algorithm)
    data = path.read_bytes()
    assert len(data) > 2 * fingerprint._CHUNK  # the chunked read is exercised
    assert data == x.tobytes()
    assert side["streams"]["x"]["checksum"].startswith(algorithm + ":")
    if algorithm == "crc32":
        assert side["streams"]["x"]["checksum"] == f"crc32:{zlib.crc32(data):08x}"
    _shards.verify_file(tmp_path, side, "x")
    loaded = _shards.load_sidecar(tmp_path, 0)
    assert loaded == side

    flipped = bytearray(data)
    flipped[fingerprint._CHUNK + 17] ^= 0x01  # one bit, in the second chunk
    path.write_bytes(bytes(flipped))
    with pytest.raises(CorruptShardError, match=f"{algorithm} checksum"):
        _shards.verify_file(tmp_path, side, "x")
    path.write_bytes(data[:-2])
    with pytest.raises(CorruptShardError, match="truncated"):
        _shards.verify_file(tmp_path, side, "x")
    path.write_bytes(data)
    _shards.verify_file(tmp_path, side, "x")


def test_unknown_checksum_algorithm_is_named(tmp_path, monkeypatch):
    side, _path, _x = _shard(tmp_path, monkeypatch, "crc32", rows=10, dim=4)
    side["streams"]["x"]["checksum"] = "md4:00"
    with pytest.raises(CorruptShardError, match="unknown checksum algorithm 'md4'"):
        _shards.verify_file(tmp_path, side, "x")


def test_file_checksum_known_value(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert fingerprint.file_checksum(p, "crc32") == "crc32:352441c2"
    if "xxh3_128" in ALGORITHMS:
        import xxhash

        assert fingerprint.file_checksum(p, "xxh3_128") == "xxh3_128:" + xxhash.xxh3_128(b"abc").hexdigest()
