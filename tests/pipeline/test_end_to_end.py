"""Every stage on a tiny BERT built from a config, and the command line."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

import probekit
from probekit import RESULT_COLUMNS
from probekit.cli import main
from probekit.pipeline import run_experiment


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import copy

    from tests.pipeline import conftest

    cfg = copy.deepcopy(conftest.ANALYSIS)
    cfg.update({
        "probes": {"tasks": ["sentiment"], "seeds": [0], "n_boot": 20},
        "finetune": {"train_size": 32, "eval_size": 16, "epochs": 1, "batch_size": 16, "max_length": 24},
        "variants": {"magnitude_prune": {"sparsity": 0.5, "recover_epochs": 0.5},
                     "prune_heads": {"fraction": 0.25, "importance": "magnitude"},
                     "quantize": {"method": "dynamic-int8"},
                     "distill": {"n_layers": 1, "epochs": 1, "train_size": 16}, "latency_repeats": 2},
        "attribution": {"sentences": 2, "n_steps": 4},
        "compare": {"sentences": 30},
        "outputs": {"figures": True, "report": True},
    })
    out = tmp_path_factory.mktemp("pipeline") / "run"
    return out, run_experiment(cfg, out, progress=False)


def test_run_folder_contract(tiny_run):
    out, info = tiny_run
    assert list(info["timings"]) == ["extract", "task_stores", "probes", "attention", "finetune", "variants",
                                     "attribution", "compare", "report"]
    run = json.loads((out / "run.json").read_text())
    for key in ("name", "config", "probekit_version", "versions", "seeds", "fingerprints", "timings", "started",
                "finished", "cached", "machine"):
        assert key in run, key
    assert run["config"]["model"]["config"]["hidden_size"] == 32
    assert {"main", "tasks/sentiment", "random/sentiment", "compare-finetuned"} <= set(run["fingerprints"])
    assert (out / "config.yaml").is_file() and (out / "report.html").is_file()
    # extract once: the task store is pooled from the main store's token rows (its sentences are all there),
    # and the random copy ran once over the task sentences (one group: straight into its store), pooled rows only
    tasks = probekit.ActivationStore.open(out / "stores" / "tasks" / "sentiment")
    assert tasks.manifest["stats"]["derived"] and not (out / "stores" / "tasks" / "@extracted").exists()
    assert tasks.manifest["components"]["derived_from"]["sources"] == [run["fingerprints"]["main"]]
    rand = probekit.ActivationStore.open(out / "stores" / "random" / "sentiment")
    assert rand.settings["tokens"] is False and "derived" not in rand.manifest["stats"]
    for name in ("probes", "probe_summary", "expected_layer", "attention_heads", "special_mass", "attributions",
                 "attribution_agreement", "variants", "compare", "compare_diagonal", "probe_deltas",
                 "attention_deltas"):
        assert (out / "tables" / f"{name}.csv").is_file(), name
    figures = {p.name for p in (out / "figures").glob("*.png")}
    sections = {f.split("__")[0] for f in figures}
    assert sections == {"probes", "attention", "attributions", "variants", "compare"}
    assert {"probes__curves.png", "attention__rollout_ex1.png", "attention__heatmap_ex1_L0.png"} <= figures
    assert len(list((out / "attributions").glob("*.html"))) == 2
    md = (out / "report.md").read_text()
    findings = md.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
    assert "best layer" in findings and "distill vs finetuned" in findings and "along the layer map" in findings
    assert f"- **finished**: {run['finished']}" in md


def test_tables_hold_the_run(tiny_run):
    out, _ = tiny_run
    probes = pd.read_csv(out / "tables" / "probes.csv")
    assert list(probes.columns) == list(RESULT_COLUMNS)
    assert set(probes["variant"].dropna()) == {"random-init"}
    summary = pd.read_csv(out / "tables" / "probe_summary.csv")
    assert summary["layer"].tolist() == [0, 1, 2]  # emb and two blocks
    assert {"accuracy", "ci_low", "ci_high", "control", "selectivity", "majority", "random_init"} <= set(summary)
    assert (summary["ci_low"] <= summary["accuracy"] + 1e-9).all()
    variants = pd.read_csv(out / "tables" / "variants.csv")
    assert variants["variant"].tolist() == ["finetuned", "magnitude_prune", "prune_heads", "quantize", "distill"]
    assert (variants.set_index("variant").loc["distill", "layers"] == 1)
    assert variants.set_index("variant").loc["prune_heads", "params"] < variants.set_index("variant").loc[
        "finetuned", "params"]
    # the same figures as benchmarks/variants.py: drop in points, fraction kept, paired interleaved speed-up
    first = variants.iloc[0]
    assert first["throughput_ratio"] == 1.0 and first["accuracy_drop_points"] == 0.0
    v = variants.set_index("variant")
    assert v["accuracy_drop_points"].round(6).tolist() == (100 * (first["accuracy"] - v["accuracy"])).round(6).tolist()
    assert (v["throughput_ratio_min"] <= v["throughput_ratio"] + 1e-9).all() and (v["threads"] >= 1).all()
    diag = pd.read_csv(out / "tables" / "compare_diagonal.csv")
    assert list(diag.columns) == ["variant", "measure", "level", "site", "layer", "site_b", "layer_b", "value"]
    cka = diag[(diag["measure"] == "linear_cka") & (diag["variant"] == "magnitude_prune")]
    assert cka["layer"].tolist() == [0, 1, 2] and cka["value"].iloc[0] == pytest.approx(1.0, abs=1e-4)
    comp = pd.read_csv(out / "tables" / "compare.csv")
    assert list(comp.columns) == ["variant", "measure", "level", "site", "layer", "site_b", "layer_b", "value"]
    student = diag[diag["variant"] == "distill"]
    assert set(student["layer"]) == {0, 2}  # the 1-layer student's L0.resid stands for the original's layer 2
    assert set(zip(student["site"], student["site_b"])) == {("emb", "emb"), ("L1.resid", "L0.resid")}
    heads = pd.read_csv(out / "tables" / "attention_deltas.csv")
    pruned = heads[(heads["variant"] == "prune_heads") & (heads["metric"] == "attention_jsd_bits")]
    assert len(pruned) == 6 and (pruned["layer"] == pruned["block"] + 1).all()
    mass = pd.read_csv(out / "tables" / "special_mass.csv")  # block i's attention is layer i + 1
    assert mass["layer"].tolist() == [1, 2] and mass["block"].tolist() == [0, 1] and {"cls", "sep"} <= set(mass)
    # probe deltas pair layers through the variant's layer map (today's main joined the student's layer 1 with
    # the original's layer 1)
    pdel = pd.read_csv(out / "tables" / "probe_deltas.csv")
    sd = pdel[pdel["variant"] == "distill"]
    assert set(zip(sd["site"], sd["layer"], sd["site_b"])) == {("emb", 0, "emb"), ("L1.resid", 2, "L0.resid")}
    assert (pdel["delta"] - (pdel["accuracy_b"] - pdel["accuracy_a"])).abs().max() < 1e-9
    assert (pdel["ci_low"] <= pdel["delta"] + 1e-12).all() and (pdel["delta"] <= pdel["ci_high"] + 1e-12).all()
    att = pd.read_csv(out / "tables" / "attributions.csv")
    assert list(att.columns) == list(RESULT_COLUMNS)
    tokens = att[att["position"].notna()]
    assert len(tokens) and tokens["token"].notna().all() and set(tokens["layer"]) == {0}


def test_second_run_is_cached(tiny_run):
    out, first = tiny_run
    cfg = first["config"]
    again = run_experiment(cfg, out, progress=False)
    assert all(again["cached"].values())
    assert again["fingerprints"] == first["fingerprints"]


def test_cli_run_check_and_errors(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("name: x\nprobes:\n  tasks: [upos]\n  sedes: [0]\n")
    r = CliRunner().invoke(main, ["run", str(p)])
    assert r.exit_code != 0
    assert "'probes.sedes' (line 4); did you mean 'seeds'?" in r.output
    p.write_text("name: x\nextract: {sites: resid}\nattention: {example: 0}\n")
    r = CliRunner().invoke(main, ["run", str(p), "--check"])
    assert r.exit_code == 0, r.output
    assert "stages: extract, attention, report" in r.output
    r = CliRunner().invoke(main, ["run", str(tmp_path / "missing.yaml")])
    assert r.exit_code != 0 and "no experiment config" in r.output


def test_cli_run_executes_a_config(tmp_path):
    import yaml

    from tests.pipeline.conftest import ANALYSIS

    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(ANALYSIS))
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["run", str(p), "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "stage timings (s):" in r.output and "attention" in r.output
    assert json.loads((out / "run.json").read_text())["cached"] == {"extract": False, "attention": False}
    r = CliRunner().invoke(main, ["run", str(p), "--out", str(out), "--no-progress"])
    assert r.exit_code == 0 and "extract: cached" in r.output


def test_demo_help():
    r = CliRunner().invoke(main, ["demo", "--help"])
    assert r.exit_code == 0
    for flag in ("--quick", "--full", "--out", "--force"):
        assert flag in r.output
    r = CliRunner().invoke(main, ["demo", "--quick", "--full"])
    assert r.exit_code != 0 and "exclude each other" in r.output


def test_report_records_when_the_run_finished(analysis_config, tmp_path):
    analysis_config["outputs"]["report"] = True
    out = tmp_path / "run"
    info = run_experiment(analysis_config, out, progress=False)
    run = json.loads((out / "run.json").read_text())
    assert run["finished"] and run["finished"] == info["finished"]
    md = (out / "report.md").read_text()
    # the report stage reads run.json after the analysis stages are recorded as finished
    assert f"- **finished**: {run['finished']}" in md and "not recorded" not in md
    assert f"finished {run['finished']}" in md.split("\n## ", 1)[0]
    titles = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert titles[0] == "Findings" and titles[-1] == "Provenance"
    assert "Largest mean attention mass" in md.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
    assert run["total_seconds"] == pytest.approx(sum(run["timings"].values()), abs=0.01)


def test_task_sentences_missing_from_an_attention_store_join_it(analysis_config, tmp_path):
    """The main store holds attention patterns (an eager forward); bigramshift's rewritten sentences are not in it,
    so they run through the model and their rows are derived together with the main store's: one forward for both."""
    cfg = dict(analysis_config, probes={"tasks": ["bigramshift"], "seeds": [0], "n_boot": 10, "controls": False,
                                        "random_init": False})
    out = tmp_path / "run"
    info = run_experiment(cfg, out, progress=False)
    extracted = probekit.ActivationStore.open(out / "stores" / "tasks" / "@extracted")
    main = probekit.ActivationStore.open(out / "stores" / "main")
    assert extracted.manifest["components"]["forward"] == main.manifest["components"]["forward"]
    assert main.manifest["components"]["forward"]["attn_implementation"] == "eager"
    assert "probes" in info["timings"]
    assert (out / "tables" / "probes.csv").is_file()


def test_config_interventions_act_on_the_experiments_forward_passes(analysis_config, tmp_path):
    import numpy as np

    cfg = dict(analysis_config, interventions=["ablate:L0.resid"], outputs={"figures": False, "report": False})
    cfg.pop("attention")
    run_experiment(cfg, tmp_path / "run", progress=False)
    store = probekit.ActivationStore.open(tmp_path / "run" / "stores" / "main")
    assert [iv["type"] for iv in store.manifest["components"]["interventions"]] == ["ablate"]
    assert float(np.abs(store["L0.resid"].example(0)).max()) == 0.0 < float(np.abs(store["emb"].example(0)).max())
