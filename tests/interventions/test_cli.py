"""``probekit erase`` and ``probekit amnesic`` on tiny saved models and the bundled UD sample."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import transformers as T
from click.testing import CliRunner

import probekit
from probekit.cli import main
from probekit.interventions import Eraser
from tests.conftest import tiny_config

UD = str(Path(__file__).resolve().parents[1] / "data" / "ud_en_ewt_sample")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("iv-cli")
    tok = probekit.load_tokenizer("minilm-l6")
    enc = root / "bert"
    T.BertModel(tiny_config("bert")).save_pretrained(enc)
    tok.save_pretrained(enc)
    lm = root / "gpt2"
    T.GPT2LMHeadModel(tiny_config("gpt2")).save_pretrained(lm)
    tok.save_pretrained(lm)
    return {"root": root, "bert": enc, "gpt2": lm}


def test_erase_fits_saves_and_reports(folders):
    out = folders["root"] / "eraser"
    r = CliRunner().invoke(main, ["erase", "--model", str(folders["bert"]), "--task", "upos", "--ud-path", UD,
                                  "--limit", "40", "--site", "L1.resid", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "leace eraser of upos at L1.resid" in r.output and "->" in r.output
    eraser = Eraser.load(out)
    assert eraser.target()[0] == probekit.Site.parse("L1.resid")
    r2 = CliRunner().invoke(main, ["erase", "--model", str(folders["bert"]), "--task", "upos", "--ud-path", UD,
                                   "--limit", "40", "--site", "L1.resid", "--out", str(out)])
    assert r2.exit_code == 1 and "--overwrite" in r2.output


def test_amnesic_writes_table_figure_and_report(folders):
    out = folders["root"] / "amnesic"
    r = CliRunner().invoke(main, ["amnesic", "--model", str(folders["gpt2"]), "--task", "upos", "--ud-path", UD,
                                  "--limit", "30", "--sites", "L0.resid,L1.resid", "--held-out", "10",
                                  "--n-boot", "50", "--out", str(out)])
    assert r.exit_code == 0, r.output
    tidy = pd.read_csv(out / "tables" / "amnesic.csv")
    assert set(tidy["site"]) == {"L0.resid", "L1.resid"}
    assert (out / "figures" / "amnesic__by_layer.png").stat().st_size > 1000
    md = (out / "report.md").read_text()
    assert "## Amnesic probing" in md and "lm_loss_change" in md
