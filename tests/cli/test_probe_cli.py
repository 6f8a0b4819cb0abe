"""``probekit probe`` end to end on a tiny random BERT over a real UD slice."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

import probekit
from probekit.cli import main
from probekit.data import build_task
from probekit.probes import extract_task, random_init_copy
from tests.conftest import tiny_config
from tests.data.conftest import UD_SAMPLE_DEV

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def stores(tmp_path):
    task = build_task("upos", "ud", path=UD_SAMPLE_DEV, limit=100)
    model = probekit.load_model(tiny_config("bert"), seed=0)
    real = extract_task(model, task, tmp_path / "real", progress=False)
    rand = extract_task(random_init_copy(model, seed=1), task, tmp_path / "rand", progress=False)
    return real.path, rand.path


def test_probe_cli_end_to_end(stores, tmp_path):
    real, rand = stores
    out = tmp_path / "res"
    r = CliRunner().invoke(main, ["probe", "--store", f"tiny={real}", "--store", f"tiny:random-init={rand}",
                                  "--task", "upos,xpos", "--ud-path", str(UD_SAMPLE_DEV), "--limit", "100",
                                  "--seeds", "0,1", "--n-boot", "100", "--out", str(out)])
    assert r.exit_code == 0, r.output
    for name in ("tables/probes.csv", "tables/probe_summary.csv", "tables/expected_layer.csv",
                 "tables/probe_best.csv", "summaries/probes.md", "figures/probes__curves.png",
                 "figures/probes__heatmap.png", "figures/probes__selectivity.png"):
        assert (out / name).stat().st_size > 0, name
    df = pd.read_csv(out / "tables" / "probes.csv")
    assert {"upos", "upos.control", "xpos", "xpos.control"} <= set(df.task)
    assert set(df.variant.dropna()) == {"random-init"}
    md = (out / "summaries" / "probes.md").read_text()
    table = md.split("\n\n", 1)[1]
    assert md.startswith("# Best layer") and table.startswith("| task | probe | layer | site |")
    assert table.count("\n") == 2 + 2  # the header, the rule, and the best layer of each task
    summary = pd.read_csv(out / "tables" / "probe_summary.csv")
    assert summary["random_init"].notna().all()  # the random-init copy sits beside the model, per layer
    assert "upos" in r.output


def test_probe_cli_misaligned_store_fails_clearly(stores, tmp_path):
    r = CliRunner().invoke(main, ["probe", "--store", str(stores[0]), "--task", "upos", "--ud-path", str(UD_SAMPLE_DEV),
                                  "--limit", "80", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0
    assert "extract_task" in r.output


def test_probe_cli_extracts_stores_from_model(tmp_path):
    """--model extracts one store per group of tasks sharing sentences (plus random-init) and reuses them."""
    out = tmp_path / "res"
    args = ["probe", "--model", "minilm-l6", "--random-init", "--task", "upos,deprel", "--ud-path", str(UD_SAMPLE_DEV),
            "--limit", "40", "--n-boot", "50", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    stores = sorted(p.relative_to(out / "stores").as_posix() for p in (out / "stores").glob("*/*"))
    assert len(stores) == 2 and all(s.endswith("/upos+deprel") for s in stores), stores  # one shared store each
    df = pd.read_csv(out / "tables" / "probes.csv")
    assert {"upos", "upos.control", "deprel", "deprel.control"} <= set(df.task)
    assert set(df.variant.dropna()) == {"random-init"}
    acc = df[(df.task == "upos") & (df.metric == "accuracy_mean") & (df.variant.isna())]
    rnd = df[(df.task == "upos") & (df.metric == "accuracy_mean") & (df.variant == "random-init")]
    assert acc.value.max() > rnd.value.max()  # real weights beat random ones on UPOS
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert pd.read_csv(out / "tables" / "probes.csv").equals(df)


def test_probe_cli_needs_store_or_model(tmp_path):
    r = CliRunner().invoke(main, ["probe", "--task", "upos", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "either --store" in r.output


def test_probe_cli_pools_task_stores_from_a_token_store(minilm, tmp_path):
    """--from-store: the task sentences a token-level store of the model holds are pooled, not run again."""
    words = [list(w) for w in build_task("upos", "ud", path=UD_SAMPLE_DEV, limit=40).dataset.word_lists()]
    acts = probekit.extract(minilm, words[:30] + [["an", "extra", "sentence"]], out=tmp_path / "acts", progress=False)
    out = tmp_path / "res"
    r = CliRunner().invoke(main, ["probe", "--model", "minilm-l6", "--from-store", str(acts.path), "--task",
                                  "upos,deprel", "--ud-path", str(UD_SAMPLE_DEV), "--limit", "40", "--n-boot", "20",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    root = out / "stores" / minilm.name
    task_store = probekit.ActivationStore.open(root / "upos+deprel")
    assert task_store.manifest["stats"]["derived"]
    extracted = probekit.ActivationStore.open(root / "@extracted")  # only the 10 sentences the store lacks ran
    assert extracted.n_examples == 10 and extracted.settings["tokens"] is False
    assert {"upos", "deprel"} <= set(pd.read_csv(out / "tables" / "probes.csv").task)

    other = probekit.extract(probekit.load_model(tiny_config("bert"), seed=0), words[:5], out=tmp_path / "other",
                             progress=False)
    r = CliRunner().invoke(main, ["probe", "--model", "minilm-l6", "--from-store", str(other.path), "--task", "upos",
                                  "--ud-path", str(UD_SAMPLE_DEV), "--limit", "40", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "other model weights" in r.output
    r = CliRunner().invoke(main, ["probe", "--store", str(acts.path), "--from-store", str(acts.path), "--task", "upos",
                                  "--out", str(tmp_path / "y")])
    assert r.exit_code != 0 and "--from-store needs exactly one --model" in r.output


def test_probe_cli_autocast_is_in_the_stores_fingerprints(tmp_path, caplog):
    """--autocast bf16 extracts the task stores under bf16 autocast, recorded in their fingerprints."""
    out = tmp_path / "res"
    r = CliRunner().invoke(main, ["probe", "--model", "minilm-l6", "--autocast", "bf16", "--task", "upos",
                                  "--ud-path", str(UD_SAMPLE_DEV), "--limit", "20", "--n-boot", "20",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    (path,) = [p for p in (out / "stores").glob("*/upos")]
    store = probekit.ActivationStore.open(path)
    assert store.manifest["components"]["dtype"]["autocast"] == "bf16"
    assert store.manifest["settings"]["dtype"] == "float16"  # the task stores' default
    r = CliRunner().invoke(main, ["probe", "--store", str(path), "--autocast", "bf16", "--task", "upos",
                                  "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "--autocast needs --model" in r.output
    # other settings over the same OUT: refused (the stores there were made otherwise), then replaced
    again = ["probe", "--model", "minilm-l6", "--dtype", "float32", "--task", "upos", "--ud-path",
             str(UD_SAMPLE_DEV), "--limit", "20", "--n-boot", "20", "--out", str(out)]
    r = CliRunner().invoke(main, again)
    assert r.exit_code != 0 and "other inputs" in r.output
    r = CliRunner().invoke(main, again + ["--overwrite"])
    assert r.exit_code == 0, r.output
    assert probekit.ActivationStore.open(path).manifest["settings"]["dtype"] == "float32"
    r = CliRunner().invoke(main, ["probe", "--store", str(path), "--dtype", "float32", "--task", "upos",
                                  "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "--dtype needs --model" in r.output


def test_bf16_autocast_warns_where_the_cpu_emulates_it(tmp_path, caplog, monkeypatch):
    import torch

    from probekit.store import _extract

    monkeypatch.setattr(_extract, "native_bf16", lambda device: False)
    model = probekit.load_model(tiny_config("bert"), seed=0)
    with caplog.at_level("WARNING"):
        probekit.extract(model, ["a cat sat"], ["L0.resid"], tmp_path / "s", autocast="bf16", progress=False)
    assert "no native bf16" in caplog.text
    assert _extract.native_bf16(torch.device("cpu")) in (True, False)


@pytest.mark.parametrize("flag, value, name", [("--n-boot", "0", "n_boot"), ("--seeds", "0,-3", "seeds")])
def test_probe_cli_refuses_bad_suite_settings_before_extracting(tmp_path, flag, value, name):
    """`--n-boot 0` used to fail only after the stores were extracted and the probes trained (issue 25)."""
    model_dir = tmp_path / "tiny"
    m = probekit.load_model(tiny_config("bert"), seed=0)
    m.model.save_pretrained(model_dir)
    m.tokenizer.save_pretrained(model_dir)
    out = tmp_path / "res"
    r = CliRunner().invoke(main, ["probe", "--model", str(model_dir), "--task", "upos", "--ud-path",
                                  str(UD_SAMPLE_DEV), "--limit", "20", flag, value, "--out", str(out)])
    assert r.exit_code == 1 and f"the '{name}' parameter of ProbeSuite must be" in r.output
    assert not out.exists()  # no store extracted, nothing written
