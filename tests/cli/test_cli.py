from click.testing import CliRunner

from probekit.cli import main


def test_help_lists_commands():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    assert "demo" in r.output and "sites" in r.output


def test_sites_command():
    r = CliRunner().invoke(main, ["sites", "minilm-l6", "-c", "resid"])
    assert r.exit_code == 0, r.output
    assert "HookedModel('minilm-l6', BertModel, 6 layers, d_model=384, 12 heads)" in r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("L") and ".resid" in ln]
    assert lines == [f"L{i}.resid" for i in range(6)]


def test_demo_runs_the_staged_pipeline(tmp_path, monkeypatch):
    """`probekit demo` runs the built-in config through the pipeline (a tiny config stands in for speed)."""
    import copy
    import json

    import probekit.pipeline as pipeline
    from tests.pipeline.conftest import ANALYSIS

    monkeypatch.setattr(pipeline, "DEMO_CONFIG", copy.deepcopy(ANALYSIS))
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "stage timings (s):" in r.output and "extract" in r.output
    run = json.loads((out / "run.json").read_text())
    assert list(run["timings"]) == ["extract", "attention"] and run["config"]["name"] == "tiny"
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--no-progress"])
    assert r.exit_code == 0 and "attention: cached" in r.output
