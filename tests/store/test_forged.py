"""A store is untrusted input: forged stores give one clear StoreError, never a file outside the store, a hang,
a huge allocation or a stray exception.

Every forgery here starts from a real store and recomputes the checksums it touches with
``probekit.fingerprint``, as anyone can (they are unkeyed): so what catches it is the check of names, kinds
of file, sizes and values, not a checksum.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import probekit
from probekit import fingerprint
from probekit.store import StoreError, _shards
from tests.store._common import make_texts

SITES = ["L1.resid", "L0.attn.pattern"]
STREAM = "L1.resid.tok"
SECRET = b"secret bytes outside the store!!"  # 32 bytes


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("forged") / "store"
    probekit.extract(tiny, make_texts(6, max_words=8), SITES, out, shard_size=4, word_pooling=["mean"],
                     dtype="float32", progress=False)
    return out


# ------------------------------------------------------------------ the forger
def _rehash_sidecar(sidecar: dict) -> dict:
    sidecar["sidecar_sha256"] = fingerprint.hash_json({k: v for k, v in sidecar.items() if k != "sidecar_sha256"})
    return sidecar


def _rehash_manifest(manifest: dict) -> dict:
    manifest["manifest_sha256"] = fingerprint.hash_json({k: v for k, v in manifest.items()
                                                         if k != "manifest_sha256"})
    return manifest


def _forge_sidecar(store: Path, edit, shard: int = 0, manifest_edit=None) -> None:
    """Edit shard ``shard``'s sidecar (and the manifest), then recompute the checksums they carry."""
    path = store / "shards" / f"{shard:05d}.json"
    sidecar = json.loads(path.read_text())
    edit(sidecar)
    _rehash_sidecar(sidecar)
    path.write_text(json.dumps(sidecar))
    mpath = store / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["shards"][shard] = sidecar["sidecar_sha256"]
    if manifest_edit is not None:
        manifest_edit(manifest)
    mpath.write_text(json.dumps(_rehash_manifest(manifest)))


