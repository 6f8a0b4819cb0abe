"""A ModelVariant is accepted wherever a HookedModel is, with the same results as its model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import probekit
from probekit.attention import head_importance, head_mask
from probekit.attribution import Attributor
from probekit.compare import compare, layer_map_for, prediction_agreement
from probekit.probes import random_init_copy
from probekit.variants import MagnitudePruneRecipe, evaluate, export, magnitude_prune, predict_logits
from tests.variants.conftest import tiny_classifier

TEXTS = ["a gripping film", "dull and far too long", "the actors are fine", "a mess"]
DATA = (TEXTS, [1, 0, 1, 0])


def _same(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b)
    elif isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, b)
    else:
        assert a == b


def _extract(m, tmp_path, name):
    st = probekit.extract(m, TEXTS, ["emb", "L0.resid", "L1.resid"], tmp_path / name, progress=False,
                          dtype="float32")
    return {"fingerprint": st.fingerprint, "recipe": st.manifest["components"]["recipe"],
            "x": st["L1.resid"].numpy(), "open": probekit.ActivationStore.open(st.path, model=m).n_examples}


def _export(m, tmp_path, name):
    e = export(m, tmp_path / f"{name}.pt", format="torchscript", texts=TEXTS, repeats=1)
    return {"diff_small": e.max_abs_diff < 1e-4}


def _heads(m, tmp_path, name):
    with head_mask(m, torch.zeros(2, 4)):
        off = predict_logits(m, TEXTS)
    return {"importance": head_importance(m, TEXTS, [1, 0, 1, 0])["importance"].to_numpy(), "masked": off}


def _compare(m, tmp_path, name):
    base = tmp_path / "base-store"
    if not base.exists():
        probekit.extract(tiny_classifier(), TEXTS, ["emb", "L0.resid", "L1.resid"], base, progress=False)
    mine = probekit.extract(m, TEXTS, ["emb", "L0.resid", "L1.resid"], tmp_path / f"{name}-cmp", progress=False)
    a = probekit.ActivationStore.open(base)
    return {"map": layer_map_for(a, mine), "diag": compare(a, mine, progress=False).diagonal()["linear_cka"].to_numpy()}


USES = {
    "evaluate": lambda m, tmp, name: {k: v for k, v in evaluate(m, DATA).items() if k != "report"},
    "predict_logits": lambda m, tmp, name: predict_logits(m, TEXTS),
    "run_with_cache": lambda m, tmp, name: m.run_with_cache(TEXTS, ["L1.resid"])["L1.resid"],
    "extract+open": _extract,
    "attribute": lambda m, tmp, name: np.concatenate(
        [a.scores for a in Attributor(m, "saliency").attribute(TEXTS, target=1)]),
    "export": _export,
    "head_mask+head_importance": _heads,
    "prediction_agreement": lambda m, tmp, name: prediction_agreement(m, tiny_classifier(), TEXTS).agreement,
    "compare": _compare,
    "random_init_copy": lambda m, tmp, name: random_init_copy(m, seed=1).weights_hash(),
    "magnitude_prune": lambda m, tmp, name: magnitude_prune(m, MagnitudePruneRecipe(sparsity=0.5)).lineage,
}


@pytest.fixture(scope="module")
def variant():
    return magnitude_prune(tiny_classifier(), MagnitudePruneRecipe(sparsity=0.3))


@pytest.mark.parametrize("use", list(USES))
def test_a_variant_is_a_model(variant, tmp_path, use):
    with_variant = USES[use](variant, tmp_path, "variant")
    with_model = USES[use](variant.model, tmp_path, "model")
    if use == "extract+open":
        # the variant's recipe is recorded when the variant is given; its model alone knows no recipe
        assert with_variant["recipe"]["kind"] == "magnitude-prune" and with_model["recipe"] is None
        assert with_variant["fingerprint"] != with_model["fingerprint"]
        for d in (with_variant, with_model):
            del d["recipe"], d["fingerprint"]
    if use == "magnitude_prune":
        # pruning the variant continues its lineage; pruning its bare model starts a new one
        assert with_variant == (variant.recipe.to_dict(),) and with_model == ()
        return
    _same(with_variant, with_model)


def test_the_model_holds_no_pointer_back_to_its_variant(variant):
    assert not hasattr(variant.model, "recipe") and not hasattr(variant.model, "variant")
    assert variant.n_layers == variant.model.n_layers and variant.name == variant.model.name


def test_a_saved_variant_loads_as_itself_and_the_core_loader_points_there(variant, tmp_path):
    from probekit.model import ModelLike, recipe_of
    from probekit.model import load_hooked_model as core_load_model

    assert isinstance(variant, ModelLike) and recipe_of(variant) == variant.recipe and recipe_of(variant.model) is None
    assert not hasattr(probekit.model, "load_model")  # one public loader: probekit.load_model
    variant.save(tmp_path / "v")
    back = probekit.load_model(tmp_path / "v")
    assert back.recipe == variant.recipe and back.fingerprint() == variant.fingerprint()
    with pytest.raises(ValueError, match="saved model variant.*probekit.load_model"):
        core_load_model(tmp_path / "v")
    with pytest.raises(ValueError, match="saved model variant.*probekit.load_model"):
        probekit.extract(tmp_path / "v", ["a cat sat"], out=tmp_path / "s")  # the store resolves plain specs only
    store = probekit.extract(back, ["a cat sat"], ["L0.resid"], out=tmp_path / "s", progress=False)
    assert store.manifest["components"]["recipe"]["kind"] == variant.recipe.kind
