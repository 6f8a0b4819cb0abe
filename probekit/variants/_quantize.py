"""Post-training quantization of the linear layers.

Backends are chosen per method and device by what measured fastest (see
``benchmarks/results/variants.json``, and a 768x3072x768 MLP block timed on
the 2-core x86 development CPU with AVX-512 VNNI): on CPU, ``torch.ao``
dynamic int8 (fbgemm/x86 kernels, about 4x the fp32 block, while
``torchao``'s int8 ran 1.8x and its weight-only int8 not faster); on CUDA,
``torchao`` when installed. Weight-only int8/int4 on CPU uses probekit's small
dequantize-on-the-fly module even when ``torchao`` is installed: it saves
memory, not time, and ``torchao`` 0.18 is no faster there (weight-only int8
about 0.9x fp32 on a MiniLM FFN block) and has no CPU int4 layout.

Quantized modules replace ``nn.Linear`` at the same module paths, so the
adapter's sites (hidden states, attention patterns) still resolve and hooks
work unchanged.
"""

from __future__ import annotations

import copy
import importlib.util
import logging

import torch
from torch import nn

from probekit.model import HookedModel
from probekit.variants._prune import prunable_linears
from probekit.variants._recipes import QuantizeRecipe
from probekit.variants._variant import ModelVariant, parent_info, wrap

__all__ = ["quantize", "quantize_module", "resolve_backend", "WeightOnlyLinear"]

logger = logging.getLogger(__name__)


def resolve_backend(recipe: QuantizeRecipe, device: torch.device | str = "cpu") -> str:
    """The backend that runs ``recipe`` on ``device`` (errors when none can)."""
    cuda = torch.device(device).type == "cuda"
    has_torchao = importlib.util.find_spec("torchao") is not None
    backend = recipe.backend
    if backend == "auto":
        if recipe.method in ("dynamic-int8", "static-int8"):
            backend = "torchao" if cuda else "torch.ao"
        else:  # torchao's weight-only kernels win on CUDA only; on CPU they are not faster, and int4 has none
            backend = "torchao" if has_torchao and cuda else "probekit"
    if backend == "torchao" and not has_torchao:
        raise ValueError(f"{recipe.method} on {'CUDA' if cuda else 'CPU'} uses torchao, which is not installed "
                         "(pip install torchao); or pass backend='torch.ao' on CPU")
    if backend == "torch.ao" and cuda:
        raise ValueError("torch.ao int8 kernels run on CPU only; move the model to CPU or use backend='torchao'")
    if backend == "torch.ao" and recipe.method not in ("dynamic-int8", "static-int8"):
        raise ValueError(f"torch.ao has no {recipe.method}; use backend='torchao' or 'probekit'")
    if backend == "probekit" and recipe.method not in ("weight-int8", "weight-int4"):
        raise ValueError(f"the probekit backend only does weight-only quantization, not {recipe.method}")
    if backend == "torchao" and recipe.method == "static-int8":
        raise ValueError("static-int8 is implemented with torch.ao (CPU) only")
    if backend == "torchao" and recipe.method == "weight-int4" and not cuda:
        raise ValueError("torchao's int4 weight-only layouts need CUDA (no CPU kernel in torchao 0.18); "
                         "use backend='probekit' on CPU")
    return backend


class WeightOnlyLinear(nn.Module):
    """A linear layer with int8 (or int4-range) weights and float scales, dequantized per call.

    int4 weights use groups of ``group`` input columns per scale, stored one
    value per int8 byte (not packed).
    """

    def __init__(self, linear: nn.Linear, bits: int = 8, group: int = 32):
        super().__init__()
        self.in_features, self.out_features, self.bits = linear.in_features, linear.out_features, bits
        w = linear.weight.detach().float()
        qmax = 2 ** (bits - 1) - 1
        g = group if bits == 4 and w.shape[1] % group == 0 else w.shape[1]
        wg = w.view(w.shape[0], -1, g)
        scale = wg.abs().amax(-1, keepdim=True).clamp_min(1e-12) / qmax
        self.register_buffer("qweight", torch.clamp(torch.round(wg / scale), -qmax - 1, qmax).to(torch.int8))
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.qweight.to(self.scale.dtype) * self.scale).view(self.out_features, self.in_features)
        return nn.functional.linear(x, w.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}"


