"""``probekit attention`` and ``probekit attribute`` on a tiny random BERT saved to a folder."""

from __future__ import annotations

import pandas as pd
import pytest
import transformers as T
from click.testing import CliRunner

import probekit
from probekit.cli import main
from tests.conftest import tiny_config

CONLLU = """\
# sent_id = a
# text = The cat sat.
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\tsat\tsit\tVERB\tVBD\t_\t0\troot\t_\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = b
# text = A dog saw the bird, quietly.
1\tA\ta\tDET\tDT\t_\t2\tdet\t_\t_
2\tdog\tdog\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\tsaw\tsee\tVERB\tVBD\t_\t0\troot\t_\t_
4\tthe\tthe\tDET\tDT\t_\t5\tdet\t_\t_
5\tbird\tbird\tNOUN\tNN\t_\t3\tobj\t_\t_
6\t,\t,\tPUNCT\t,\t_\t7\tpunct\t_\t_
7\tquietly\tquietly\tADV\tRB\t_\t3\tadvmod\t_\t_
8\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

"""


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny random BERT classifier (2 labels) with the default tokenizer, saved as a model folder."""
    path = tmp_path_factory.mktemp("tiny_bert")
    config = tiny_config("bert")
    config.num_labels = 2
    T.set_seed(0)
    T.BertForSequenceClassification(config).save_pretrained(path)
    probekit.load_tokenizer("minilm-l6").save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def conllu_store(tiny_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("attn")
    conllu = root / "tiny.conllu"
    conllu.write_text(CONLLU, encoding="utf-8")
    words = [["The", "cat", "sat", "."], ["A", "dog", "saw", "the", "bird", ",", "quietly", "."]]
    model = probekit.load_model(str(tiny_dir))
    store = probekit.extract(model, words, ["L0.attn.pattern", "L1.attn.pattern"], root / "store", progress=False)
    return store.path, conllu


def test_attention_report(tiny_dir, conllu_store, tmp_path):
    store, conllu = conllu_store
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["attention", "--store", str(store), "--model", str(tiny_dir), "--out", str(out),
                                  "--example", "1", "--layer", "1", "--conllu", str(conllu)])
    assert r.exit_code == 0, r.output
    for name in ("tables/attention_heads.csv", "tables/special_mass.csv", "figures/attention__grid_entropy.png",
                 "figures/attention__grid_sep.png", "figures/attention__special_mass.png",
                 "figures/attention__heatmap_ex1_L0.png", "figures/attention__rollout_ex1.png",
                 "tables/dependency_heads.csv", "tables/dependency_best.csv"):
        assert (out / name).stat().st_size > 0, name
    stats = pd.read_csv(out / "tables" / "attention_heads.csv")
    # block i's attention is layer i + 1 (the layer axis of every table); the block beside it
    assert set(stats["layer"]) == {1, 2} and set(stats["block"]) == {0, 1} and set(stats["head"]) == {0, 1, 2, 3}
    ent = stats[stats["metric"] == "entropy"]["value"]
    assert (ent > 0).all() and (ent <= 2.4).all()  # at most log(10 tokens)
    mass = pd.read_csv(out / "tables" / "special_mass.csv")
    assert list(mass["layer"]) == [1, 2] and list(mass["block"]) == [0, 1]
    assert ((mass[["cls", "sep", "punct"]] >= 0).all().all() and (mass[["cls", "sep", "punct"]].sum(axis=1) < 1).all())
    best = pd.read_csv(out / "tables" / "dependency_best.csv")
    assert {"det", "nsubj", "obj", "punct", "advmod"} <= set(best["relation"])
    assert best["accuracy"].between(0, 1).all() and best["baseline_accuracy"].between(0, 1).all()
    assert best.set_index("relation").loc["det", "n"] == 3
    # fixed offset: every det here heads the next word
    assert best.set_index("relation").loc["det", "baseline_accuracy"] == 1.0
    assert "2 examples, attention at layers [1, 2]" in r.output and "det" in r.output
    assert set(best["layer"] - best["block"]) == {1}


def test_attention_errors(tiny_dir, conllu_store, tmp_path):
    store, conllu = conllu_store
    base = ["attention", "--store", str(store), "--model", str(tiny_dir), "--out", str(tmp_path / "o")]
    r = CliRunner().invoke(main, base + ["--layer", "5"])
    assert r.exit_code != 0 and "no stored attention pattern" in r.output
    r = CliRunner().invoke(main, base + ["--layer", "0"])  # layer 0 is the embeddings: no attention there
    assert r.exit_code != 0 and "the stored layers are [1, 2]" in r.output
    r = CliRunner().invoke(main, base + ["--example", "9"])
    assert r.exit_code != 0 and "outside the store's 2 examples" in r.output
    other = tmp_path / "other.conllu"
    other.write_text(CONLLU.replace("\tcat\tcat", "\tcow\tcow"), encoding="utf-8")
    r = CliRunner().invoke(main, base + ["--conllu", str(other)])
    assert r.exit_code != 0 and "is not sentence 0" in r.output


def test_attribute_report(tiny_dir, tmp_path):
    out = tmp_path / "attr"
    texts = ["a gripping, funny film", "dull and far too long"]
    r = CliRunner().invoke(main, ["attribute", "--model", str(tiny_dir), "--text", texts[0], "--text", texts[1],
                                  "--method", "integrated_gradients", "--method", "saliency", "--out", str(out),
                                  "--target", "1", "--n-steps", "20"])
    assert r.exit_code == 0, r.output
    assert r.output.count("completeness error") == 4
    html = (out / "attributions" / "example_0.html").read_text() + (out / "attributions" / "example_1.html").read_text()
    assert html.count("<tr>") == 4 and "gripping" in html and "integrated_gradients" in html
    for k in (0, 1):
        assert (out / "figures" / f"attributions__example_{k}.png").stat().st_size > 0
    df = pd.read_csv(out / "tables" / "attribution_scores.csv")
    assert set(df["method"]) == {"integrated_gradients", "saliency"} and set(df["target"]) == {1}
    ig = df[df["method"] == "integrated_gradients"]
    assert ig["completeness_error"].notna().all() and (ig["completeness_error"] < 0.05).all()
    assert df[df["method"] == "saliency"]["completeness_error"].isna().all()
    assert (df[df["method"] == "saliency"]["score"] >= 0).all()
    first = df[(df["example"] == 0) & (df["method"] == "saliency")]
    assert first["token"].iloc[0] == "[CLS]" and "funny" in set(first["token"])
    # the same scores as tidy result rows, plus the two methods' agreement
    from probekit.attribution import token_frame
    from probekit.results import RESULT_COLUMNS

    tidy = pd.read_csv(out / "tables" / "attributions.csv")
    assert list(tidy.columns) == list(RESULT_COLUMNS) and set(tidy["model"]) == {str(tiny_dir)}
    tok = token_frame(tidy).sort_values(["method", "example", "position"]).reset_index(drop=True)
    wide = df.sort_values(["method", "example", "position"]).reset_index(drop=True)
    assert tok["token"].tolist() == wide["token"].tolist()
    assert tok["value"].to_numpy() == pytest.approx(wide["score"].to_numpy())
    agree = tidy[tidy["metric"] == "spearman:integrated_gradients~saliency"]
    mean = agree[agree["example"].isna()].iloc[0]
    assert len(agree) == 3 and -1 <= mean["value"] <= 1 and mean["ci_low"] <= mean["value"] <= mean["ci_high"]
    assert mean["value"] == pytest.approx(agree[agree["example"].notna()]["value"].mean())
    table = pd.read_csv(out / "tables" / "attribution_agreement.csv")
    assert table["spearman"].tolist() == pytest.approx(agree[agree["example"].notna()]["value"].tolist())
    report = CliRunner().invoke(main, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert "Agreement between attribution methods" in (out / "report.md").read_text()


def test_attribute_errors(tiny_dir, tmp_path):
    r = CliRunner().invoke(main, ["attribute", "--model", str(tiny_dir), "--text", "x", "--method", "salency",
                                  "--out", str(tmp_path)])
    assert r.exit_code != 0 and "unknown method" in r.output
    r = CliRunner().invoke(main, ["attribute", "--model", str(tiny_dir), "--text", "x", "--target", "7",
                                  "--out", str(tmp_path)])
    assert r.exit_code != 0 and "outside the model's 2 classes" in r.output


def test_help_has_examples():
    for cmd in ("attention", "attribute"):
        r = CliRunner().invoke(main, [cmd, "--help"])
        assert r.exit_code == 0 and "Examples:" in r.output
