"""``import probekit`` and the command line's start stay light (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("transformers", "torch", "torch.distributed", "torch._dynamo", "pandas", "matplotlib", "sklearn", "captum",
         "spacy", "datasets", "scipy")


def modules_after(code: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_probekit_loads_nothing_heavy():
    loaded = modules_after("import probekit")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert not any(m.startswith("probekit.") and m != "probekit.version" for m in loaded), sorted(
        m for m in loaded if m.startswith("probekit."))


def test_command_line_start_loads_nothing_heavy():
    # what `probekit --help` imports: the command group and every command's options, not the library
    loaded = modules_after("import probekit.cli")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.slow
def test_public_names_still_resolve_lazily():
    loaded = modules_after("import probekit\nassert probekit.Site.parse('L3.resid').layer == 3\n"
                           "assert callable(probekit.load_model) and probekit.store.ActivationStore")
    assert {"probekit.model", "probekit.store", "probekit.variants"} <= loaded



@pytest.mark.parametrize("name", ["probekit.store", "probekit.probes", "probekit.compare", "probekit.attention",
                                  "probekit.data", "probekit.interventions", "probekit.results", "probekit.plots"])
def test_analysis_of_stores_loads_no_model_library(name):
    # reading, probing and comparing stores made elsewhere needs no model: transformers (and the torchao it
    # pulls in) cost about 5 s and 250 MB, paid only where a model is loaded
    loaded = modules_after(f"import {name}")
    assert "transformers" not in loaded and "probekit.model._loading" not in loaded, name


def test_importing_the_plots_leaves_the_matplotlib_backend_alone():
    # a notebook's or a desktop session's backend is the user's: the plots only draw figures
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("MPLBACKEND", None)
    code = ("import matplotlib\nmatplotlib.use('svg')\nimport probekit.plots\n"
            "import matplotlib.pyplot as plt\nprint(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "svg"


def test_probing_stores_from_the_command_line_loads_no_model_library():
    # what `probekit probe --store` imports: the run-folder tables of the pipeline without its model stages
    loaded = modules_after("from probekit.pipeline import probe_outputs\nimport probekit.cli._probe")
    assert "transformers" not in loaded and "probekit.variants" not in loaded
