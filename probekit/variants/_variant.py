"""``ModelVariant``: a model plus the recipe that made it and a layer map to its base.

A variant is just another :class:`~probekit.HookedModel` (``variant.model``)
with provenance, so extraction, suites and comparison never special-case it.
It saves to a plain folder that :func:`probekit.load_model` reads back:

``model.safetensors``, ``config.json``, tokenizer files
    the float weights (for a quantized variant, the weights before
    quantization: quantization is re-applied on load from the recipe);
``recipe.json``
    recipe, lineage (earlier recipes, oldest first), base name and weights
    fingerprint, and the structure needed to rebuild pruned shapes;
``layer_map.json``
    variant layer -> base layer, surviving base heads and FFN neurons.

Nothing in the folder is a pickle.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from probekit.fingerprint import hash_json, jsonable
from probekit.model import HookedModel
from probekit.variants._recipes import Recipe

__all__ = ["LayerMap", "ModelVariant", "FORMAT_VERSION"]

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LayerMap:
    """How a variant's layers, heads and FFN neurons line up with its base.

    Parameters
    ----------
    layers : tuple of int
        ``layers[i]`` is the base layer behind variant layer ``i``.
    heads : tuple of tuple of int, optional
        Per variant layer, the base head index of each surviving head, in the
        variant's order (``None``: all heads, unchanged).
    ffn : tuple of tuple of int, optional
        Per variant layer, the base FFN neuron index of each surviving neuron.

    Examples
    --------
    >>> LayerMap.identity(2).compose(LayerMap((1,), heads=((0, 2),))).to_dict()
    {'layers': [1], 'heads': [[0, 2]], 'ffn': None}
    """

    layers: tuple[int, ...]
    heads: tuple[tuple[int, ...], ...] | None = None
    ffn: tuple[tuple[int, ...], ...] | None = None

    @classmethod
    def identity(cls, n_layers: int) -> LayerMap:
        return cls(tuple(range(n_layers)))

    def compose(self, child: LayerMap) -> LayerMap:
        """Map of a variant made from this one (``child`` maps onto this variant)."""
        layers = tuple(self.layers[i] for i in child.layers)

        def chain(mine, theirs):
            if theirs is None:
                return None if mine is None else tuple(mine[i] for i in child.layers)
            if mine is None:
                return theirs
            return tuple(tuple(mine[child.layers[i]][h] for h in row) for i, row in enumerate(theirs))

        return LayerMap(layers, chain(self.heads, child.heads), chain(self.ffn, child.ffn))

    def to_dict(self) -> dict:
        conv = lambda rows: None if rows is None else [list(r) for r in rows]
        return {"layers": list(self.layers), "heads": conv(self.heads), "ffn": conv(self.ffn)}

    @classmethod
    def from_dict(cls, d: dict) -> LayerMap:
        conv = lambda rows: None if rows is None else tuple(tuple(r) for r in rows)
        return cls(tuple(d["layers"]), conv(d.get("heads")), conv(d.get("ffn")))


@dataclass
class ModelVariant:
    """A model made from a base model by a recipe.

    Attributes
    ----------
    model : HookedModel
        The variant's model, ready for ``run_with_cache`` and extraction. It
        holds no pointer back to the variant: pass the variant itself
        wherever its recipe should be recorded (:func:`probekit.extract`
        does). Attributes the variant does not have are looked up on it
        (``variant.n_layers``, ``variant.sites()``).
    recipe : Recipe
        The last step that made it.
    layer_map : LayerMap
        Back to the original base (composed over the lineage).
    base : dict
        ``{"name", "fingerprint"}`` of the original base model.
    lineage : tuple of dict
        Earlier recipes, oldest first.
    structure : dict
        Shapes to rebuild on load (``heads``: kept heads per layer, in config
        numbering; ``ffn``: kept neurons per layer; ``static_ranges``).
    report : dict
        What the step measured (sparsity per module, metrics, ...); not part
        of the fingerprint.
    float_model : PreTrainedModel, optional
        For quantized variants: the float model that is saved.
    """

    model: HookedModel
    recipe: Recipe
    layer_map: LayerMap
    base: dict
    lineage: tuple[dict, ...] = ()
    structure: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    float_model: nn.Module | None = None

    def __getattr__(self, name: str):
        # a variant runs and answers like the model it carries (n_layers, sites(), tokenizer, ...);
        # the model itself knows nothing of the variant
        if name.startswith("__") or name in _FIELDS:
            raise AttributeError(name)
        return getattr(self.model, name)

    def run_with_cache(self, inputs, sites=None, **kwargs):
        """:meth:`HookedModel.run_with_cache` of the variant's model (a variant runs like any model)."""
        return self.model.run_with_cache(inputs, sites, **kwargs)

    def __repr__(self) -> str:
        return (f"ModelVariant({self.recipe.kind}, base={self.base.get('name')!r}, "
                f"lineage={[d['kind'] for d in self.lineage]}, {self.model!r})")

    def fingerprint(self) -> str:
        """SHA-256 over the base fingerprint, the lineage and the recipe: how the variant was made.

        It names the recipe, not the weights a run of it produced (training is not bit-reproducible across
        machines). What is computed from the variant's activations is keyed by its weights too: a store
        extracted from it records :meth:`HookedModel.weights_hash` beside the recipe, so a variant whose
        weights were edited after it was made is never mistaken for its store.
        """
        payload = {"base": self.base.get("fingerprint"), "lineage": list(self.lineage),
                   "recipe": self.recipe.to_dict()}
        return hash_json(payload)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the variant to ``folder`` (safetensors, config, tokenizer, recipe, layer map)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        pre = self.float_model if self.float_model is not None else self.model.model
        pre.save_pretrained(folder)
        self.model.tokenizer.save_pretrained(folder)
        meta = {
            "format": FORMAT_VERSION,
            "recipe": self.recipe.to_dict(),
            "fingerprint": self.fingerprint(),
            "lineage": list(self.lineage),
            "base": self.base,
            "structure": self.structure,
            "report": jsonable(self.report),
        }
        (folder / "recipe.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        (folder / "layer_map.json").write_text(json.dumps(self.layer_map.to_dict(), indent=2))
        logger.info("saved %s to %s", self.recipe.kind, folder)
        return folder


_FIELDS = frozenset(ModelVariant.__dataclass_fields__)


# ----------------------------------------------------------------- lineage
def parent_info(src) -> tuple[HookedModel, dict, tuple[dict, ...], LayerMap, dict]:
    """(hooked model, base, lineage so far, layer map, structure) of what a new variant is made from."""
    if isinstance(src, ModelVariant):
        return (src.model, dict(src.base), src.lineage + (src.recipe.to_dict(),), src.layer_map,
                dict(src.structure))
    if not isinstance(src, HookedModel):
        raise TypeError(f"expected a HookedModel or ModelVariant, got {type(src).__name__}")
    base = {"name": src.name, "fingerprint": src.weights_hash()}
    return src, base, (), LayerMap.identity(src.n_layers), {}


def wrap(model: nn.Module, parent: HookedModel, *, recipe: Recipe, base: dict, lineage, layer_map: LayerMap,
         structure: dict | None = None, report: dict | None = None, float_model=None,
         name: str | None = None) -> ModelVariant:
    """Make a :class:`ModelVariant` around a new model object."""
    model.eval()
    hooked = HookedModel(model, parent.tokenizer, name=name or f"{parent.name}+{recipe.kind}",
                         source={"kind": "variant", "parent": parent.source, "recipe": recipe.to_dict(),
                                 "layer_map": layer_map.to_dict()})
    return ModelVariant(hooked, recipe, layer_map, base, tuple(lineage), dict(structure or {}),
                        dict(report or {}), float_model)
