"""Erasers save and load as safetensors + JSON, describe themselves canonically, and refuse bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from sklearn.linear_model import LogisticRegression

from probekit.fingerprint import canonical_json, hash_json
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
    with pytest.raises(ValueError, match="does not match its checksum: the description .* was edited"):
        Eraser.load(tmp_path / "d")
    del meta["checksum"]  # a forger recomputes the checksum: the tensors still do not fit the description
    meta["checksum"] = {"sha256": hash_json(meta)}
    (tmp_path / "d" / "eraser.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not match d=7, rank=5"):
        Eraser.load(tmp_path / "d")
    erasers["leace"].save(tmp_path / "e")
    with pytest.raises(TypeError, match="holds a LeaceEraser"):
        InlpEraser.load(tmp_path / "e")


# ------------------------------------------------------------------ issue 25, item 4: edits and other models
@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two tiny BERTs of the same width (different weights) and an eraser fitted from a store of the first."""
    import probekit
    from probekit.data import build_task
    from probekit.probes import extract_task
    from tests.conftest import tiny_config

    root = tmp_path_factory.mktemp("eraser-models")
    a = probekit.load_model(tiny_config("bert"), seed=0, name="bert-a")
    b = probekit.load_model(tiny_config("bert"), seed=1, name="bert-b")
    task = build_task("upos", "rt", limit=30)
    store = extract_task(a, task, root / "store", ["L1.resid"], progress=False)
    eraser = LeaceEraser("L1.resid").fit(store, task)
    eraser.save(root / "eraser")
    return {"a": a, "b": b, "eraser": eraser, "root": root}


def test_an_eraser_records_the_model_it_was_fitted_on(two_models):
    on = two_models["eraser"].fitted_on
    assert on == {"name": "bert-a", "weights": two_models["a"].weights_hash(), "d_model": 32}
    assert Eraser.load(two_models["root"] / "eraser").fitted_on == on
    assert "model" in two_models["eraser"].to_dict()["fit"]  # so in the fingerprint of what it produces


def test_a_hand_edited_site_is_refused(two_models, tmp_path):
    import shutil

    shutil.copytree(two_models["root"] / "eraser", tmp_path / "e")
    path = tmp_path / "e" / "eraser.json"
    meta = json.loads(path.read_text())
    assert meta["site"] == "L1.resid"
    meta["site"] = "L0.resid"  # the edit of the issue: the eraser would act at another layer
    path.write_text(json.dumps(meta, indent=1))
    with pytest.raises(ValueError, match="does not match its checksum"):
        Eraser.load(tmp_path / "e")
    del meta["checksum"]  # even with a recomputed checksum, the rows were read at L1
    meta["checksum"] = {"sha256": hash_json(meta)}
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="names site L0.resid but its rows were read at L1.resid"):
        Eraser.load(tmp_path / "e")


def test_an_eraser_of_one_model_is_refused_on_another_unless_allowed(two_models):
    import torch

    a, b, eraser = two_models["a"], two_models["b"], two_models["eraser"]
    text = ["the film was fine"]
    a.run_with_cache(text, ["L1.resid"], interventions=[eraser])  # its own model: fine
    with pytest.raises(ValueError, match=r"fitted on 'bert-a' .* not on 'bert-b' .*allow_other_model=True"):
        b.run_with_cache(text, ["L1.resid"], interventions=[eraser])
    with pytest.raises(ValueError, match="not on 'bert-b'"):
        with b.intervening([eraser]):
            pass
    other = Eraser.load(two_models["root"] / "eraser", allow_other_model=True)
    got = b.run_with_cache(text, ["L1.resid"], interventions=[other])["L1.resid"]
    plain = b.run_with_cache(text, ["L1.resid"])["L1.resid"]
    assert not torch.equal(got, plain)  # it acted
    assert other.to_dict()["params"]["allow_other_model"] is True
    assert "allow_other_model" not in eraser.to_dict()["params"]
    assert other.fingerprint() != eraser.fingerprint()  # the opt-in enters every fingerprint it is part of


def test_extract_refuses_another_models_eraser_before_writing(two_models, tmp_path):
    import probekit

    with pytest.raises(ValueError, match="not on 'bert-b'"):
        probekit.extract(two_models["b"], ["a b c"], ["L1.resid"], tmp_path / "s",
                         interventions=[two_models["eraser"]], progress=False)
    assert not (tmp_path / "s").exists()
    other = Eraser.load(two_models["root"] / "eraser", allow_other_model=True)
    s1 = probekit.extract(two_models["b"], ["a b c"], ["L1.resid"], tmp_path / "s", interventions=[other],
                          progress=False)
    assert s1.manifest["components"]["interventions"][0]["params"]["allow_other_model"] is True


def test_command_line_erase_specs(two_models, tmp_path):
    from click.testing import CliRunner

    from probekit.cli import main

    b = tmp_path / "bert-b"
    two_models["b"].model.save_pretrained(b)
    two_models["b"].tokenizer.save_pretrained(b)
    eraser = str(two_models["root"] / "eraser")
    r = CliRunner().invoke(main, ["extract", "--model", str(b), "--data", "rt", "--limit", "5", "--sites",
                                  "L1.resid", "--intervene", f"erase:{eraser}", "--out", str(tmp_path / "s")])
    assert r.exit_code == 1 and "fitted on 'bert-a'" in r.output and "erase-other-model:DIR" in r.output
    assert not (tmp_path / "s").exists()
    r = CliRunner().invoke(main, ["extract", "--model", str(b), "--data", "rt", "--limit", "5", "--sites",
                                  "L1.resid", "--intervene", f"erase-other-model:{eraser}", "--out",
                                  str(tmp_path / "s")])
    assert r.exit_code == 0, r.output


def test_interventions_round_trip_through_their_descriptions_and_text(tmp_path):
    from probekit.interventions import Ablate, AblateHeads, Steer, from_dict, from_spec

    for iv in (Ablate("L1.resid", "zero"), Ablate("L0.mlp.out", "zero", positions=[0, 2]), AblateHeads(1, [3, 0])):
        back = from_dict(iv.to_dict())
        assert type(back) is type(iv) and back.to_dict() == iv.to_dict() and back.fingerprint() == iv.fingerprint()
    assert from_spec("ablate:L1.resid").fingerprint() == Ablate("L1.resid").fingerprint()
    assert from_spec("heads:1:0,3").fingerprint() == AblateHeads(1, [0, 3]).fingerprint()
    # arrays are described by their hash only: the description says it cannot rebuild them
    with pytest.raises(ValueError, match="hash only"):
        from_dict(Steer("L1.resid", [1.0, 2.0]).to_dict())
    with pytest.raises(ValueError, match="mean ablation"):
        from_dict({"type": "ablate", "site": "L1.resid", "params": {"how": "mean"}})
    with pytest.raises(ValueError, match="is not ablate:SITE"):
        from_spec("zap:L1.resid")
    with pytest.raises(ValueError, match="erasers? entry|eraser"):
        from_dict({"kind": "eraser", "method": "leace"})
