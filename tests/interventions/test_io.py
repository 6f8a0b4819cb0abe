"""Erasers save and load as safetensors + JSON, describe themselves canonically, and refuse bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from sklearn.linear_model import LogisticRegression

from probekit.fingerprint import canonical_json
from probekit.interventions import Eraser, InlpEraser, LeaceEraser, RandomEraser, random_eraser_like


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    return rng.normal(size=(600, 7)) + np.eye(3, 7)[y] * 2, y


@pytest.fixture(scope="module")
def erasers(data):
    X, y = data
    leace = LeaceEraser(site="L2.resid", shrinkage=True).fit(X, y)
    inlp = InlpEraser(site="L2.resid", n_iter=2, classifier=LogisticRegression(max_iter=500)).fit(X, y)
    return {"leace": leace, "inlp": inlp, "random": random_eraser_like(leace, random_state=4)}


@pytest.mark.parametrize("method", ["leace", "inlp", "random"])
def test_round_trip_is_exact(erasers, data, tmp_path, method):
    X, _ = data
    eraser = erasers[method]
    eraser.save(tmp_path / "e")
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["eraser.json", "eraser.safetensors"]
    loaded = Eraser.load(tmp_path / "e")
    assert type(loaded) is type(eraser)
    assert loaded.to_dict() == eraser.to_dict()
    assert loaded.fingerprint() == eraser.fingerprint()
    np.testing.assert_array_equal(loaded(X), eraser(X))
    assert str(loaded.site_) == "L2.resid" and loaded.classes_ == eraser.classes_
    assert type(eraser).load(tmp_path / "e").rank_ == eraser.rank_


def test_description_is_canonical_json_and_covers_what_matters(erasers, data):
    X, y = data
    desc = erasers["leace"].to_dict()
    assert json.loads(canonical_json(desc)) == desc
    assert desc["method"] == "leace" and desc["site"] == "L2.resid" and desc["d"] == 7 and desc["rank"] == 2
    assert desc["params"]["shrinkage"] is True and desc["classes"] == ["0", "1", "2"]
    assert desc["fit"]["source"] == "array" and desc["fit"]["rows"] == 600
    relabelled = LeaceEraser(site="L2.resid", shrinkage=True).fit(X, np.where(y == 2, 1, y))
    assert relabelled.to_dict()["fit"]["labels_sha256"] != desc["fit"]["labels_sha256"]
    other_site = LeaceEraser(site="L3.resid", shrinkage=True).fit(X, y)
    other_rows = LeaceEraser(site="L2.resid", shrinkage=True).fit(X[:500], y[:500])
    fps = {erasers["leace"].fingerprint(), other_site.fingerprint(), other_rows.fingerprint()}
    assert len(fps) == 3
    assert erasers["inlp"].to_dict()["fit"]["history"] == erasers["inlp"].history_


def test_save_refuses_foreign_or_existing_paths(erasers, tmp_path):
    eraser = erasers["leace"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no probekit eraser"):
        eraser.save(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        eraser.save(tmp_path / "file")
    eraser.save(tmp_path / "e")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        erasers["random"].save(tmp_path / "e")
    erasers["random"].save(tmp_path / "e", overwrite=True)
    assert isinstance(Eraser.load(tmp_path / "e"), RandomEraser)


def test_load_detects_mismatched_or_damaged_files(erasers, tmp_path):
    erasers["leace"].save(tmp_path / "a")
    erasers["random"].save(tmp_path / "b")
    # tensors of another eraser with the same shapes
    t = load_file(str(tmp_path / "b" / "eraser.safetensors"))
    save_file(t, str(tmp_path / "a" / "eraser.safetensors"))
    with pytest.raises(ValueError, match="does not match eraser.json"):
        Eraser.load(tmp_path / "a")
    (tmp_path / "b" / "eraser.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="unreadable"):
        Eraser.load(tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="not a saved probekit eraser"):
        Eraser.load(tmp_path / "nothing")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "eraser.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        Eraser.load(tmp_path / "c")
    erasers["leace"].save(tmp_path / "d")
    meta = json.loads((tmp_path / "d" / "eraser.json").read_text())
    meta["rank"] = 5
    (tmp_path / "d" / "eraser.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not match d=7, rank=5"):
        Eraser.load(tmp_path / "d")
    erasers["leace"].save(tmp_path / "e")
    with pytest.raises(TypeError, match="holds a LeaceEraser"):
        InlpEraser.load(tmp_path / "e")
