"""Loading saved variants: :func:`load_variant`, and :func:`load_model` for any model or variant."""

from __future__ import annotations

import json
import os
from pathlib import Path

import transformers

from probekit.model import HookedModel, load_hooked_model, load_tokenizer
from probekit.profiling import phase
from probekit.validation import constraints_of, declare, validate_params
from probekit.variants._heads import apply_structure
from probekit.variants._prune import prunable_linears
from probekit.variants._quantize import quantize_module
from probekit.variants._recipes import recipe_from_dict
from probekit.variants._variant import FORMAT_VERSION, LayerMap, ModelVariant

__all__ = ["load_model", "load_variant", "is_variant_folder"]


def is_variant_folder(spec) -> bool:
    """Whether ``spec`` is a folder holding a saved :class:`ModelVariant` (its ``recipe.json``)."""
    return isinstance(spec, (str, os.PathLike)) and (Path(spec).expanduser() / "recipe.json").is_file()


@declare(constraints_of(load_hooked_model))
def load_model(spec="minilm-l6", *, head: str | None = None, num_labels: int | None = None, tokenizer=None,
               seed: int = 0, device=None, dtype=None, trust_remote_code: bool = False, revision: str | None = None,
               name: str | None = None, device_map=None, max_memory: dict | None = None, offload_folder=None,
               quantization=None) -> HookedModel | ModelVariant:
    """The one public loader: any model (alias, folder, hub name, config, model), and a saved variant folder.

    This is ``probekit.load_model``; every entry point (the commands, the
    pipeline) loads through it. A folder holding ``recipe.json`` (written
    by :meth:`ModelVariant.save`) gives the variant, with its recipe, lineage
    and layer map; it is accepted wherever a model is, and answers like its
    model (``variant.n_layers``, ``variant.run_with_cache``). Anything else
    gives the :class:`~probekit.HookedModel` of :func:`probekit.model.load_hooked_model`
    with the same keyword arguments. For a variant folder only ``tokenizer``,
    ``device``, ``dtype`` and ``name`` apply: the folder fixes the head,
    labels and weights.

    ``quantization`` also takes one of probekit's post-training methods
    (``"weight-int8"``, ``"weight-int4"``, ``"dynamic-int8"``): the model is
    loaded, then quantized by :func:`probekit.variants.quantize` (backend
    ``"auto"``), and the quantized :class:`ModelVariant` is returned, its
    recipe in every store's fingerprint. A transformers quantization config
    (``TorchAoConfig``, ``BitsAndBytesConfig``) quantizes as the weights load.

    Examples
    --------
    >>> import probekit, transformers
    >>> m = probekit.load_model(probekit.model.tiny_config())
    >>> type(m).__name__, m.n_layers
    ('HookedModel', 2)
    """
    validate_params(load_model, locals(), caller="load_model")  # device, dtype...: before anything loads
    with phase("load"):
        if is_variant_folder(spec):
            if device_map is not None or quantization is not None:
                raise ValueError(f"{spec} is a saved variant: its recipe fixes its weights and quantization; "
                                 "device_map and quantization apply to plain models")
            # the folder fixes the head, labels and weights; only placement, tokenizer and name can change
            return load_variant(spec, tokenizer=tokenizer, device=device, dtype=dtype, name=name)
        method = quantization if isinstance(quantization, str) else None
        model = load_hooked_model(spec, head=head, num_labels=num_labels, tokenizer=tokenizer, seed=seed,
                                  device=device, dtype=dtype, trust_remote_code=trust_remote_code, revision=revision,
                                  name=name, device_map=device_map, max_memory=max_memory,
                                  offload_folder=offload_folder, quantization=None if method else quantization)
    if method is None:
        return model
    if model.placement is not None:
        raise ValueError(f"quantization={method!r} quantizes a model held on one device; with a device_map, load "
                         "quantized weights through a transformers quantization config (TorchAoConfig)")
    from probekit.variants._quantize import quantize

    return quantize(model, method=method)


def load_variant(folder: str | os.PathLike, *, tokenizer=None, device=None, dtype=None,
                 name: str | None = None) -> ModelVariant:
    """Load a saved variant folder (what :func:`probekit.load_model` does when it sees ``recipe.json``).

    Pruned shapes are rebuilt from ``structure`` before the safetensors weights
    are loaded; quantization is re-applied from the recipe. No pickle is read.
    """
    validate_params(load_model, {"device": device, "dtype": dtype, "name": name}, caller="load_variant")
    if isinstance(dtype, str):
        import torch

        dtype = getattr(torch, dtype)
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
