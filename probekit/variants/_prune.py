"""Unstructured magnitude pruning with torch's pruning utilities, made permanent."""

from __future__ import annotations

import copy
import logging

import pandas as pd
from torch import nn
from torch.nn.utils import prune as tprune

from probekit.model import HookedModel, adapter_for
from probekit.variants._recipes import MagnitudePruneRecipe
from probekit.variants._variant import ModelVariant, parent_info, wrap

__all__ = ["magnitude_prune", "sparsity_report", "prunable_linears"]

logger = logging.getLogger(__name__)


def prunable_linears(model: HookedModel | nn.Module, modules: str = "blocks", root: nn.Module | None = None
                     ) -> list[tuple[str, nn.Linear]]:
    """``(name, module)`` of the linear layers a recipe touches, named from the top model.

    ``modules="blocks"``: those inside the transformer blocks; ``"all-linear"``:
    every ``nn.Linear`` (pooler and classifier too).
    """
    if root is None:
        root = model.model if isinstance(model, HookedModel) else model
    found = [(n, m) for n, m in root.named_modules() if isinstance(m, nn.Linear)]
    if modules == "all-linear":
        return found
    inside = {id(m) for m in adapter_for(root).blocks(root.base_model).modules()}
    return [(n, m) for n, m in found if id(m) in inside]


def sparsity_report(model: nn.Module, names: list[str] | None = None) -> pd.DataFrame:
    """Zero fraction of each linear weight: ``module, numel, zeros, sparsity`` (plus a ``TOTAL`` row)."""
    rows = []
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear) and (names is None or n in names):
            w = m.weight.detach()
            rows.append((n, w.numel(), int((w == 0).sum())))
    df = pd.DataFrame(rows, columns=["module", "numel", "zeros"])
    df.loc[len(df)] = ("TOTAL", int(df["numel"].sum()), int(df["zeros"].sum()))
    df["sparsity"] = df["zeros"] / df["numel"]
    return df


def magnitude_prune(src: HookedModel | ModelVariant, recipe: MagnitudePruneRecipe | None = None, *, data=None,
                    eval_data=None, out=None, **recipe_kwargs) -> ModelVariant:
    """Zero the smallest-magnitude linear weights, globally or per module, permanently.

    Parameters
    ----------
    src : HookedModel or ModelVariant
        Not modified; the variant holds a pruned copy.
    recipe : MagnitudePruneRecipe, optional
        Or its fields as keyword arguments (``sparsity=0.5, scope="layer"``).
    data, eval_data : texts + labels, DataFrame or datasets.Dataset, optional
        Training data of the recovery fine-tune (needed when
        ``recover_epochs > 0``) and its validation data (the report then
        holds the validation accuracy before and after recovery).
    out : path, optional
        Checkpoint folder of the recovery fine-tune.

    Returns
    -------
    ModelVariant
        ``report["sparsity"]`` is the per-module sparsity table (after any
        recovery), ``report["recovery"]`` the recovery's training report. The pruning
        masks are folded into the weights (``torch.nn.utils.prune.remove``),
        so the model has plain ``weight`` parameters and saves as usual.

    Examples
    --------
    >>> import probekit, transformers
    >>> model = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> v = magnitude_prune(model, sparsity=0.5)
    >>> float(v.report["sparsity"].iloc[-1]["sparsity"])
    0.5
    """
    recipe = recipe or MagnitudePruneRecipe(**recipe_kwargs)
    if recipe.recover_epochs > 0 and data is None:
        raise ValueError("recover_epochs > 0 needs data=... for the recovery fine-tune")
    parent, base, lineage, pmap, structure = parent_info(src)
    if not prunable_linears(parent, recipe.modules):
        raise ValueError(f"{parent.name} has no linear layers to prune (modules={recipe.modules!r})")
    model = copy.deepcopy(parent.model)
    targets = prunable_linears(parent, recipe.modules, root=model)
    params = [(m, "weight") for _, m in targets]
    if recipe.sparsity > 0:
        if recipe.scope == "global":
            tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=recipe.sparsity)
        else:
            for m, p in params:
                tprune.l1_unstructured(m, p, amount=recipe.sparsity)
        for m, p in params:
            tprune.remove(m, p)
    table = sparsity_report(model, [n for n, _ in targets])
    logger.info("magnitude pruning: %.4f sparsity over %d modules", table.iloc[-1]["sparsity"], len(targets))
    variant = wrap(model, parent, recipe=recipe, base=base, lineage=lineage, layer_map=pmap, structure=structure,
                   report={"sparsity": table})
    if recipe.recover_epochs > 0:
        from probekit.variants._recover import recover

        masks = [(m.weight, (m.weight.detach() != 0).to(m.weight.dtype)) for _, m in targets]
        variant.report["recovery"] = recover(variant, epochs=recipe.recover_epochs, lr=recipe.recover_lr, data=data,
                                             eval_data=eval_data, out=out, masks=masks)
        after = sparsity_report(model, [n for n, _ in targets])
        if not (after["zeros"] >= table["zeros"]).all():  # pragma: no cover - KeepMasks guarantees it
            raise RuntimeError("recovery fine-tuning revived pruned weights")
        variant.report["sparsity"] = after
    return variant
