import json

import pandas as pd
import pytest
from click.testing import CliRunner

import probekit
from probekit.cli import main
from probekit.variants import as_frame, rotten_tomatoes_splits

from .conftest import tiny_classifier


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    m = tiny_classifier("bert")
    m.model.save_pretrained(folder)
    m.tokenizer.save_pretrained(folder)
    return folder


def _run(args):
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def test_cli_prune_quantize_export(model_dir, tmp_path):
    out = _run(["prune", "--model", str(model_dir), "--out", str(tmp_path / "sparse"), "--sparsity", "0.5"])
    assert "sparsity 0.5000" in out
    _run(["prune", "--model", str(model_dir), "--out", str(tmp_path / "heads"), "--heads-fraction", "0.25"])
    assert probekit.load_model(tmp_path / "heads").recipe.kind == "head-prune"
    # a variant of a variant keeps its lineage
    _run(["quantize", "--model", str(tmp_path / "sparse"), "--out", str(tmp_path / "q")])
    q = probekit.load_model(tmp_path / "q")
    assert q.recipe.kind == "quantize" and [d["kind"] for d in q.lineage] == ["magnitude-prune"]
    out = _run(["export", "--model", str(tmp_path / "sparse"), "--out", str(tmp_path / "m.pt"),
                "--format", "torchscript"])
    assert json.loads(out[out.index('{\n  "path"'):])["max_abs_diff"] < 1e-5


def test_cli_bad_recipe_is_a_clear_error(model_dir, tmp_path):
    r = CliRunner().invoke(main, ["prune", "--model", str(model_dir), "--out", str(tmp_path / "x"),
                                  "--sparsity", "1.5"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)  # one "Error:" line, no traceback
    assert "Error: the 'sparsity' parameter of MagnitudePruneRecipe must be a float in the range [0, 1); got 1.5" \
        in r.output
    assert not (tmp_path / "x").exists()


def test_cli_finetune_from_csv(model_dir, rt_small, tmp_path):
    rt_small.to_csv(tmp_path / "d.csv", index=False)
    _run(["finetune", "--model", str(model_dir), "--data", str(tmp_path / "d.csv"), "--out", str(tmp_path / "ft"),
          "--epochs", "1", "--batch-size", "16", "--max-length", "32"])
    assert probekit.load_model(tmp_path / "ft").recipe.epochs == 1


def test_data_forms_agree(rt_small):
    import datasets

    from probekit.data import ProbingDataset

    ref = as_frame(rt_small)
    forms = [(list(rt_small["text"]), list(rt_small["label"])), datasets.Dataset.from_pandas(rt_small),
             ProbingDataset.from_lists(list(rt_small["text"]), list(rt_small["label"]))]
    for form in forms:
        df = as_frame(form)
        assert list(df["text"]) == list(ref["text"])
        assert [int(x) for x in df["label"]] == list(ref["label"])
    with pytest.raises(ValueError, match="lacks column"):
        as_frame(pd.DataFrame({"sentence": ["a"], "label": [0]}))


def test_rotten_tomatoes_split_is_fixed_and_stratified():
    a, b = rotten_tomatoes_splits(seed=0), rotten_tomatoes_splits(seed=0)
    assert all(a[k].equals(b[k]) for k in a)
    n = {k: len(v) for k, v in a.items()}
    assert n == {"train": 6824, "validation": 853, "test": 853}
    assert not set(a["train"]["text"]) & set(a["test"]["text"])
    for v in a.values():
        assert abs(v["label"].mean() - 0.5) < 0.01
