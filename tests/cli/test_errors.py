"""Every subcommand reports a library error as one ``Error: ...`` line with exit status 1, never a traceback:
walked with a folder that is not a store (or model, or run), a corrupt store (or model, or run folder) and an
output that cannot be written."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import probekit
from probekit.cli import main
from tests.conftest import tiny_config
from tests.pipeline.conftest import ANALYSIS
from tests.store._common import make_texts

SITES = ["emb", "L1.resid", "L0.attn.pattern", "L1.attn.pattern"]
UD = str(Path(__file__).resolve().parents[1] / "data" / "ud_en_ewt_sample")


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-errors")
    p = {"root": root}
    m = probekit.load_model(tiny_config("bert"), seed=0)
    p["model"] = root / "tiny-model"
    m.model.save_pretrained(p["model"])
    m.tokenizer.save_pretrained(p["model"])
    texts = make_texts(12, max_words=10)
    p["texts"] = root / "texts.txt"
    p["texts"].write_text("\n".join(texts) + "\n")
    p["csv"] = root / "train.csv"
    p["csv"].write_text("text,label\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(texts)))
    p["store"] = root / "store"
    probekit.extract(probekit.load_model(p["model"]), texts, SITES, p["store"], shard_size=4, progress=False)
    # a corrupt store: one flipped byte in a residual and in an attention data file
    p["corrupt"] = root / "corrupt-store"
    shutil.copytree(p["store"], p["corrupt"])
    for name in ("L1.resid.tok.bin", "L1.attn.pattern.bin"):
        f = p["corrupt"] / "shards" / "00000" / name
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0x10
        f.write_bytes(bytes(data))
    p["corrupt_manifest"] = root / "corrupt-manifest"
    shutil.copytree(p["store"], p["corrupt_manifest"])
    man = p["corrupt_manifest"] / "manifest.json"
    man.write_text(man.read_text()[:200])
    p["corrupt_model"] = root / "corrupt-model"
    shutil.copytree(p["model"], p["corrupt_model"])
    w = p["corrupt_model"] / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    p["corrupt_run"] = root / "corrupt-run"
    p["corrupt_run"].mkdir()
    (p["corrupt_run"] / "run.json").write_text('{"name": "x", "timings": ')
    p["nonstore"] = root / "my-folder"
    p["nonstore"].mkdir()
    (p["nonstore"] / "notes.txt").write_text("my notes")
    blocker = root / "a-file"
    blocker.write_text("not a folder")
    p["unwritable"] = blocker / "out"
    p["config"] = root / "tiny.yaml"
    p["config"].write_text(yaml.safe_dump(ANALYSIS))
    p["out"] = root / "out"
    return p


def _cases():
    ns, cs, cm, cmod, un = "{nonstore}", "{corrupt}", "{corrupt_manifest}", "{corrupt_model}", "{unwritable}"
    out, model, store = "{out}", "{model}", "{store}"
    texts, csv = "{texts}", "{csv}"
    return {
        # a folder that is not a store / model / run folder
        "attention/non-store": ["attention", "--store", ns, "--model", model, "--out", out],
        "attribute/non-model": ["attribute", "--model", ns, "--text", "a film", "--out", out],
        "compare/non-store": ["compare", ns, store, "--out", out],
        "distill/non-model": ["distill", "--teacher", ns, "--data", csv, "--out", out, "--epochs", "0.1"],
        "export/non-model": ["export", "--model", ns, "--out", out + "/m.onnx"],
        "extract/non-store": ["extract", "--model", model, "--data", texts, "--out", ns, "--overwrite"],
        "finetune/non-model": ["finetune", "--model", ns, "--data", csv, "--out", out, "--epochs", "0.1"],
        "probe/non-store": ["probe", "--store", ns, "--task", "sentlen", "--source", "rt", "--limit", "40",
                            "--out", out],
        "prune/non-model": ["prune", "--model", ns, "--out", out, "--sparsity", "0.5"],
        "quantize/non-model": ["quantize", "--model", ns, "--out", out],
        "report/non-run": ["report", ns],
        "run/non-config": ["run", ns + "/notes.txt"],
        "sites/non-model": ["sites", ns],
        "tasks-show/non-treebank": ["tasks", "show", "upos", "--ud-path", ns, "--limit", "5"],
        "data/non-mirror": ["data", "fetch", "ud_ewt", "--from", ns, "--no-progress"],
        "data/not-fetched": ["data", "verify", "ud_ewt"],
        # corrupt store / model / run folder
        "attention/corrupt": ["attention", "--store", cs, "--model", model, "--out", out, "--layer", "1"],
        "compare/corrupt": ["compare", store, cs, "--out", out, "--no-attention"],
        "compare/corrupt-attention": ["compare", store, cs, "--out", out, "--level", "token",
                                      "--measure", "linear_cka"],
        "probe/corrupt-manifest": ["probe", "--store", cm, "--task", "sentlen", "--source", "rt", "--limit", "40",
                                   "--out", out],
        "extract/corrupt-manifest": ["extract", "--model", model, "--data", texts, "--out", cm],
        "attention/corrupt-manifest": ["attention", "--store", cm, "--model", model, "--out", out],
        "report/corrupt": ["report", "{corrupt_run}"],
        "sites/corrupt-model": ["sites", cmod],
        "quantize/corrupt-model": ["quantize", "--model", cmod, "--out", out],
        "export/corrupt-model": ["export", "--model", cmod, "--out", out + "/m.pt", "--format", "torchscript"],
        "attribute/corrupt-model": ["attribute", "--model", cmod, "--text", "a film", "--out", out],
        # an output that cannot be written (its parent is a file)
        "attention/unwritable": ["attention", "--store", store, "--model", model, "--out", un],
        "attribute/unwritable": ["attribute", "--model", model, "--text", "a film", "--out", un],
        "compare/unwritable": ["compare", store, store, "--out", un],
        "demo/unwritable": ["demo", "--out", un, "--no-progress"],
        "distill/unwritable": ["distill", "--teacher", model, "--data", csv, "--out", un],
        "export/unwritable": ["export", "--model", model, "--out", un + "/m.onnx"],
        "extract/unwritable": ["extract", "--model", model, "--data", texts, "--out", un],
        "finetune/unwritable": ["finetune", "--model", model, "--data", csv, "--out", un],
        "probe/unwritable": ["probe", "--store", store, "--task", "sentlen", "--source", "rt", "--out", un],
        "prune/unwritable": ["prune", "--model", model, "--out", un, "--sparsity", "0.5"],
        "quantize/unwritable": ["quantize", "--model", model, "--out", un],
        "run/unwritable": ["run", "{config}", "--out", un],
        "data/unwritable": ["data", "fetch", "ud_ewt", "--from", ns, "--no-progress"],
        "erase/non-model": ["erase", "--model", ns, "--task", "upos", "--ud-path", UD, "--limit", "20", "--site",
                            "L1.resid", "--out", out],
        "erase/bad-site": ["erase", "--model", model, "--task", "upos", "--ud-path", UD, "--limit", "20", "--site",
                           "L7.resid", "--out", out],
        "erase/unwritable": ["erase", "--model", model, "--task", "upos", "--ud-path", UD, "--site", "L1.resid",
                             "--out", un],
        "amnesic/non-model": ["amnesic", "--model", ns, "--task", "upos", "--ud-path", UD, "--limit", "20",
                              "--out", out],
        "amnesic/not-a-classifier": ["amnesic", "--model", model, "--task", "upos", "--ud-path", UD, "--limit",
                                     "20", "--behaviour", "classifier", "--out", out],
        "amnesic/unwritable": ["amnesic", "--model", model, "--task", "upos", "--ud-path", UD, "--out", un],
        "intervene/non-model": ["intervene", "--model", ns, "--data", texts, "--out", out, "--intervene",
                                "ablate:L0.resid"],
        "intervene/outside-the-model": ["intervene", "--model", model, "--data", texts, "--out", out,
                                        "--intervene", "ablate:L9.resid"],
        "store/non-store": ["store", "verify", ns],
        "store/corrupt": ["store", "verify", cs],
        "store/push-non-store": ["store", "push", ns, "memory://probekit-cli-errors/pushed"],
        "store/pull-no-store": ["store", "pull", "memory://probekit-cli-errors/nothing-here", out],
        "store/pull-unwritable": ["store", "pull", "memory://probekit-cli-errors/pushed-store", un],
        "intervene/unwritable": ["intervene", "--model", model, "--data", texts, "--out", un, "--intervene",
                                 "ablate:L0.resid"],
    }


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES))
def test_library_errors_are_one_error_line(paths, case, monkeypatch):
    args = [a.format(**{k: str(v) for k, v in paths.items()}) for a in CASES[case]]
    # fetched data goes to a fresh cache of the test's own (an unwritable one for the unwritable case)
    cache = paths["unwritable"] if case == "data/unwritable" else paths["root"] / f"cache-{case.replace('/', '-')}"
    monkeypatch.setenv("PROBEKIT_CACHE", str(cache))
    if case == "store/pull-unwritable":
        probekit.store.push(paths["store"], "memory://probekit-cli-errors/pushed-store")
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    assert isinstance(r.exception, SystemExit), repr(r.exception)  # not an uncaught exception
    assert "Traceback" not in r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1, r.output
    assert "a probekit bug" not in errors[0], errors[0]


def test_every_subcommand_is_walked():
    walked = {c.split("/")[0] for c in CASES}
    commands = {n for n in main.commands if n != "tasks"} | {"tasks-show"}
    assert commands - walked == set()


def test_verbose_shows_the_traceback(paths, caplog):
    with caplog.at_level(logging.INFO, logger="probekit.cli"):
        r = CliRunner().invoke(main, ["-v", "sites", str(paths["nonstore"])])
    assert r.exit_code == 1
    assert any(rec.exc_info for rec in caplog.records if rec.name == "probekit.cli")


def test_prune_recovery_needs_data(paths, tmp_path):
    r = CliRunner().invoke(main, ["prune", "--model", str(paths["model"]), "--out", str(tmp_path / "o"),
                                  "--sparsity", "0.5", "--recover-epochs", "0.5"])
    assert r.exit_code == 2 and "--recover-epochs needs --data" in r.output
    assert not (tmp_path / "o").exists()


def test_prune_sparsity_with_recovery_fine_tunes(paths, tmp_path):
    import json

    out = tmp_path / "sparse50"
    r = CliRunner().invoke(main, ["prune", "--model", str(paths["model"]), "--out", str(out), "--sparsity", "0.5",
                                  "--data", str(paths["csv"]), "--recover-epochs", "1"])
    assert r.exit_code == 0, (r.output, r.exception)
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["recipe"]["recover_epochs"] == 1.0, recipe
    assert "recovery" in recipe["report"], sorted(recipe["report"])


def test_extract_with_interventions_stores_the_intervened_activations(paths, tmp_path):
    import numpy as np

    base = ["extract", "--model", str(paths["model"]), "--data", str(paths["texts"]), "--sites", "L0.resid,L1.resid",
            "--no-progress"]
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "plain")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "abl"), "--intervene", "ablate:L0.resid",
                                  "--intervene", "heads:1:0,2"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "interventions: " in r.output
    plain = probekit.ActivationStore.open(tmp_path / "plain")
    abl = probekit.ActivationStore.open(tmp_path / "abl")
    assert plain.fingerprint != abl.fingerprint
    assert not np.asarray(abl["L0.resid"].example(0)).any()                 # the ablated site is zero
    assert not np.allclose(abl["L1.resid"].example(0), plain["L1.resid"].example(0), atol=1e-3)  # later layers move


@pytest.mark.parametrize("spec", ["ablate:L0.resid:mean", "ablate:L0.nope", "heads:1", "erase:{nonstore}", "steer"])
def test_extract_bad_intervention_is_a_usage_error(paths, tmp_path, spec):
    r = CliRunner().invoke(main, ["extract", "--model", str(paths["model"]), "--data", str(paths["texts"]),
                                  "--out", str(tmp_path / "o"), "--intervene", spec.format(**paths)])
    assert r.exit_code == 2 and "--intervene" in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_extract_intervention_outside_the_model_is_one_error_line(paths, tmp_path):
    r = CliRunner().invoke(main, ["extract", "--model", str(paths["model"]), "--data", str(paths["texts"]),
                                  "--out", str(tmp_path / "o"), "--intervene", "ablate:L9.resid"])
    assert r.exit_code == 1 and "Error: " in r.output and "L9.resid" in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_intervene_is_extract_with_interventions(paths, tmp_path):
    import numpy as np

    args = ["--model", str(paths["model"]), "--data", str(paths["texts"]), "--sites", "L0.resid", "--no-progress"]
    r = CliRunner().invoke(main, ["intervene", *args, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "at least one --intervene" in r.output, r.output
    r = CliRunner().invoke(main, ["intervene", *args, "--out", str(tmp_path / "o"), "--intervene", "ablate:L0.resid"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert not np.asarray(probekit.ActivationStore.open(tmp_path / "o")["L0.resid"].example(0)).any()
