"""Experiment config validation: errors name the key and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from probekit.pipeline import (
    DEMO_CONFIG,
    FULL_OVERRIDES,
    QUICK_OVERRIDES,
    ConfigError,
    load_config,
    merge,
    plan,
    resolve,
)
from tests.data.conftest import UD_SAMPLE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_line_and_suggestion(tmp_path):
    p = _write(tmp_path, "name: x\nprobes:\n  taks: [upos]\n  seeds: [0]\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "'probes.taks'" in msg and "(line 3)" in msg and "did you mean 'tasks'?" in msg


def test_unknown_top_level_section(tmp_path):
    p = _write(tmp_path, "name: x\n\nvariant:\n  quantize: {}\n")
    with pytest.raises(ConfigError, match=r"'variant' \(line 3\); did you mean 'variants'\?"):
        load_config(p)


def test_wrong_type_names_key_and_line(tmp_path):
    p = _write(tmp_path, "name: x\nprobes:\n  tasks: [upos]\n  seeds: 3\n")
    with pytest.raises(ConfigError, match=r"'probes.seeds' \(line 4\) must be a list, not 3"):
        load_config(p)
    p = _write(tmp_path, "finetune:\n  epochs: one\n")
    with pytest.raises(ConfigError, match=r"'finetune.epochs' \(line 2\) must be an integer or a number"):
        load_config(p)
    p = _write(tmp_path, "probes:\n  tasks: [upos]\n  controls: yes please\n")
    with pytest.raises(ConfigError, match=r"'probes.controls' \(line 3\) must be true/false"):
        load_config(p)


def test_bad_choice_in_list_item(tmp_path):
    p = _write(tmp_path, "probes:\n  tasks: [upos]\n  probes:\n    - linear\n    - mlpp\n")
    with pytest.raises(ConfigError, match=r"'probes.probes\[1\]' \(line 5\) must be one of linear, mlp, not 'mlpp'; "
                                          r"did you mean 'mlp'\?"):
        load_config(p)


def test_unknown_task(tmp_path):
    p = _write(tmp_path, "probes:\n  tasks:\n    - sentiment\n    - upso\n")
    with pytest.raises(ConfigError, match=r"unknown task 'upso' at 'probes.tasks\[1\]' \(line 4\); did you mean "
                                          r"'upos'\?"):
        load_config(p)


def test_task_from_wrong_source(tmp_path):
    p = _write(tmp_path, "probes:\n  tasks: [sentiment]\ndata:\n  source: ud\n  path: .\n")
    with pytest.raises(ConfigError, match="task 'sentiment' .* not built from source 'ud'"):
        load_config(p)


def test_missing_files(tmp_path):
    p = _write(tmp_path, f"data:\n  source: ud\n  path: {tmp_path / 'nope'}\n")
    with pytest.raises(ConfigError, match=r"'data.path' \(line 3\): no such file or folder"):
        load_config(p)
    p = _write(tmp_path, f"model:\n  path: {tmp_path / 'no-model'}\n")
    with pytest.raises(ConfigError, match=r"'model.path' \(line 2\): no such folder"):
        load_config(p)
    with pytest.raises(FileNotFoundError, match="no experiment config"):
        load_config(tmp_path / "absent.yaml")


def test_stage_needs_its_upstream_section(tmp_path):
    p = _write(tmp_path, "variants:\n  quantize: {method: dynamic-int8}\n")
    with pytest.raises(ConfigError, match=r"'variants' \(line 1\) needs a 'finetune' section"):
        load_config(p)


def test_all_errors_reported_together(tmp_path):
    p = _write(tmp_path, "nmae: x\nseed: zero\n")
    msg = str(pytest.raises(ConfigError, load_config, p).value)
    assert "'nmae' (line 1)" in msg and "'seed' (line 2)" in msg


def test_absent_sections_are_skipped_and_defaults_filled():
    cfg = resolve({"probes": {"tasks": ["upos"]}})
    assert cfg["finetune"] is None and cfg["variants"] is None and cfg["extract"] is None
    assert cfg["probes"]["seeds"] == [0] and cfg["model"] == "minilm-l6"


def test_demo_file_equals_builtin_config():
    assert load_config(EXAMPLES / "demo.yaml") == resolve(DEMO_CONFIG)


@pytest.mark.parametrize("name", ["ud_ewt_probes", "compression"])
def test_example_configs_validate(name, monkeypatch):
    monkeypatch.setenv("PROBEKIT_UD_PATH", str(UD_SAMPLE))  # stands in for the fetched treebank
    cfg = load_config(EXAMPLES / f"{name}.yaml")
    assert cfg["name"] == name
    if name == "ud_ewt_probes":  # no path in the file: the folder in use is recorded (and enters the stage keys)
        assert cfg["data"]["source"] == "ud" and cfg["data"]["path"] == str(UD_SAMPLE)


def test_ud_config_without_path_and_without_data_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.delenv("PROBEKIT_UD_PATH", raising=False)
    monkeypatch.setenv("PROBEKIT_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match=r"'data.path'.*probekit data fetch ud_ewt"):
        resolve({"data": {"source": "ud"}, "probes": {"tasks": ["upos"]}})


def test_quick_and_full_overrides_validate():
    quick = resolve(merge(DEMO_CONFIG, QUICK_OVERRIDES))
    assert quick["data"]["sentences"] < DEMO_CONFIG["data"]["sentences"]
    assert resolve(merge(DEMO_CONFIG, FULL_OVERRIDES))["data"]["sentences"] is None


def test_extract_autocast_is_checked(tmp_path):
    from probekit.pipeline import validate

    validate({"extract": {"autocast": "bf16"}})
    validate({"extract": {"autocast": None}})
    with pytest.raises(ConfigError, match="extract.autocast"):
        validate({"extract": {"autocast": "fp8"}})


def test_a_duplicate_key_is_an_error_with_both_lines(tmp_path):
    """YAML keeps the last of two equal keys silently: a changed value far down the file would win unseen."""
    p = _write(tmp_path, "name: x\nprobes:\n  tasks: [sentiment]\n  n_boot: 200\n  seeds: [0]\n  n_boot: 50\n")
    with pytest.raises(ConfigError, match=r"key 'probes.n_boot' is given twice, at lines 4 and 6"):
        load_config(p)
    p = _write(tmp_path, "name: x\nname: y\n")
    with pytest.raises(ConfigError, match=r"key 'name' is given twice, at lines 1 and 2"):
        load_config(p)


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "/tmp/elsewhere", ".hidden", "a\\\\b"])
def test_a_run_name_that_would_leave_runs_is_refused(tmp_path, monkeypatch, name):
    """`name: ../../x` wrote the run outside runs/ (the run folder is runs/<name>)."""
    from click.testing import CliRunner

    from probekit.cli import main

    p = _write(tmp_path, f"name: '{name}'\nmodel: minilm-l6\ndata:\n  source: rt\n  sentences: 20\n")
    with pytest.raises(ConfigError, match=r"'name' \(line 1\) must be a plain folder name"):
        load_config(p)
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    r = CliRunner().invoke(main, ["run", str(p)], catch_exceptions=False)
    assert r.exit_code == 1 and "plain folder name" in r.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "exp.yaml"]  # nothing written anywhere


def test_interventions_erase_and_amnesic_sections_are_validated(tmp_path):
    p = _write(tmp_path, "name: x\ninterventions:\n  - ablate:L1.resid\n  - zap:L2\n  - erase:no/such/eraser\n"
                         "  - {type: ablate_heads, site: L0.attn.out, params: {heads: [1]}}\n"
                         "amnesic:\n  task: upos\n  behaviour: classifier\n  held_out: 0\nerase:\n  task: upoz\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "'amnesic.held_out'" in msg and "(line 10)" in msg
    p = _write(tmp_path, "name: x\ninterventions:\n  - ablate:L1.resid\n  - zap:L2\n  - erase:no/such/eraser\n"
                         "  - {type: ablate_heads, site: L0.attn.out, params: {heads: [1]}}\n"
                         "amnesic:\n  task: upos\n  behaviour: classifier\nerase:\n  task: upoz\n  site: L1.resid\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "'interventions[1]' (line 4): 'zap:L2' is not ablate:SITE" in msg
    assert "'interventions[2]' (line 5): no eraser saved in no/such/eraser" in msg
    assert "interventions[0]" not in msg and "interventions[3]" not in msg
    assert "unknown task 'upoz' at 'erase.task'" in msg and "needs a 'finetune' section" in msg
    cfg = resolve({"name": "x", "interventions": ["heads:0:1"], "amnesic": {"task": "upos"}})
    assert cfg["amnesic"]["behaviour"] == "lm" and cfg["amnesic"]["held_out"] == 200
    assert [s.name for s in plan(cfg)] == ["amnesic", "report"]
