"""The decoder path of the pipeline on a tiny GPT-2: last-token sentence rows in task stores, amnesic probing."""

from __future__ import annotations

import copy

import pytest

from probekit.pipeline import run_experiment
from probekit.store import ActivationStore

TINY_GPT2 = {"name": "tiny-gpt2",
             "config": {"model_type": "gpt2", "vocab_size": 30522, "n_embd": 32, "n_layer": 2, "n_head": 4,
                        "bos_token_id": 101, "eos_token_id": 102}}
CFG = {
    "name": "tiny-decoder",
    "seed": 0,
    "model": TINY_GPT2,
    "data": {"source": "rt", "sentences": 40},
    "extract": {"sites": "resid", "attention": False, "dtype": "float32"},
    "probes": {"tasks": ["upos", "sentiment"], "seeds": [0], "n_boot": 20, "random_init": False},
    "amnesic": {"task": "upos", "sites": ["L1.resid"], "held_out": 4, "n_boot": 20},
    "outputs": {"figures": True, "report": True},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("decoder") / "run"
    return out, run_experiment(copy.deepcopy(CFG), out, progress=False)


def test_decoder_task_stores_pool_sentences_at_the_last_token(run):
    out, _info = run
    stores = [ActivationStore.open(p) for p in (out / "stores" / "tasks").iterdir() if not p.name.startswith("@")]
    sent = [s for s in stores if s.settings["sentence_pooling"]]
    assert sent and all(s.settings["sentence_pooling"] == ["last"] for s in sent)


def test_amnesic_stage_runs_on_the_decoder(run):
    out, info = run
    assert "amnesic" in info["timings"]
    tables = {p.stem for p in (out / "tables").glob("amnesic*.csv")}
    assert tables, "the amnesic stage wrote no table"
    assert "Amnesic probing" in (out / "report.md").read_text()


def test_erase_and_amnesic_stores_of_an_earlier_config_are_replaced(tmp_path):
    """Edited data in the same run folder: the erase and amnesic stages replace the task stores they made before,
    as every stage replaces its own, instead of stopping at the fingerprint mismatch."""
    cfg = {"name": "tiny-erase", "seed": 0, "model": TINY_GPT2, "data": {"source": "rt", "sentences": 30},
           "erase": {"task": "upos", "site": "L1.resid"},
           "amnesic": {"task": "upos", "sites": ["L1.resid"], "held_out": 4, "n_boot": 20},
           "outputs": {"figures": False, "report": False}}
    out = tmp_path / "run"
    run_experiment(copy.deepcopy(cfg), out, progress=False)
    first = {n: ActivationStore.open(out / "stores" / n).fingerprint for n in ("erase-upos", "amnesic-upos")}
    cfg["data"]["sentences"] = 24
    info = run_experiment(copy.deepcopy(cfg), out, progress=False)
    assert {"erase", "amnesic"} <= set(info["timings"])
    for name, fp in first.items():
        store = ActivationStore.open(out / "stores" / name)
        assert store.fingerprint != fp and store.n_examples < 30


def test_an_eraser_fitted_again_in_the_same_folder_reruns_the_stages_it_acts_in(tmp_path):
    """The config names an eraser by its folder; the stage keys cover what the folder holds."""
    fit = {"name": "fit", "seed": 0, "model": TINY_GPT2, "data": {"source": "rt", "sentences": 30},
           "erase": {"task": "upos", "site": "L1.resid"}, "outputs": {"figures": False, "report": False}}
    run_experiment(copy.deepcopy(fit), tmp_path / "fit", progress=False)
    eraser = tmp_path / "fit" / "models" / "erasers" / "upos-L1.resid"
    use = {"name": "use", "seed": 0, "model": TINY_GPT2, "data": {"source": "rt", "sentences": 12},
           "extract": {"sites": "resid", "attention": False, "dtype": "float32"},
           "interventions": [f"erase:{eraser}"], "outputs": {"figures": False, "report": False}}
    first = run_experiment(copy.deepcopy(use), tmp_path / "use", progress=False)
    assert all(run_experiment(copy.deepcopy(use), tmp_path / "use", progress=False)["cached"].values())
    fit["data"]["sentences"] = 24  # the same folder, another eraser
    run_experiment(copy.deepcopy(fit), tmp_path / "fit", progress=False)
    again = run_experiment(copy.deepcopy(use), tmp_path / "use", progress=False)
    assert not again["cached"]["extract"]
    assert again["fingerprints"] != first["fingerprints"]
