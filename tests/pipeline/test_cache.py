"""Stage caching: a second run reuses every stage; a changed key re-runs only that stage and downstream."""

from __future__ import annotations

import json

from probekit.pipeline import resolve, run_experiment, stage_key
from probekit.pipeline._stages import STAGES


def test_second_run_reuses_and_changed_key_reruns_downstream_only(tmp_path, analysis_config):
    out = tmp_path / "run"
    first = run_experiment(analysis_config, out, progress=False)
    assert first["cached"] == {"extract": False, "attention": False}
    assert list(first["timings"]) == ["extract", "attention"]
    mtime = (out / "tables" / "attention_heads.csv").stat().st_mtime_ns

    second = run_experiment(analysis_config, out, progress=False)
    assert second["cached"] == {"extract": True, "attention": True}
    assert (out / "tables" / "attention_heads.csv").stat().st_mtime_ns == mtime
    assert second["fingerprints"] == first["fingerprints"]

    analysis_config["attention"]["example"] = 2  # only the attention stage reads this
    third = run_experiment(analysis_config, out, progress=False)
    assert third["cached"] == {"extract": True, "attention": False}

    analysis_config["data"]["sentences"] = 30  # upstream change: both re-run
    fourth = run_experiment(analysis_config, out, progress=False)
    assert fourth["cached"] == {"extract": False, "attention": False}
    assert fourth["fingerprints"]["main"] != first["fingerprints"]["main"]
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["data"]["sentences"] == 30 and run["finished"]
    assert {"python", "torch", "transformers", "sklearn"} <= set(run["versions"])


def test_force_and_missing_outputs_rerun(tmp_path, analysis_config):
    out = tmp_path / "run"
    run_experiment(analysis_config, out, progress=False)
    assert run_experiment(analysis_config, out, progress=False, force=True)["cached"]["attention"] is False
    (out / "tables" / "special_mass.csv").unlink()  # a recorded output is gone: the stage re-runs
    assert run_experiment(analysis_config, out, progress=False)["cached"] == {"extract": True, "attention": False}


def test_interrupted_run_resumes_after_last_completed_stage(tmp_path, analysis_config, monkeypatch):
    import probekit.pipeline._stages as stages

    out = tmp_path / "run"
    att = next(s for s in STAGES if s.name == "attention")

    def boom(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(att, "fn", boom)
    try:
        run_experiment(analysis_config, out, progress=False)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert (out / ".stages" / "extract.json").is_file()
    # the interrupted stage's record says it did not finish, so it is neither reused nor reported
    assert json.loads((out / ".stages" / "attention.json").read_text())["state"] == "running"
    again = run_experiment(analysis_config, out, progress=False)
    assert again["cached"] == {"extract": True, "attention": False}
    assert stages.STAGES[0].name == "extract"


def test_stage_keys_depend_only_on_what_a_stage_reads(analysis_config):
    cfg = resolve(analysis_config)
    ext = next(s for s in STAGES if s.name == "extract")
    att = next(s for s in STAGES if s.name == "attention")
    k_ext, k_att = stage_key(ext, cfg, {}), stage_key(att, cfg, {})
    cfg2 = resolve({**analysis_config, "attention": {"example": 3}})
    assert stage_key(ext, cfg2, {}) == k_ext and stage_key(att, cfg2, {}) != k_att
    up = {"extract": {"fingerprint": "a"}}
    assert stage_key(att, cfg, up) != stage_key(att, cfg, {"extract": {"fingerprint": "b"}})


def test_a_stage_version_changes_that_stage_key_only(analysis_config):
    """A stage whose code changes what it writes bumps its own version: its key changes, a stage at version 0
    keeps the key it had before stage versions existed."""
    import dataclasses

    from probekit.pipeline._runner import STAGE_VERSION, _get, _h

    cfg = resolve(analysis_config)
    att = next(s for s in STAGES if s.name == "attention")
    assert att.version == 0
    legacy = _h({"stage": att.name, "version": STAGE_VERSION, "seed": cfg.get("seed"),
                 "config": {k: _get(cfg, k) for k in att.keys}, "upstream": {}})
    assert stage_key(att, cfg, {}) == legacy
    assert stage_key(dataclasses.replace(att, version=1), cfg, {}) != legacy
    assert next(s for s in STAGES if s.name == "probes").version >= 1
