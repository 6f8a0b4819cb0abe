"""Each stage's profile (seconds per phase) lands in run.json and in the report."""

from __future__ import annotations

import json


def test_run_json_and_the_report_carry_each_stage_profile(tmp_path, analysis_config):
    from probekit.pipeline import run_experiment

    analysis_config["outputs"]["report"] = True
    run_experiment(analysis_config, tmp_path / "run", progress=False)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert {"tokenize", "forward", "write"} <= set(run["stages"]["extract"]["profile"])
    assert "figures" in run["stages"]["attention"]["profile"]
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Where each stage" in html and "tokenize" in html
