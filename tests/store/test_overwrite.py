"""``overwrite`` replaces only what probekit wrote: a store, or the remains of an interrupted extraction."""

from __future__ import annotations

import json
import signal

import pytest

import probekit
from probekit.store import FingerprintMismatchError, StoreError
from tests.store._common import make_texts, store_files
from tests.store.conftest import run_child

N, SHARD, SITES = 40, 16, "emb,L1.resid"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("ref") / "store"
    _extract(tiny, out)
    return out


def _extract(model, out, texts=None, **kw):
    return probekit.extract(model, texts or make_texts(N), SITES.split(","), out, shard_size=SHARD,
                            batch_tokens=512, progress=False, **kw)


def _tree(path):
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None) for p in sorted(path.rglob("*"))}


@pytest.mark.parametrize("layout", ["user-files", "user-file-in-shards", "foreign-manifest", "unreadable-manifest",
                                    "lone-examples", "user-file-beside-store", "user-file-in-a-shard"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_is_not_probekit_s_is_never_touched(tmp_path, tiny, reference, layout, overwrite):
    out = tmp_path / "out"
    if layout in ("user-file-beside-store", "user-file-in-a-shard"):
        _extract(probekit.load_model(tiny.config, seed=3), out)  # a store of another model...
        where = out / "notes.txt" if layout == "user-file-beside-store" else out / "shards" / "00000" / "notes.txt"
        where.write_text("my notes")  # ...with a file of the user's inside
    else:
        out.mkdir()
        if layout == "user-files":
            (out / "thesis.tex").write_text("chapter 1")
            (out / "figures").mkdir()
            (out / "figures" / "a.png").write_bytes(b"\x89PNG")
        elif layout == "user-file-in-shards":
            (out / "shards").mkdir()
            (out / "shards" / "readme.md").write_text("keep me")
        elif layout == "foreign-manifest":
            (out / "manifest.json").write_text(json.dumps({"name": "my web app", "version": "1.0"}))
        elif layout == "unreadable-manifest":
            (out / "manifest.json").write_text("this is not json {")
        elif layout == "lone-examples":
            (out / "examples.parquet").write_bytes(b"PAR1 my own table")
    before = _tree(out)
    with pytest.raises(StoreError) as err:
        _extract(tiny, out, overwrite=overwrite)
    assert _tree(out) == before  # nothing deleted, nothing written
    if layout not in ("user-file-beside-store", "user-file-in-a-shard") or overwrite:
        assert "overwrite" not in str(err.value)  # a non-store folder is never offered for overwriting
    assert "nothing was changed" in str(err.value).lower()


def test_overwrite_replaces_a_store_and_keeps_the_directory(tmp_path, tiny, reference):
    out = tmp_path / "out"
    _extract(probekit.load_model(tiny.config, seed=3), out)
    with pytest.raises(FingerprintMismatchError, match="overwrite=True"):
        _extract(tiny, out)
    inode = out.stat().st_ino
    _extract(tiny, out, overwrite=True)
    assert out.stat().st_ino == inode
    assert store_files(out) == store_files(reference)


def test_a_store_from_fewer_examples_leaves_no_stale_shard(tmp_path, tiny):
    out = tmp_path / "out"
    _extract(tiny, out)
    small = _extract(tiny, out, texts=make_texts(10), overwrite=True)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["00000", "00000.json"]
    assert small.n_examples == 10


def test_killed_before_the_manifest_existed_is_resumed(tmp_path, tiny, reference):
    out = tmp_path / "store"
    proc = run_child(str(out), str(N), "--shard-size", str(SHARD), "--sites", SITES, "--kill", "before-manifest", "0",
                     check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # the killed writer's lock file stays behind; the kernel released its lock
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json.tmp", "probekit.lock"]
    _extract(tiny, out)  # no overwrite needed: these are probekit's own remains
    assert store_files(out) == store_files(reference)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_store_whose_manifest_was_deleted(tmp_path, tiny, reference, overwrite):
    out = tmp_path / "store"
    _extract(tiny, out)
    (out / "manifest.json").unlink()
    if not overwrite:
        with pytest.raises(StoreError, match="holds no probekit manifest.*overwrite=True"):
            _extract(tiny, out)
        return
    _extract(tiny, out, overwrite=True)
    assert store_files(out) == store_files(reference)


def test_a_file_is_not_a_store_directory(tmp_path, tiny):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        _extract(tiny, f, overwrite=True)
    assert f.read_text() == "x"
