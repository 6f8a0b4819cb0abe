import pytest

from probekit.variants import (
    DistillRecipe,
    FinetuneRecipe,
    HeadPruneRecipe,
    MagnitudePruneRecipe,
    QuantizeRecipe,
    recipe_from_dict,
)


def test_fingerprint_is_stable_and_sensitive():
    a, b = MagnitudePruneRecipe(sparsity=0.5), MagnitudePruneRecipe(sparsity=0.5)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != MagnitudePruneRecipe(sparsity=0.6).fingerprint()
    assert a.fingerprint() != MagnitudePruneRecipe(sparsity=0.5, scope="layer").fingerprint()
    # a known value: sha256 of the sorted JSON, the same on every machine
    assert len(a.fingerprint()) == 64


@pytest.mark.parametrize("recipe", [
    MagnitudePruneRecipe(sparsity=0.3, scope="layer"), HeadPruneRecipe(heads=[(1, 2), (0, 1)]),
    QuantizeRecipe(method="weight-int4"), DistillRecipe(layers=(0, 2)), FinetuneRecipe(epochs=1, grad_accum=4),
])
def test_round_trip_through_dict(recipe):
    back = recipe_from_dict(recipe.to_dict())
    assert back == recipe and back.fingerprint() == recipe.fingerprint()


@pytest.mark.parametrize("make, match", [
    (lambda: MagnitudePruneRecipe(sparsity=1.0), r"\[0, 1\)"),
    (lambda: MagnitudePruneRecipe(sparsity=-0.1), r"\[0, 1\)"),
    (lambda: HeadPruneRecipe(fraction=1.0), "fraction"),
    (lambda: HeadPruneRecipe(), "nothing to prune"),
    (lambda: QuantizeRecipe(method="int3"), "method"),
    (lambda: DistillRecipe(alpha=1.5), "alpha"),
    (lambda: DistillRecipe(layers=(2, 0)), "increasing"),
    (lambda: FinetuneRecipe(precision="fp8"), "precision"),
    (lambda: FinetuneRecipe(epochs=0), "epochs"),
])
def test_bad_recipes_fail_when_built(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_student_deeper_than_teacher():
    assert DistillRecipe().teacher_layers(6) == (0, 2, 4)
    assert DistillRecipe(n_layers=3).teacher_layers(6) == (1, 3, 5)
    with pytest.raises(ValueError, match="deeper than its teacher"):
        DistillRecipe(n_layers=7).teacher_layers(6)
    with pytest.raises(ValueError, match="beyond"):
        DistillRecipe(layers=(0, 6)).teacher_layers(6)