def _secret(tmp_path: Path, size: int) -> Path:
    """A file outside the store, as large as the stream it stands in for."""
    path = tmp_path / "outside" / "secret.bin"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes((SECRET * (size // len(SECRET) + 1))[:size])
    return path


def _point_stream_at(target: str, secret: Path):
    def edit(sidecar):
        info = sidecar["streams"][STREAM]
        info["file"] = target
        info["checksum"] = fingerprint.file_checksum(secret, info["checksum"].partition(":")[0])
    return edit


def traversal(store, tmp_path):
    secret = _secret(tmp_path, _size(store))
    _forge_sidecar(store, _point_stream_at(os.path.relpath(secret, store / "shards" / "00000"), secret))
    return "'streams.L1.resid.tok.file' names '../"


def absolute(store, tmp_path):
    secret = _secret(tmp_path, _size(store))
    _forge_sidecar(store, _point_stream_at(str(secret), secret))
    return "'streams.L1.resid.tok.file' names '/"


def symlink_out(store, tmp_path):
    secret = _secret(tmp_path, _size(store))
    victim = store / "shards" / "00000" / f"{STREAM}.bin"
    victim.unlink()
    victim.symlink_to(secret)
    _forge_sidecar(store, _point_stream_at(f"{STREAM}.bin", secret))
    return f"{STREAM}.bin is a symbolic link"


def shard_dir_symlink_out(store, tmp_path):
    outside = tmp_path / "outside" / "00001"
    outside.parent.mkdir(exist_ok=True)
    shutil.move(store / "shards" / "00001", outside)
    (store / "shards" / "00001").symlink_to(outside, target_is_directory=True)
    return "00001 is a symbolic link, not a directory"


def fifo(store, tmp_path):
    victim = store / "shards" / "00000" / f"{STREAM}.bin"
    victim.unlink()
    os.mkfifo(victim)
    return f"{STREAM}.bin is a FIFO (named pipe), not a regular file"


def fifo_manifest(store, tmp_path):
    (store / "manifest.json").unlink()
    os.mkfifo(store / "manifest.json")
    return "manifest.json is a FIFO (named pipe)"


def fifo_examples(store, tmp_path):
    (store / "examples.parquet").unlink()
    os.mkfifo(store / "examples.parquet")
    return "examples.parquet is a FIFO (named pipe)"


def huge_shape(store, tmp_path):
    """A declared shape of 10**12 rows, with bytes and counts made to agree with it."""
    def edit(sidecar):
        info = sidecar["streams"][STREAM]
        info["shape"] = [10**12, info["shape"][1]]
    _forge_sidecar(store, edit)
    return "'streams.L1.resid.tok' declares"


def huge_consistent(store, tmp_path):
    """Every declared value agrees with 10**12 more tokens (counts, shapes, bytes, the manifest's total): only the
    files' actual sizes do not."""
    extra = 10**12

    def edit(sidecar):
        n_tok, streams = sidecar["n_tokens"], sidecar["streams"]
        heads = streams["L0.attn.pattern"]["shape"][0] // sum(n * n for n in n_tok)
        n_tok[0] += extra
        total = sum(n_tok)
        for name, info in streams.items():
            if name in ("input_ids", "word_ids"):
                info["shape"] = [total]
            elif name == STREAM:
                info["shape"] = [total, info["shape"][1]]
            elif name == "L0.attn.pattern":
                info["shape"] = [heads * sum(n * n for n in n_tok)]
            else:
                continue
            info["bytes"] = math.prod(info["shape"]) * np.dtype(info["dtype"]).itemsize

    def manifest_edit(manifest):
        manifest["n_tokens"] += extra
    _forge_sidecar(store, edit, manifest_edit=manifest_edit)
    return "is truncated or padded"


def nested_manifest(store, tmp_path):
    text = (store / "manifest.json").read_text()
    (store / "manifest.json").write_text(text[:-1].rstrip() + ', "stats": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return "manifest.json nests lists or mappings"


def nested_sidecar(store, tmp_path):
    path = store / "shards" / "00000.json"
    text = path.read_text()
    path.write_text(text[:-1].rstrip() + ', "extra": ' + "{\"a\":" * 50_000 + "1" + "}" * 50_000 + "}")
    return "00000.json nests lists or mappings"


def moderately_nested_sidecar(store, tmp_path):
    """Deep enough to pass the JSON parser, too deep for anything probekit writes."""
    def edit(sidecar):
        deep: list = []
        for _ in range(500):
            deep = [deep]
        sidecar["extra"] = deep
    path = store / "shards" / "00000.json"
    sidecar = json.loads(path.read_text())
    edit(sidecar)
    sidecar["sidecar_sha256"] = "0" * 64  # probekit's own hash would recurse 500 deep; the depth check comes first
    path.write_text(json.dumps(sidecar))
    return "nests lists or mappings more than 64 deep"


def _typed(field, value, message):
    def forge(store, tmp_path):
        def edit(sidecar):
            node = sidecar
            *parents, leaf = field
            for p in parents:
                node = node[p]
            node[leaf] = value
        _forge_sidecar(store, edit)
        return message
    forge.__name__ = f"typed_{'_'.join(map(str, field))}_{type(value).__name__}"
    return forge


def object_dtype(store, tmp_path):
    def edit(sidecar):
        sidecar["streams"][STREAM]["dtype"] = "|O"
    _forge_sidecar(store, edit)
    return "'streams.L1.resid.tok.dtype' must be a plain numeric dtype"


def stream_key_traversal(store, tmp_path):
    def edit(sidecar):
        sidecar["streams"]["../../x"] = dict(sidecar["streams"][STREAM], file="../../x.bin")
    _forge_sidecar(store, edit)
    return "'streams' names '../../x'"


def _size(store: Path) -> int:
    return (store / "shards" / "00000" / f"{STREAM}.bin").stat().st_size


FORGERIES = [
    traversal, absolute, symlink_out, shard_dir_symlink_out, fifo, fifo_manifest, fifo_examples, huge_shape,
    huge_consistent, nested_manifest, nested_sidecar, moderately_nested_sidecar, object_dtype, stream_key_traversal,
    _typed(("n_tokens",), "12345", "'n_tokens' must be a list of integers >= 0, not the string '12345'"),
    _typed(("n_words",), [3, -1, 2, 2], "'n_words' must be a list of integers >= 0"),
    _typed(("start",), False, "'start' must be 0"),
    _typed(("shard",), True, "'shard' must be an integer >= 0, not the boolean true"),
    _typed(("streams", STREAM, "shape"), [-5, 32], "'streams.L1.resid.tok.shape' must be a list of 1 to 3 integers"),
    _typed(("streams", STREAM, "shape"), "[13, 32]", "'streams.L1.resid.tok.shape' must be a list"),
    _typed(("streams", STREAM, "bytes"), 1.5, "'streams.L1.resid.tok.bytes' must be an integer"),
    _typed(("streams",), ["L1.resid.tok"], "'streams' must be a mapping, not a list"),
    _typed(("words",), "the cat", "'words' must be a list of"),
    _typed(("streams", STREAM, "file"), None, "'streams.L1.resid.tok.file' names null"),
    _typed(("streams", STREAM, "file"), "L1.resid.tok.bin\x00.png", "'streams.L1.resid.tok.file' names"),
    _typed(("streams", STREAM, "file"), "input_ids.bin", "stream L1.resid.tok is always stored in"),
    _typed(("streams", STREAM, "checksum"), ["xxh3_128", "00"], "'streams.L1.resid.tok.checksum' must be a checksum"),
]


def _read_everything(store):
    for site in SITES:
        for i in range(len(store)):
            np.asarray(store[site][i]).sum()
    store.examples


@pytest.mark.timeout(120)
@pytest.mark.parametrize("forge", FORGERIES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("verify", ["lazy", "full"])
def test_a_forged_store_gives_one_clear_error(tmp_path, reference, forge, verify):
    store = tmp_path / "store"
    shutil.copytree(reference, store, symlinks=True)
    message = forge(store, tmp_path)
    with pytest.raises(StoreError) as err:
        opened = probekit.ActivationStore.open(store, verify=verify)
        _read_everything(opened)  # (only reached when open missed it: then reading must not serve the forgery)
    text = str(err.value)
    assert "\n" not in text
    assert message in text, text


@pytest.mark.timeout(120)
@pytest.mark.parametrize("forge", [traversal, absolute, symlink_out, fifo, object_dtype, huge_shape],
                         ids=lambda f: f.__name__)
def test_reading_a_forged_stream_directly_is_refused(tmp_path, reference, forge):
    """The shard readers themselves refuse what the store's open refuses (they are what a remote store reuses):
    a forged sidecar when it is read, and a forged entry or file when a stream is verified or mapped."""
    store = tmp_path / "store"
    shutil.copytree(reference, store, symlinks=True)
    forge(store, tmp_path)
    sidecar = json.loads((store / "shards" / "00000.json").read_text())
    root = store / "shards"
    if forge in (symlink_out, fifo):  # the sidecar is genuine; the file it names is not a regular file
        _shards.read_sidecar(root, 0)
    else:
        with pytest.raises(StoreError):
            _shards.read_sidecar(root, 0)
    with pytest.raises(StoreError):
        _shards.verify_file(root, sidecar, STREAM)
    with pytest.raises(StoreError):
        _shards.open_stream(root, sidecar, STREAM)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("forge", [traversal, absolute, huge_shape, object_dtype], ids=lambda f: f.__name__)
def test_extracting_into_a_forged_store_redoes_the_forged_shard(tmp_path, reference, tiny, forge):
    store = tmp_path / "store"
    shutil.copytree(reference, store, symlinks=True)
    forge(store, tmp_path)
    redone = probekit.extract(tiny, make_texts(6, max_words=8), SITES, store, shard_size=4, word_pooling=["mean"],
                              dtype="float32", progress=False)
    assert redone.manifest["stats"]["shards_computed"] == 1
    secret = tmp_path / "outside" / "secret.bin"
    assert not secret.exists() or secret.read_bytes().startswith(SECRET)  # never written through the forged name
    expected = probekit.ActivationStore.open(reference)
    np.testing.assert_array_equal(redone[STREAM.rsplit(".", 1)[0]].numpy(), expected["L1.resid"].numpy())
    probekit.ActivationStore.open(store, verify="full")


@pytest.mark.timeout(60)
def test_read_json_never_blocks_on_a_fifo(tmp_path):
    """``probekit.store.read_json`` (eraser folders and other probekit files use it) refuses a FIFO instead of
    waiting for a writer forever, and names a too deeply nested file instead of raising RecursionError."""
    os.mkfifo(tmp_path / "eraser.json")
    with pytest.raises(StoreError, match="FIFO"):
        probekit.store.read_json(tmp_path / "eraser.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(StoreError, match="deep.json nests lists or mappings too deeply"):
        probekit.store.read_json(tmp_path / "deep.json")
    with pytest.raises(FileNotFoundError):
        probekit.store.read_json(tmp_path / "absent.json")
