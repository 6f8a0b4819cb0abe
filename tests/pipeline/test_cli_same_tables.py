"""The command line and the pipeline write the same tables: one implementation behind both doors.

For each analysis the command and the stage run on the same tiny inputs; the
files they write (tables, figures, snippets, summaries) and the tables'
contents must be the same.
"""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from click.testing import CliRunner

import probekit
from probekit.cli import main
from probekit.pipeline import run_experiment
from tests.conftest import tiny_config
from tests.data.conftest import UD_SAMPLE_DEV

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny") / "tiny-bert"
    m = probekit.load_model(tiny_config("bert"), seed=0)
    m.model.save_pretrained(folder)
    m.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pipeline_run(tiny_dir, tmp_path_factory):
    cfg = {"name": "same", "seed": 0, "model": {"path": str(tiny_dir)},
           "data": {"source": "ud", "path": str(UD_SAMPLE_DEV), "sentences": 40},
           "extract": {"sites": "resid", "attention": True, "dtype": "float32"},
           "attention": {"example": 1},
           "probes": {"tasks": ["upos", "sentlen"], "seeds": [0, 1], "n_boot": 30, "random_init": False},
           "outputs": {"figures": True, "report": False}}
    out = tmp_path_factory.mktemp("run") / "run"
    run_experiment(copy.deepcopy(cfg), out, progress=False)
    return out


@pytest.fixture(scope="module")
def variant_run(tiny_dir, tmp_path_factory):
    """Fine-tuning, one head-pruned variant, attribution and compare (with probe deltas) on Rotten Tomatoes."""
    cfg = {"name": "same-variants", "seed": 0, "model": {"path": str(tiny_dir)},
           "data": {"source": "rt", "sentences": 30},
           "finetune": {"train_size": 32, "eval_size": 16, "epochs": 1, "batch_size": 16, "max_length": 24},
           "variants": {"prune_heads": {"fraction": 0.25, "importance": "magnitude"}, "latency_repeats": 1},
           "attribution": {"sentences": 2, "n_steps": 4, "methods": ["integrated_gradients", "saliency"]},
           "compare": {"sentences": 30, "probe_task": "sentiment"},
           "outputs": {"figures": True, "report": False}}
    out = tmp_path_factory.mktemp("vrun") / "run"
    run_experiment(copy.deepcopy(cfg), out, progress=False)
    return out


def _table(folder, name):
    return pd.read_csv(folder / "tables" / f"{name}.csv")


def _stage_files(run, stage):
    """The tables, figures, snippets and summaries a stage recorded as its outputs."""
    rec = json.loads((run / ".stages" / f"{stage}.json").read_text())
    return {p for p in rec["outputs"] if p.split("/", 1)[0] in ("tables", "figures", "attributions", "summaries")}


