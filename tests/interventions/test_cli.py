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


@pytest.fixture(scope="module")
def finetuned(folders):
    """A folder written by `probekit finetune` (a saved variant: recipe.json beside the weights)."""
    from probekit.data import load_movie_reviews

    df = load_movie_reviews("rotten_tomatoes")
    data = folders["root"] / "train.csv"
    pd.concat([df[df["label"] == y].head(24) for y in (0, 1)])[["text", "label"]].to_csv(data, index=False)
    out = folders["root"] / "ft"
    r = CliRunner().invoke(main, ["finetune", "--model", str(folders["bert"]), "--data", str(data), "--out", str(out),
                                  "--epochs", "1", "--batch-size", "16", "--max-length", "32"])
    assert r.exit_code == 0, r.output
    assert (out / "recipe.json").is_file()
    return out


def test_amnesic_and_erase_take_a_folder_written_by_finetune(folders, finetuned):
    """The README's own example: `probekit amnesic --model runs/ft ... --behaviour classifier` (issue 25, item 3)."""
    out = folders["root"] / "amnesic-ft"
    r = CliRunner().invoke(main, ["amnesic", "--model", str(finetuned), "--task", "sentiment", "--source", "rt",
                                  "--limit", "60", "--sites", "L1.resid", "--behaviour", "classifier",
                                  "--held-out", "6", "--n-boot", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert set(pd.read_csv(out / "tables" / "amnesic.csv")["site"]) == {"L1.resid"}
    r = CliRunner().invoke(main, ["erase", "--model", str(finetuned), "--task", "sentiment", "--source", "rt",
                                  "--limit", "60", "--site", "L1.resid", "--out", str(folders["root"] / "er-ft")])
    assert r.exit_code == 0, r.output


def test_every_command_loads_models_through_probekit_load_model():
    """One loader for every entry point: the CLI never calls the core loader (which refuses saved variants) or
    transformers' from_pretrained itself."""
    import ast

    cli = Path(probekit.__file__).parent / "cli"
    bad = []
    for path in sorted(cli.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "probekit.model" and \
                    any(a.name == "load_model" for a in node.names):
                bad.append(f"{path.name}:{node.lineno} imports probekit.model.load_model")
            if isinstance(node, ast.Attribute) and node.attr == "from_pretrained":
                bad.append(f"{path.name}:{node.lineno} calls from_pretrained")
            if isinstance(node, ast.ImportFrom) and node.module == "probekit.variants" and \
                    any(a.name == "load_variant" for a in node.names):
                bad.append(f"{path.name}:{node.lineno} imports load_variant (probekit.load_model loads variants)")
    assert bad == []
