"""An interrupted, edited run never shows stale results: the report keeps only tables whose stage key is the config's.

The case of issue 25: run a config, change ``probes.n_boot``, run again and interrupt it during the probes
stage; ``config.yaml`` and ``run.json`` then hold the new value while ``tables/`` still holds the old run's
probe tables. The report must leave those out (and say so), and show what is current.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from probekit.pipeline import run_experiment
from probekit.probes import ProbeSuite
from probekit.report import RunFolder, write_report
from probekit.runfolder import Outputs
from tests.pipeline.conftest import TINY_MODEL

CONFIG = {
    "name": "tiny",
    "seed": 0,
    "model": TINY_MODEL,
    "data": {"source": "rt", "sentences": 60},
    "extract": {"sites": "resid", "attention": True, "dtype": "float32"},
    "probes": {"tasks": ["sentiment"], "n_boot": 50, "seeds": [0], "random_init": False},
    "attention": {"example": 1},
    "outputs": {"figures": True, "report": False},
}


def _edited(cfg: dict, n_boot: int) -> dict:
    out = copy.deepcopy(cfg)
    out["probes"]["n_boot"] = n_boot
    return out


def _interrupt(monkeypatch, owner, attr: str, after_calls: int = 0):
    """Make ``owner.attr`` raise KeyboardInterrupt, as Ctrl-C would, on call ``after_calls + 1``."""
    real = getattr(owner, attr)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after_calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, attr, wrapper)


@pytest.mark.parametrize("where, after", [
    ("suite", 0),    # Ctrl-C while the probes train: nothing rewritten yet
    ("table", 1),    # Ctrl-C after the new tidy table is written, before the summary
])
def test_report_of_an_interrupted_edited_run_leaves_out_the_old_probe_tables(tmp_path, monkeypatch, where, after):
    out = tmp_path / "run"
    run_experiment(CONFIG, out, progress=False)
    old_summary = (out / "tables" / "probe_summary.csv").read_text()
    owner, attr = (ProbeSuite, "run") if where == "suite" else (Outputs, "table")
    _interrupt(monkeypatch, owner, attr, after)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(_edited(CONFIG, 80), out, progress=False)
    monkeypatch.undo()

    # what the issue saw: the config says the new value, the probe tables on disk are (partly) the old run's
    assert yaml.safe_load((out / "config.yaml").read_text())["probes"]["n_boot"] == 80
    assert json.loads((out / "run.json").read_text())["config"]["probes"]["n_boot"] == 80
    assert (out / "tables" / "probe_summary.csv").read_text() == old_summary

    run = RunFolder.read(out)
    assert "tables/probe_summary.csv" in run.stale and "tables/probes.csv" in run.stale
    assert "probe_summary" not in run.tables and "probes" not in run.tables and "expected_layer" not in run.tables
    assert not run.figures.get("probes")
    # the stages this edit did not touch are current and shown
    assert "attention_heads" in run.tables and run.figures.get("attention")

    md = write_report(out).with_name("report.md").read_text(encoding="utf-8")
    assert "Probe accuracy by layer" not in md and "sentiment / linear: best layer" not in md
    assert "Left out: results of other settings" in md and "tables/probe_summary.csv" in md
    assert "stage probes" in md
    assert "Mean attention mass per layer" in md

    # running the config to the end brings them back, and nothing is left out
    run_experiment(_edited(CONFIG, 80), out, progress=False)
    md = write_report(out).with_name("report.md").read_text(encoding="utf-8")
    assert RunFolder.read(out).stale == {}
    assert "Probe accuracy by layer" in md and "Left out" not in md


def test_a_stage_the_config_dropped_is_left_out(tmp_path):
    out = tmp_path / "run"
    run_experiment(CONFIG, out, progress=False)
    cfg = copy.deepcopy(CONFIG)
    cfg["attention"] = None  # same folder, attention no longer asked for
    run_experiment(cfg, out, progress=False)
    run = RunFolder.read(out)
    assert "tables/attention_heads.csv" in run.stale and "attention_heads" not in run.tables
    assert "not part of this run's config" in run.stale["tables/attention_heads.csv"]
    assert "probe_summary" in run.tables


def test_a_folder_without_stage_records_is_read_as_it_is(tmp_path):
    """Folders of `probekit probe` / `attention` (no .stages) and runs written before stage keys keep working."""
    out = tmp_path / "run"
    run_experiment(CONFIG, out, progress=False)
    info = json.loads((out / "run.json").read_text())
    del info["stage_keys"]  # as an earlier probekit wrote it: the keys of the stages it ran
    (out / "run.json").write_text(json.dumps(info))
    assert RunFolder.read(out).stale == {}
    (out / "run.json").unlink()
    assert RunFolder.read(out).stale == {} and "probe_summary" in RunFolder.read(out).tables


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_during_the_probes_stage_of_probekit_run(tmp_path):
    """For real: `probekit run` in a child process, SIGINT once the probes stage has started, then `probekit report`."""
    out = tmp_path / "run"
    slow = copy.deepcopy(CONFIG)
    slow["attention"] = None
    slow["extract"]["attention"] = False
    slow["outputs"]["figures"] = False
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(yaml.safe_dump(slow))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "probekit.cli", "run", str(cfg_path), "--out", str(out), "--no-progress"]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=600)
    slow["probes"]["n_boot"] = 5000  # a stage of seconds, so the signal lands inside it on a fast or a busy machine
    cfg_path.write_text(yaml.safe_dump(slow))
    state = out / ".stages" / "probes.json"
    log = tmp_path / "run.log"
    with log.open("w") as sink:
        # a shell that starts jobs in the background (CI) hands them SIGINT ignored, and an ignored signal stays
        # ignored across exec: the child gets the default disposition back, as a terminal's foreground job has
        child = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            # the stage records itself as running when it starts: watch for that (a pipe may hold the stage's
            # message back until the stage is over) and Ctrl-C at once
            deadline = time.monotonic() + 300
            while child.poll() is None and time.monotonic() < deadline:
                try:
                    running = json.loads(state.read_text()).get("state") == "running"
                except (OSError, ValueError):
                    running = False
                if running:
                    child.send_signal(signal.SIGINT)
                    break
                time.sleep(0.005)
            child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
    text = log.read_text()
    assert child.returncode != 0, text  # interrupted, not finished
    assert "probes ..." in text
    record = json.loads((out / ".stages" / "probes.json").read_text())
    assert record.get("state") == "running" or record["key"] != json.loads((out / "run.json").read_text())[
        "stage_keys"]["probes"]
    report = subprocess.run([sys.executable, "-m", "probekit.cli", "report", str(out)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stdout + report.stderr
    md = Path(out, "report.md").read_text(encoding="utf-8")
    assert "n_boot: 5000" in (out / "config.yaml").read_text()
    assert "Probe accuracy by layer" not in md and "sentiment / linear: best layer" not in md
    assert "Left out: results of other settings" in md
