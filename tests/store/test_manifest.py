"""Hand-edited or damaged manifests are clear StoreErrors naming the problem, never a bare KeyError."""

from __future__ import annotations

import json
import shutil

import pytest

import probekit
from probekit.store import FORMAT_VERSION, StoreError
from tests.store._common import make_texts


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("ref") / "store"
    probekit.extract(tiny, make_texts(10), ["L1.resid"], out, shard_size=4, progress=False)
    return out


def _edited(tmp_path, reference, edit) -> object:
    out = tmp_path / "store"
    shutil.copytree(reference, out)
    m = json.loads((out / "manifest.json").read_text())
    m = edit(m)
    (out / "manifest.json").write_text(json.dumps(m, indent=1))
    return out


def _drop(key):
    def edit(m):
        m.pop(key)
        return m
    return edit


def _set(path, value):
    def edit(m):
        node = m
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
        return m
    return edit


@pytest.mark.parametrize("edit, message", [
    (_drop("components"), "has no 'components'"),
    (_set("format_version", str(FORMAT_VERSION)),
     f"'format_version' must be an integer, not the string '{FORMAT_VERSION}'"),
    (_set("format_version", 2), f"has store format version 2; this probekit reads version {FORMAT_VERSION}"),
    (_set("format_version", True), "'format_version' must be an integer, not the boolean"),
    (_drop("format_version"), "has no 'format_version'"),
    (_set("sites", "L1.resid"), "'sites' must be a list"),
    (_set("complete", "yes"), "'complete' must be true or false"),
    (_set("settings.dtype", None), "'settings.dtype' must be a string"),
    (_drop("n_shards"), "has no 'n_shards'"),
    (_set("components.weights", None), None),
    (_set("n_examples", 11), "does not match its checksum"),
    (_set("shards", []), "records 0 shard checksums for 3 shards"),
    (_set("model", {"n_layers": 2}), "'model' has no 'name'"),
    (lambda m: [m], "not a mapping"),
])
def test_hand_edits_are_named(tmp_path, reference, edit, message):
    out = _edited(tmp_path, reference, edit)
    with pytest.raises(StoreError, match=message) as err:
        probekit.ActivationStore.open(out)
    assert "this probekit reads version" not in str(err.value) or "version 2;" in str(err.value)


def test_no_edit_of_any_key_is_a_bare_error(tmp_path, reference):
    keys = list(json.loads((reference / "manifest.json").read_text()))
    for i, key in enumerate(keys):
        for edit in (_drop(key), _set(key, "x"), _set(key, None), _set(key, {})):
            out = tmp_path / f"{i}"
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(reference, out)
            m = edit(json.loads((out / "manifest.json").read_text()))
            (out / "manifest.json").write_text(json.dumps(m))
            with pytest.raises(StoreError):
                probekit.ActivationStore.open(out)
