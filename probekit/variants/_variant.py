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

import transformers
from torch import nn

from probekit.fingerprint import hash_json, jsonable
from probekit.model import HookedModel
from probekit.variants._recipes import Recipe, recipe_from_dict

__all__ = ["LayerMap", "ModelVariant", "load_variant", "FORMAT_VERSION"]

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
        The variant, ready for ``run_with_cache`` and extraction
        (``model.recipe`` is :attr:`recipe`).
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

    def __post_init__(self):
        self.model.recipe = self.recipe
        self.model.variant = self

    def run_with_cache(self, inputs, sites=None, **kwargs):
        """:meth:`HookedModel.run_with_cache` of the variant's model (a variant runs like any model)."""
        return self.model.run_with_cache(inputs, sites, **kwargs)

    def __repr__(self) -> str:
        return (f"ModelVariant({self.recipe.kind}, base={self.base.get('name')!r}, "
                f"lineage={[d['kind'] for d in self.lineage]}, {self.model!r})")

    def fingerprint(self) -> str:
        """SHA-256 over the base fingerprint, the lineage and the recipe."""
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


# ----------------------------------------------------------------- lineage
def parent_info(src) -> tuple[HookedModel, dict, tuple[dict, ...], LayerMap, dict]:
    """(hooked model, base, lineage so far, layer map, structure) of what a new variant is made from."""
    if isinstance(src, ModelVariant):
        return (src.model, dict(src.base), src.lineage + (src.recipe.to_dict(),), src.layer_map,
                dict(src.structure))
    if not isinstance(src, HookedModel):
        raise TypeError(f"expected a HookedModel or ModelVariant, got {type(src).__name__}")
    variant = getattr(src, "variant", None)
    if isinstance(variant, ModelVariant) and variant.model is src:
        return parent_info(variant)
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


# -------------------------------------------------------------------- load
def load_variant(folder: str | os.PathLike, *, tokenizer=None, device=None, dtype=None,
                 name: str | None = None) -> ModelVariant:
    """Load a saved variant folder (what :func:`probekit.load_model` does when it sees ``recipe.json``).

    Pruned shapes are rebuilt from ``structure`` before the safetensors weights
    are loaded; quantization is re-applied from the recipe. No pickle is read.
    """
    from probekit.model import load_tokenizer
    from probekit.variants._heads import apply_structure
    from probekit.variants._prune import prunable_linears
    from probekit.variants._quantize import quantize_module

    folder = Path(folder).expanduser()
    meta = json.loads((folder / "recipe.json").read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{folder}/recipe.json has format {meta.get('format')}; this probekit reads {FORMAT_VERSION}")
    recipe = recipe_from_dict(meta["recipe"])
    layer_map = LayerMap.from_dict(json.loads((folder / "layer_map.json").read_text()))
    structure = meta.get("structure") or {}
    config = transformers.AutoConfig.from_pretrained(folder)
    arch = (config.architectures or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    if cls is None:
        raise ValueError(f"{folder}/config.json names no known architecture ({arch!r})")
    if structure.get("heads") or structure.get("ffn"):
        from safetensors.torch import load_file

        model = cls(config)
        apply_structure(model, structure)
        state = load_file(str(folder / "model.safetensors"))
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = set(getattr(model, "all_tied_weights_keys", None) or getattr(model, "_tied_weights_keys", None) or ())
        if unexpected or any(k not in tied for k in missing):
            raise ValueError(f"{folder}: weights do not fit the rebuilt model (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]})")
        if missing:
            model.tie_weights()
    else:
        model = cls.from_pretrained(folder)
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    model.eval()
    float_model = None
    if recipe.kind == "quantize":
        float_model = model
        names = [n for n, _ in prunable_linears(model, recipe.modules)]
        model = quantize_module(model, recipe, names=names, ranges=structure.get("static_ranges"))
    tok = tokenizer if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)) else \
        load_tokenizer(tokenizer if tokenizer is not None else folder)
    model.eval()
    hooked = HookedModel(model, tok, name=name or folder.name,
                         source={"kind": "variant-path", "path": str(folder.resolve()), "recipe": meta["recipe"],
                                 "layer_map": layer_map.to_dict()})
    return ModelVariant(hooked, recipe, layer_map, meta["base"], tuple(meta.get("lineage", ())), structure,
                        meta.get("report", {}), float_model)
