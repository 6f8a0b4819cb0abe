"""Every numeric and enumerated config setting is range-checked before any work starts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from click.testing import CliRunner

from probekit.cli import main
from probekit.pipeline import DEMO_CONFIG, ConfigError, load_config, resolve
from probekit.pipeline._config import SCHEMA, F
from probekit.validation import invalid_values

#: string settings that are free text or checked against the world (paths, task names, sites), not a fixed set
FREE_TEXT = {"name", "model", "data.path", "extract.sites", "compare.probe_task", "erase.task", "erase.site",
             "amnesic.task", "amnesic.sites"}
#: list settings whose items are checked by name (tasks against the registry, interventions against their grammar
#: and the model's sites: probekit.pipeline._interventions)
BY_NAME = {"probes.tasks", "interventions"}


def _fields(schema=SCHEMA, prefix=""):
    for key, spec in schema.items():
        if isinstance(spec, dict):
            yield from _fields(spec, prefix + key + ".")
        else:
            yield prefix + key, spec


def _set(cfg: dict, path: str, value) -> dict:
    cfg = copy.deepcopy(cfg)
    node = cfg
    *parents, leaf = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return cfg


def test_every_number_has_a_range_and_every_string_a_set():
    for path, spec in _fields():
        numeric = any(t in (int, float) for t in spec.types + (spec.item or ()))
        if numeric:
            assert spec.accepts, f"{path} has no range"
        strings = str in spec.types or str in (spec.item or ())
        if strings and path not in FREE_TEXT | BY_NAME:
            assert spec.choices or spec.item_choices or spec.accepts, f"{path} accepts any string"


def _item_or_value(spec: F) -> list:
    """Values the field's declared constraint refuses (item by item for lists), of the field's own types."""
    alternatives = list(spec.item_accepts() or spec.accepts or ())
    types = spec.item or spec.types
    return [v for v in invalid_values(alternatives)
            if isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
            and not (isinstance(v, float) and v != v and float not in types)]


CASES = [(path, v) for path, spec in _fields() for v in _item_or_value(spec)]


def test_every_range_comes_from_a_declaration():
    """The schema restates no range: each numeric field's constraint is the very list its class declares (or,
    for a setting only the pipeline reads, one declared in the schema)."""
    from probekit.attribution import Attributor
    from probekit.probes import ProbeSuite
    from probekit.store import extract
    from probekit.validation import constraint_of
    from probekit.variants import DistillRecipe, FinetuneRecipe, HeadPruneRecipe

    fields = dict(_fields())
    assert fields["probes.n_boot"].accepts == tuple(constraint_of(ProbeSuite, "n_boot"))
    assert fields["probes.seeds"].accepts == tuple(constraint_of(ProbeSuite, "seeds"))
    assert fields["extract.batch_tokens"].accepts == tuple(constraint_of(extract, "batch_tokens"))
    assert fields["finetune.lr"].accepts == tuple(constraint_of(FinetuneRecipe, "lr"))
    assert fields["variants.prune_heads.fraction"].accepts == tuple(constraint_of(HeadPruneRecipe, "fraction"))
    assert fields["variants.distill.alpha"].accepts == tuple(constraint_of(DistillRecipe, "alpha"))
    assert fields["attribution.n_steps"].accepts == tuple(constraint_of(Attributor.attribute, "n_steps"))
    # the same objects, not equal copies: changing the class's declaration changes the schema
    assert fields["probes.n_boot"].accepts[0] is constraint_of(ProbeSuite, "n_boot")[0]


@pytest.mark.parametrize("path, value", CASES)
def test_out_of_range_values_are_refused(path, value):
    spec = dict(_fields())[path]
    bad = [value] if spec.item is not None else value
    with pytest.raises(ConfigError, match=f"'{path}(\\[0\\])?'( \\(line \\d+\\))? must be"):
        resolve(_set(DEMO_CONFIG, path, bad))


def test_in_range_edges_pass():
    resolve(_set(DEMO_CONFIG, "variants.magnitude_prune.sparsity", 0.0))
    resolve(_set(DEMO_CONFIG, "variants.distill.alpha", 1.0))
    resolve(_set(DEMO_CONFIG, "probes.n_boot", 1))
    with pytest.raises(ConfigError, match=r"must be a float in the range \[0, 1\); got 1"):
        resolve(_set(DEMO_CONFIG, "variants.magnitude_prune.sparsity", 1))
    with pytest.raises(ConfigError, match="must be a float in the range .*; got nan"):
        resolve(_set(DEMO_CONFIG, "finetune.lr", float("nan")))
    with pytest.raises(ConfigError, match=r"'variants.prune_heads'.*nothing to prune"):
        resolve(_set(DEMO_CONFIG, "variants.prune_heads.fraction", 0.0))


def test_names_are_checked_too():
    with pytest.raises(ConfigError, match=r"'extract.sites\[1\]'.*L3\.rsid"):
        resolve(_set(DEMO_CONFIG, "extract.sites", ["emb", "L3.rsid"]))
    with pytest.raises(ConfigError, match=r"unknown task 'sentimnt' at 'compare.probe_task'; did you mean"):
        resolve(_set(DEMO_CONFIG, "compare.probe_task", "sentimnt"))
    with pytest.raises(ConfigError, match=r"'attention.example' is 2000, but data.sentences keeps only"):
        resolve(_set(DEMO_CONFIG, "attention.example", 2000))
    erase = {**DEMO_CONFIG, "erase": {"task": "upos", "site": "L1.resdi"}}
    with pytest.raises(ConfigError, match=r"'erase.site'.*L1\.resdi"):
        resolve(erase)
    amnesic = {**DEMO_CONFIG, "amnesic": {"task": "upos", "sites": ["L1.resid", "L9.mlp.outt"]}}
    with pytest.raises(ConfigError, match=r"'amnesic.sites\[1\]'.*L9\.mlp\.outt"):
        resolve(amnesic)


def test_n_boot_minus_five_stops_the_run_before_any_work(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("name: x\nmodel: minilm-l6\ndata:\n  source: rt\n  sentences: 40\nextract:\n  sites: resid\n"
                   "probes:\n  tasks: [sentiment]\n  n_boot: -5\n")
    with pytest.raises(ConfigError, match=r"'probes.n_boot' \(line 10\) must be an int in the range \[1, inf\); "
                                          r"got -5"):
        load_config(cfg)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["run", str(cfg), "--out", str(out)])
    assert r.exit_code == 1 and "Error: " in r.output and "n_boot" in r.output
    assert not out.exists()  # nothing extracted, nothing written


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")))
def test_shipped_configs_stay_valid(name, monkeypatch):
    root = ROOT
    monkeypatch.chdir(root)
    # UD examples take the treebank from PROBEKIT_UD_PATH or the fetched copy: the bundled sample stands in,
    # so the check does not depend on what this machine has fetched or set
    monkeypatch.setenv("PROBEKIT_UD_PATH", str(root / "tests" / "data" / "ud_en_ewt_sample"))
    try:
        load_config(root / "examples" / name)
    except ConfigError as exc:  # only a missing data folder may stop an example here
        assert "no such file or folder" in str(exc) and "data.path" in str(exc), exc
