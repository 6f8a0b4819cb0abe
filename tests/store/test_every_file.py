"""Every file of a store is covered by a checksum: a flipped byte anywhere is caught by verify="full" and by
resuming the extraction (which repairs the store, or refuses it with a clear error)."""

from __future__ import annotations

import shutil

import pytest

import probekit
from probekit.store import CorruptShardError, StoreError
from tests.store._common import make_texts, store_files

N, SHARD, SITES = 20, 8, ["emb", "L1.resid", "L0.attn.pattern"]
KW = dict(shard_size=SHARD, batch_tokens=512, progress=False, word_pooling=["mean"], sentence_pooling=["mean"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("ref") / "store"
    probekit.extract(tiny, make_texts(N, max_words=12), SITES, out, **KW)
    return out


def _files(store) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())


def test_the_small_store_has_every_kind_of_file(reference):
    names = _files(reference)
    assert {"manifest.json", "examples.parquet", "shards/00000.json", "shards/00000/input_ids.bin",
            "shards/00000/word_ids.bin", "shards/00000/L1.resid.tok.bin", "shards/00000/L1.resid.words-mean.bin",
            "shards/00000/L1.resid.sent-mean.bin", "shards/00000/L0.attn.pattern.bin"} <= set(names)
    assert len([n for n in names if n.endswith(".json") and n.startswith("shards/")]) == 3


def test_a_flipped_byte_in_any_file_is_caught(tmp_path, reference, tiny):
    reference_files = store_files(reference)
    # the manifest's first byte is its opening brace: flipped, the file is no longer JSON (refused, not repaired)
    cases = [(name, 0.5) for name in _files(reference)] + [("manifest.json", k / 9) for k in (0, 1, 3, 6, 8)]
    outcomes = set()
    for i, (name, where) in enumerate(cases):
        out = tmp_path / f"{i}"
        shutil.copytree(reference, out)
        victim = out / name
        data = bytearray(victim.read_bytes())
        data[int(len(data) * where)] ^= 0x01
        victim.write_bytes(bytes(data))
        with pytest.raises(StoreError):  # CorruptShardError is a StoreError
            probekit.ActivationStore.open(out, verify="full")
        try:
            probekit.extract(tiny, make_texts(N, max_words=12), SITES, out, **KW)
        except StoreError as exc:  # refused: the damage is named
            assert "manifest.json" in str(exc) and name == "manifest.json", (name, exc)
            outcomes.add("refused")
            continue
        assert store_files(out) == reference_files, name  # resumed: the damage was found and repaired
        probekit.ActivationStore.open(out, verify="full")
        outcomes.add("repaired")
    assert outcomes == {"refused", "repaired"}  # both kinds of manifest damage were met


def test_a_damaged_example_table_is_caught_when_first_read(tmp_path, reference):
    out = tmp_path / "store"
    shutil.copytree(reference, out)
    victim = out / "examples.parquet"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    store = probekit.ActivationStore.open(out)  # lazy: opens
    store["L1.resid"].example(0)
    with pytest.raises(CorruptShardError, match="examples.parquet"):
        store.examples
