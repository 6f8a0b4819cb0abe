"""The report opens with what was found and keeps provenance one click away; a finished run says when."""

from __future__ import annotations

import json

import pandas as pd

from probekit.report import write_report
from probekit.report._findings import probe_findings


def _run_folder(root, *, finished: str | None = "2024-05-01T12:30:00+00:00"):
    tables = root / "tables"
    tables.mkdir(parents=True)
    run = {"name": "hand", "started": "2024-05-01T12:00:00+00:00", "finished": finished,
           "fingerprints": {f"store-{i}": f"{i:064x}" for i in range(24)},
           "timings": {"extract": 3.0, "probes": 5.0}, "config": {"model": "minilm-l6"}}
    (root / "run.json").write_text(json.dumps(run))
    pd.DataFrame({"task": "upos", "probe": "linear", "layer": [0, 1, 2, 3],
                  "accuracy": [0.70, 0.90, 0.93, 0.91], "ci_low": [0.68, 0.88, 0.91, 0.89],
                  "ci_high": [0.72, 0.92, 0.95, 0.93], "control": [0.5, 0.6, 0.7, 0.75],
                  "selectivity": [0.20, 0.30, 0.23, 0.16], "majority": 0.15,
                  "random_init": [0.6, 0.62, 0.61, 0.6]}).to_csv(tables / "probe_summary.csv", index=False)
    pd.DataFrame({"task": ["upos"], "probe": ["linear"], "expected_layer": [1.37],
                  "center_of_gravity": [1.6]}).to_csv(tables / "expected_layer.csv", index=False)
    pd.DataFrame({"variant": ["finetuned", "distill"], "accuracy": [0.85, 0.80], "size_mb": [90.0, 45.0],
                  "latency_ms_b1": [10.0, 5.0]}).to_csv(tables / "variants.csv", index=False)
    pd.DataFrame({"variant": "distill", "measure": "linear_cka", "level": "sentence",
                  "site": ["emb", "L1.resid", "L3.resid"],
                  "layer": [0, 2, 4], "site_b": ["emb", "L0.resid", "L1.resid"],
                  "value": [1.0, 0.8, 0.6]}).to_csv(tables / "compare_diagonal.csv", index=False)
    pd.DataFrame({"variant": "distill", "task": "upos", "site": ["emb", "L1.resid", "L3.resid"], "layer": [0, 2, 4],
                  "site_b": ["emb", "L0.resid", "L1.resid"], "accuracy_a": [0.7, 0.93, 0.91],
                  "accuracy_b": [0.7, 0.88, 0.90], "delta": [0.0, -0.05, -0.01], "ci_low": [0.0, -0.08, -0.03],
                  "ci_high": [0.0, -0.02, 0.01]}).to_csv(tables / "probe_deltas.csv", index=False)
    return root


def test_findings_come_first_and_provenance_last(tmp_path):
    root = _run_folder(tmp_path / "run")
    html = write_report(root).read_text()
    md = (root / "report.md").read_text()
    titles = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert titles[0] == "Findings" and titles[-1] == "Provenance"
    findings = md.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
    assert ("upos / linear: best layer 2, accuracy 0.930 [0.910, 0.950] (majority baseline 0.150, random weights "
            "0.610, control task 0.700); selectivity 0.230 there, highest 0.300 at layer 1; expected layer 1.37."
            in findings)
    assert "distill vs finetuned: accuracy -0.050, size x0.50, batch-1 latency x0.50." in findings
    assert "distill: linear CKA with the base 0.600-1.00 along the layer map (lowest at layer 4)." in findings
    assert ("distill: largest probe accuracy change -0.0500 [-0.0800, -0.0200] at layer 2 (L1.resid vs the variant's "
            "L0.resid) (upos); 1 of 3 layer intervals exclude 0." in findings)
    # the 24 store fingerprints come after every finding, in the last section, collapsed in the page
    assert md.index("Activation store fingerprints") > md.index("## Provenance")
    assert md.index("## Provenance") > md.index("## Comparison")
    assert "| distill | upos | L1.resid | 2 | L0.resid | 0.930 | 0.880 | -0.0500 [-0.0800, -0.0200] |" in md
    prov = html.split('<section class="card" id="provenance">', 1)[1]
    assert '<details class="section"><summary>run facts, stage timings, 24 store fingerprints' in prov
    assert html.index('id="findings"') < html.index('id="probes"') < html.index('id="provenance"')
    # when the run finished: in the header and in the provenance facts
    assert "finished 2024-05-01T12:30:00+00:00" in md.split("\n## ", 1)[0]
    assert "- **finished**: 2024-05-01T12:30:00+00:00" in md and "not recorded" not in md


def test_a_run_without_finish_time_says_so(tmp_path):
    root = _run_folder(tmp_path / "run", finished=None)
    write_report(root)
    md = (root / "report.md").read_text()
    assert "not finished" in md.split("\n## ", 1)[0]
    assert "- **finished**: not recorded (the run was still going, or stopped early)" in md


def test_probe_findings_skip_variants_and_handle_missing_columns():
    summ = pd.DataFrame({"variant": ["", "", "dynamic-int8"], "task": "t", "probe": "linear", "layer": [0, 1, 1],
                         "accuracy": [0.5, 0.6, 0.9]})
    (line,) = probe_findings(summ)
    assert line == "t / linear: best layer 1, accuracy 0.600."
    assert probe_findings(pd.DataFrame({"task": ["t"]})) == []