def _files(folder):
    """The analysis outputs in a folder (not the report's Parquet copies and derived tables)."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and p.parts[len(folder.parts)] in ("tables", "figures", "attributions", "summaries")
            and p.suffix != ".parquet" and not p.name.startswith("report_")}


def test_probe_cli_writes_the_pipelines_tables(pipeline_run, tiny_dir, tmp_path):
    out = tmp_path / "cli"
    r = CliRunner().invoke(main, ["probe", "--model", str(tiny_dir), "--task", "upos,sentlen", "--source", "ud",
                                  "--ud-path", str(UD_SAMPLE_DEV), "--limit", "40", "--task-seed", "0",
                                  "--seeds", "0,1", "--n-boot", "30", "--dtype", "float32", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert _files(out) == _stage_files(pipeline_run, "probes")
    for name in ("probes", "probe_summary", "expected_layer", "probe_best"):
        cli, pipe = _table(out, name), _table(pipeline_run, name)
        assert len(cli) > 0, name
        pd.testing.assert_frame_equal(cli, pipe, obj=name)
    summary = (out / "summaries" / "probes.md").read_text()
    assert summary == (pipeline_run / "summaries" / "probes.md").read_text() and "| upos |" in summary
    assert {"upos", "upos.control", "sentlen", "sentlen.control"} <= set(_table(out, "probes")["task"])


def test_attention_cli_writes_the_pipelines_tables(pipeline_run, tiny_dir, tmp_path):
    out = tmp_path / "cli"
    r = CliRunner().invoke(main, ["attention", "--store", str(pipeline_run / "stores" / "main"), "--model",
                                  str(tiny_dir), "--out", str(out), "--example", "1"])
    assert r.exit_code == 0, r.output
    assert _files(out) == _stage_files(pipeline_run, "attention")
    assert {"figures/attention__heatmap_ex1_L0.png", "figures/attention__rollout_ex1.png"} <= _files(out)
    for name in ("attention_heads", "special_mass"):
        pd.testing.assert_frame_equal(_table(out, name), _table(pipeline_run, name), obj=name)
    mass = _table(out, "special_mass")
    assert list(mass.columns) == ["layer", "block", "cls", "sep", "punct", "self", "prev", "next", "entropy"]
    assert list(mass["layer"]) == [1, 2]


def test_compare_cli_writes_the_stages_tables(variant_run, tmp_path):
    out = tmp_path / "cli"
    stores = variant_run / "stores"
    r = CliRunner().invoke(main, ["compare", str(stores / "compare-finetuned"), str(stores / "compare-prune_heads"),
                                  "--out", str(out), "--measure", "linear_cka,procrustes", "--probes", "sentiment",
                                  "--source", "rt", "--limit", "30", "--task-seed", "0", "--n-boot", "200"])
    assert r.exit_code == 0, r.output
    # the command names B by its store folder, the stage by the variant's config key
    rename = lambda p: p.replace("compare-prune_heads", "prune_heads")
    assert {rename(p) for p in _files(out)} == _stage_files(variant_run, "compare")
    for name in ("compare", "compare_diagonal", "compare_best", "attention_deltas", "probe_deltas"):
        cli = _table(out, name).assign(variant="prune_heads")
        pipe = _table(variant_run, name)
        assert len(cli) > 0, name
        pd.testing.assert_frame_equal(cli, pipe, obj=name, check_dtype=False)
    heads = _table(out, "attention_deltas")
    assert len(heads[heads["metric"] == "attention_jsd_bits"]) == 6  # the head-pruned model's surviving heads
    md = (out / "summaries" / "compare.md").read_text()
    assert "**Aligned layers**" in md and "**Probe deltas" in md and "vs compare-prune_heads (B)" in md


def test_attribute_cli_writes_the_stages_tables(variant_run, tmp_path):
    out = tmp_path / "cli"
    texts = json.loads((variant_run / ".stages" / "attribution.json").read_text())["info"]["texts"]
    args = ["attribute", "--model", str(variant_run / "models" / "finetuned"), "--out", str(out), "--n-steps", "4",
            "--method", "integrated_gradients", "--method", "saliency"]
    r = CliRunner().invoke(main, args + [a for t in texts for a in ("--text", t)])
    assert r.exit_code == 0, r.output
    assert _files(out) == _stage_files(variant_run, "attribution")
    context = ["model", "variant", "task", "split"]  # the stage knows the task and split of its sentences
    for name in ("attributions", "attribution_scores", "attribution_agreement"):
        cli, pipe = _table(out, name), _table(variant_run, name)
        assert len(cli) > 0, name
        drop = [c for c in context if c in cli.columns]
        pd.testing.assert_frame_equal(cli.drop(columns=drop), pipe.drop(columns=drop), obj=name)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    import transformers as T

    folder = tmp_path_factory.mktemp("tiny-lm") / "tiny-gpt2"
    T.GPT2LMHeadModel(tiny_config("gpt2")).save_pretrained(folder)
    probekit.load_tokenizer("minilm-l6").save_pretrained(folder)
    return folder


def test_amnesic_cli_writes_the_stages_tables(lm_dir, tmp_path):
    cfg = {"name": "same-amnesic", "seed": 0, "model": {"path": str(lm_dir)},
           "data": {"source": "ud", "path": str(UD_SAMPLE_DEV), "sentences": 40},
           "amnesic": {"task": "upos", "sites": ["L0.resid", "L1.resid"], "held_out": 6, "n_boot": 20},
           "outputs": {"figures": True, "report": False}}
    run = tmp_path / "run"
    run_experiment(copy.deepcopy(cfg), run, progress=False)
    out = tmp_path / "cli"
    r = CliRunner().invoke(main, ["amnesic", "--model", str(lm_dir), "--task", "upos", "--ud-path",
                                  str(UD_SAMPLE_DEV), "--limit", "40", "--seed", "0", "--sites", "L0.resid,L1.resid",
                                  "--held-out", "6", "--n-boot", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert _files(out) == _stage_files(run, "amnesic")
    for name in ("amnesic", "amnesic_summary"):
        cli, pipe = _table(out, name), _table(run, name)
        assert len(cli) > 0, name
        pd.testing.assert_frame_equal(cli, pipe, obj=name)
    assert set(_table(out, "amnesic_summary")["site"]) == {"L0.resid", "L1.resid"}
