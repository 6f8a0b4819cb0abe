"""``probekit compare`` end to end on tiny random models."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import probekit
from probekit.cli import main
from probekit.data import build_task
from probekit.probes import extract_task
from probekit.store import extract
from probekit.variants import distill
from tests.conftest import tiny_config
from tests.data.conftest import UD_SAMPLE_DEV

TEXTS = [f"review {i} : the film was {'great' if i % 2 else 'dull'} and long ." for i in range(32)]
SITES = ["emb", "L0.resid", "L1.resid", "L0.attn.pattern", "L1.attn.pattern"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _perturbed(seed: int = 0):
    m = probekit.load_model(tiny_config("bert"), seed=seed)
    with torch.no_grad():
        for p in m.blocks[1].parameters():
            p.add_(0.5 * torch.randn_like(p))
    return m


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmpcli")
    base = probekit.load_model(tiny_config("bert"), seed=0)
    a = extract(base, TEXTS, SITES, root / "a", progress=False, dtype="float32", sentence_pooling=["mean"])
    b = extract(_perturbed(), TEXTS, SITES, root / "b", progress=False, dtype="float32", sentence_pooling=["mean"])
    return a.path, b.path


def test_compare_cli_default_outputs(stores, tmp_path):
    a, b = stores
    out = tmp_path / "cmp"
    r = CliRunner().invoke(main, ["compare", str(a), str(b), "--out", str(out), "--measure", "linear_cka,svcca"])
    assert r.exit_code == 0, r.output
    for name in ("tables/compare.csv", "tables/compare_diagonal.csv", "tables/compare_best.csv",
                 "tables/attention_deltas.csv", "summaries/compare.md", "figures/compare__linear_cka_b.png",
                 "figures/compare__svcca_b.png", "figures/compare__diagonal_linear_cka.png",
                 "figures/compare__attention_jsd.png"):
        assert (out / name).stat().st_size > 0, name
    diag = pd.read_csv(out / "tables" / "compare_diagonal.csv").set_index(["site", "measure"])["value"]
    assert diag[("L0.resid", "linear_cka")] == pytest.approx(1.0, abs=1e-6)
    assert diag[("L1.resid", "linear_cka")] < 0.99
    full = pd.read_csv(out / "tables" / "compare.csv")
    assert (full.measure == "svcca").sum() == 9 and set(full.variant) == {"b"} and set(full.level) == {"sentence"}
    att = pd.read_csv(out / "tables" / "attention_deltas.csv")
    assert len(att) == 2 * 2 * 4  # 2 metrics x 2 layers x 4 heads
    md = (out / "summaries" / "compare.md").read_text()
    assert "layer map same-named sites" in r.output and "Most similar layer of A for each layer of B" in md
    report = CliRunner().invoke(main, ["report", str(out)])
    assert report.exit_code == 0, report.output
    page = (out / "report.md").read_text()
    assert "Layer-by-layer similarity to the base model" in page and "Attention deltas per layer" in page


def test_compare_cli_token_level_explicit_map_and_errors(stores, tmp_path):
    a, b = stores
    out = tmp_path / "tok"
    r = CliRunner().invoke(main, ["compare", str(a), str(b), "--out", str(out), "--level", "token", "--no-attention",
                                  "--layer-map", "L0.resid=L1.resid", "--measure", "procrustes"])
    assert r.exit_code == 0, r.output
    diag = pd.read_csv(out / "tables" / "compare_diagonal.csv")
    assert list(diag.site) == ["L0.resid"] and list(diag.site_b) == ["L1.resid"] and list(diag.layer) == [1]
    assert list(diag.measure) == ["procrustes"] and list(diag.level) == ["token"]
    assert not (out / "tables" / "attention_deltas.csv").exists()
    bad = CliRunner().invoke(main, ["compare", str(a), str(b), "--out", str(out), "--layer-map", "L0.resid"])
    assert bad.exit_code != 0 and "SITE_A=SITE_B" in bad.output
    bad = CliRunner().invoke(main, ["compare", str(a), str(b), "--out", str(out), "--layer-map", "L9.resid=L0.resid"])
    assert bad.exit_code != 0 and "L9.resid" in bad.output
    bad = CliRunner().invoke(main, ["compare", str(a), str(b), "--out", str(out), "--measure", "cka"])
    assert bad.exit_code != 0 and "'measures' parameter of compare must be one of 'linear_cka'" in bad.output
    assert "got ['cka']" in bad.output


def test_compare_cli_layer_map_from_student_recipe(tmp_path):
    teacher = probekit.load_model(tiny_config("bert"), head="sequence-classification", num_labels=2, seed=0)
    distill(teacher, (TEXTS, [i % 2 for i in range(len(TEXTS))]), n_layers=1, epochs=1, batch_size=16,
            max_length=16, precision="fp32", out=tmp_path / "student", progress=False)
    ta = extract(teacher, TEXTS, None, tmp_path / "ta", progress=False, dtype="float32")
    sb = extract(probekit.load_model(tmp_path / "student"), TEXTS, None, tmp_path / "sb", progress=False,
                 dtype="float32")
    out = tmp_path / "cmp"
    r = CliRunner().invoke(main, ["compare", str(ta.path), str(sb.path), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "layer map from the stores' variant records" in r.output
    assert "layer map emb -> emb, L1.resid -> L0.resid" in r.output
    diag = pd.read_csv(out / "tables" / "compare_diagonal.csv")
    assert list(diag.site) == ["emb", "L1.resid"] and list(diag.site_b) == ["emb", "L0.resid"]
    assert list(diag.layer) == [0, 2]  # the teacher's (A's) layer axis


def test_compare_cli_probe_deltas(tmp_path):
    task = build_task("upos", "ud", path=UD_SAMPLE_DEV, limit=60)
    a = extract_task(probekit.load_model(tiny_config("bert"), seed=0), task, tmp_path / "a", progress=False)
    b = extract_task(_perturbed(), task, tmp_path / "b", progress=False)
    out = tmp_path / "cmp"
    r = CliRunner().invoke(main, ["compare", str(a.path), str(b.path), "--out", str(out), "--probes", "upos",
                                  "--ud-path", str(UD_SAMPLE_DEV), "--limit", "60", "--n-boot", "100",
                                  "--seeds", "0,1"])
    assert r.exit_code == 0, r.output
    assert (out / "figures" / "compare__probe_deltas.png").stat().st_size > 0
    df = pd.read_csv(out / "tables" / "probe_deltas.csv")
    assert set(df.task) == {"upos"} and list(df.layer) == [0, 1, 2]
    emb = df[(df.site == "emb") & (df.site_b == "emb")].iloc[0]
    assert emb.delta == 0 and emb.accuracy_a == emb.accuracy_b  # the embeddings are the same in both models
    assert (df.delta - (df.accuracy_b - df.accuracy_a)).abs().max() < 1e-9
    assert "**Probe deltas" in (out / "summaries" / "compare.md").read_text()
