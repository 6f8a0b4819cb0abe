from click.testing import CliRunner

from probekit.cli import main


def test_help_lists_commands():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    assert "demo" in r.output and "sites" in r.output


def test_sites_command():
    r = CliRunner().invoke(main, ["sites", "minilm-l6", "-c", "resid"])
    assert r.exit_code == 0, r.output
    assert "HookedModel('minilm-l6', BertModel, 6 layers, d_model=384, 12 heads)" in r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("L") and ".resid" in ln]
    assert lines == [f"L{i}.resid" for i in range(6)]


def test_demo_prints_real_layer_figures(tmp_path):
    out = tmp_path / "demo.csv"
    r = CliRunner().invoke(main, ["demo", "-n", "200", "--out", str(out)])
    assert r.exit_code == 0, r.output
    import pandas as pd

    table = pd.read_csv(out)
    assert table["site"].tolist() == ["emb"] + [f"L{i}.resid" for i in range(6)]
    # real weights: a sentiment probe beats chance somewhere, attention rows carry mass on [CLS]/[SEP]
    assert table["sentiment_acc"].max() > 0.6
    assert (table["cls_mass"].dropna() + table["sep_mass"].dropna()).max() > 0.2
    assert "L5.resid" in r.output
