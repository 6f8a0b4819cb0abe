"""The command line and the pipeline write the same tables: one implementation behind both doors."""

from __future__ import annotations

import copy

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
           "outputs": {"figures": False, "report": False}}
    out = tmp_path_factory.mktemp("run") / "run"
    run_experiment(copy.deepcopy(cfg), out, progress=False)
    return out


def _table(folder, name):
    return pd.read_csv(folder / "tables" / f"{name}.csv")


def test_probe_cli_writes_the_pipelines_tables(pipeline_run, tiny_dir, tmp_path):
    out = tmp_path / "cli"
    r = CliRunner().invoke(main, ["probe", "--model", str(tiny_dir), "--task", "upos,sentlen", "--source", "ud",
                                  "--ud-path", str(UD_SAMPLE_DEV), "--limit", "40", "--task-seed", "0",
                                  "--seeds", "0,1", "--n-boot", "30", "--out", str(out)])
    assert r.exit_code == 0, r.output
    for name in ("probes", "probe_summary", "expected_layer", "probe_best"):
        cli, pipe = _table(out, name), _table(pipeline_run, name)
        assert len(cli) > 0, name
        pd.testing.assert_frame_equal(cli, pipe, obj=name)
    assert {"upos", "upos.control", "sentlen", "sentlen.control"} <= set(_table(out, "probes")["task"])


def test_attention_cli_writes_the_pipelines_tables(pipeline_run, tiny_dir, tmp_path):
    out = tmp_path / "cli"
    r = CliRunner().invoke(main, ["attention", "--store", str(pipeline_run / "stores" / "main"), "--model",
                                  str(tiny_dir), "--out", str(out), "--example", "1"])
    assert r.exit_code == 0, r.output
    for name in ("attention_heads", "special_mass"):
        pd.testing.assert_frame_equal(_table(out, name), _table(pipeline_run, name), obj=name)
    mass = _table(out, "special_mass")
    assert list(mass.columns) == ["layer", "block", "cls", "sep", "punct", "self", "prev", "next", "entropy"]
    assert list(mass["layer"]) == [1, 2]