def _set(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def _static_qconfig():
    from torch.ao.quantization import MinMaxObserver, QConfig, default_per_channel_weight_observer

    return QConfig(activation=MinMaxObserver.with_args(dtype=torch.quint8, reduce_range=True),
                   weight=default_per_channel_weight_observer)


def quantize_module(model: nn.Module, recipe: QuantizeRecipe, *, names: list[str] | None = None,
                    calibrate=None, ranges: dict | None = None) -> nn.Module:
    """A quantized copy of ``model`` (the float model is left untouched).

    Parameters
    ----------
    names : list of str, optional
        Linear modules to quantize (default: every ``nn.Linear``).
    calibrate : callable, optional
        ``calibrate(model)`` runs calibration forwards (static int8).
    ranges : dict, optional
        Saved observer ranges ``{observer: [min, max]}`` that replace
        calibration when a static variant is loaded.
    """
    if names is None:
        names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    device = next(model.parameters()).device
    backend = resolve_backend(recipe, device)
    if recipe.method == "dynamic-int8" and backend == "torch.ao":
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(model, {n: default_dynamic_qconfig for n in names}, dtype=torch.qint8,
                                inplace=False)
    if backend == "torchao":  # pragma: no cover - needs torchao (GPU machines)
        from torchao.quantization import (
            Int4WeightOnlyConfig,
            Int8DynamicActivationInt8WeightConfig,
            Int8WeightOnlyConfig,
            quantize_,
        )

        config = {"dynamic-int8": Int8DynamicActivationInt8WeightConfig, "weight-int8": Int8WeightOnlyConfig,
                  "weight-int4": Int4WeightOnlyConfig}[recipe.method]()
        out = copy.deepcopy(model)
        wanted = set(names)
        quantize_(out, config, filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and fqn in wanted)
        return out
    out = copy.deepcopy(model)
    if backend == "probekit":
        bits = 4 if recipe.method == "weight-int4" else 8
        for n in names:
            _set(out, n, WeightOnlyLinear(out.get_submodule(n), bits=bits))
        return out
    # static int8: QuantStub -> Linear -> DeQuantStub around each chosen linear, torch.ao eager prepare/convert
    from torch.ao.quantization import DeQuantStub, QuantStub, convert, prepare

    for n in names:
        wrapper = nn.Sequential(QuantStub(), out.get_submodule(n), DeQuantStub())
        wrapper.qconfig = _static_qconfig()
        _set(out, n, wrapper)
    out.eval()
    prepare(out, inplace=True)
    if ranges is not None:
        for obs_name, (lo, hi) in ranges.items():
            obs = out.get_submodule(obs_name)
            obs.min_val, obs.max_val = torch.tensor(lo), torch.tensor(hi)
    elif calibrate is not None:
        calibrate(out)
    else:
        raise ValueError("static-int8 needs calibration data (or saved ranges)")
    found = {n: [float(m.min_val), float(m.max_val)] for n, m in out.named_modules()
             if n.endswith("activation_post_process") and hasattr(m, "min_val")}
    convert(out, inplace=True)
    out._probekit_static_ranges = found
    return out


def quantize(src: HookedModel | ModelVariant, recipe: QuantizeRecipe | None = None, *, calibration=None,
             **recipe_kwargs) -> ModelVariant:
    """Quantize the linear layers of a model.

    Parameters
    ----------
    src : HookedModel or ModelVariant
        Not modified.
    recipe : QuantizeRecipe, optional
        Or its fields as keyword arguments (``method="dynamic-int8"``).
    calibration : list of str, optional
        Texts that calibrate activation ranges (``static-int8`` only; the
        first ``recipe.calibration_size`` are used).

    Returns
    -------
    ModelVariant
        Its ``model`` runs quantized; ``float_model`` is what gets saved, and
        loading re-applies the recipe (static ranges are stored in
        ``recipe.json``).

    Examples
    --------
    >>> import probekit, transformers
    >>> model = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> q = quantize(model, method="dynamic-int8")
    >>> q.model.run_with_cache(["a fine film"], sites=["L1.attn.pattern"])["L1.attn.pattern"].shape
    torch.Size([1, 4, 5, 5])
    """
    recipe = recipe or QuantizeRecipe(**recipe_kwargs)
    parent, base, lineage, pmap, structure = parent_info(src)
    targets = [n for n, _ in prunable_linears(parent, recipe.modules)]
    if not targets:
        raise ValueError(f"{parent.name} has no linear layers to quantize (modules={recipe.modules!r})")
    backend = resolve_backend(recipe, parent.device)
    if recipe.method == "static-int8" and not calibration:
        raise ValueError("static-int8 needs calibration=[texts...] to calibrate activation ranges")

    def calibrate(m):
        texts = list(calibration)[: recipe.calibration_size]
        tok = parent.tokenizer
        with torch.inference_mode():
            for s in range(0, len(texts), 16):
                enc = tok(texts[s: s + 16], padding=True, truncation=True, max_length=parent.max_length,
                          return_tensors="pt")
                m(**enc)

    qmodel = quantize_module(parent.model, recipe, names=targets, calibrate=calibrate)
    structure = dict(structure)
    ranges = getattr(qmodel, "_probekit_static_ranges", None)
    if ranges:
        structure["static_ranges"] = ranges
    logger.info("quantized %d linear layers (%s, backend %s)", len(targets), recipe.method, backend)
    return wrap(qmodel, parent, recipe=recipe, base=base, lineage=lineage, layer_map=pmap, structure=structure,
                report={"backend": backend, "modules": len(targets)}, float_model=parent.model)
