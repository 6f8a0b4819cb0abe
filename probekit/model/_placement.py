"""Subjects larger than one device, and quantized subjects: checks, dispatch and what gets recorded.

Placement (``device_map``, ``max_memory``, ``offload_folder``) goes through
``accelerate``: blocks sit on different devices, in CPU memory or on disk,
and accelerate's hooks move activations between them. Placement changes
where the forward runs, not what it computes, so it is recorded beside a
store's model (``manifest["model"]["placement"]``) and kept out of the
weights' fingerprint (the weights hash reads offloaded weights from their
offload files, so a split model hashes like the whole one).

Quantization through a Hugging Face quantization config (``TorchAoConfig``,
``BitsAndBytesConfig``) is written into the model's config by
``from_pretrained``, so it enters every fingerprint through the config hash;
the quantized weights enter through the weights hash.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch

__all__ = ["QUANTIZE_METHODS", "check_placement", "check_quantization", "dispatch", "placement_of",
           "quantization_of", "input_device"]

#: probekit's own post-training methods ``probekit.load_model(quantization=...)`` applies (a ModelVariant)
QUANTIZE_METHODS: tuple[str, ...] = ("weight-int8", "weight-int4", "dynamic-int8")


def check_placement(device, device_map, max_memory, offload_folder) -> None:
    """Refuse contradictory or impossible placement settings before anything loads."""
    if device_map is None:
        if max_memory is not None or offload_folder is not None:
            raise ValueError("max_memory and offload_folder take effect with a device_map; pass device_map='auto' "
                             "or a {module: device} mapping")
        return
    if importlib.util.find_spec("accelerate") is None:
        raise ImportError("device_map needs accelerate (pip install accelerate)")
    if device is not None:
        raise ValueError("pass either device (one device for the whole model) or device_map (blocks spread over "
                         "devices), not both")
    if isinstance(device_map, dict):
        bad = [f"{k!r}: {v!r}" for k, v in device_map.items() if not _known_device(v)]
        if bad:
            raise ValueError(f"device_map values must be a GPU index, 'cuda:N', 'cpu' or 'disk'; got {', '.join(bad)}")
        wants_cuda = [v for v in device_map.values() if v not in ("cpu", "disk")]
        if wants_cuda and not torch.cuda.is_available():
            raise ValueError(f"device_map places modules on {wants_cuda[0]!r}, but CUDA is not available here; "
                             "use 'cpu' and 'disk' on this machine")
        if "disk" in device_map.values() and offload_folder is None:
            raise ValueError("device_map sends modules to 'disk': pass offload_folder=... for their weights")


def _known_device(v: Any) -> bool:
    if isinstance(v, int) and not isinstance(v, bool):
        return v >= 0
    return isinstance(v, str) and (v in ("cpu", "disk") or v == "cuda" or v.startswith("cuda:"))


def check_quantization(quantization, spec) -> None:
    """A Hugging Face quantization config needs ``from_pretrained``; bitsandbytes needs CUDA."""
    if quantization is None:
        return
    if isinstance(quantization, str):
        raise TypeError(f"quantization={quantization!r} is one of probekit's own methods, applied by "
                        "probekit.load_model (which returns a ModelVariant with the recipe in its fingerprint); "
                        "probekit.model.load_hooked_model takes a transformers quantization config")
    from transformers.utils.quantization_config import QuantizationConfigMixin

    if not isinstance(quantization, QuantizationConfigMixin):
        raise TypeError(f"quantization must be a transformers quantization config (TorchAoConfig, BitsAndBytesConfig) "
                        f"or a probekit method {QUANTIZE_METHODS}, not {type(quantization).__name__}")
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(f"a {type(quantization).__name__} quantizes weights as from_pretrained loads them: pass a "
                         "folder, alias or hub name (save a built model with save_pretrained first), or use "
                         f"probekit.load_model(..., quantization='weight-int8') on a model in memory")
    method = getattr(quantization, "quant_method", "")
    if "bitsandbytes" in str(getattr(method, "value", method)).lower() and not torch.cuda.is_available():
        raise ValueError("bitsandbytes 4/8-bit quantization runs on CUDA only, and CUDA is not available here; on "
                         "CPU use transformers.TorchAoConfig (torchao weight-only int8) or quantization='weight-int8'")
    quant_type = getattr(quantization, "quant_type", None)
    if (type(quant_type).__name__.startswith("Int4") and not torch.cuda.is_available()
            and importlib.util.find_spec("mslk") is None):
        raise ValueError("torchao's int4 weight-only layout needs its mslk kernels (CUDA), which this machine lacks; "
                         "on CPU use quantization='weight-int4' (probekit's int4 weights, dequantized per call)")


def dispatch(model: torch.nn.Module, *, device_map, max_memory=None, offload_folder=None) -> torch.nn.Module:
    """Place a built model's blocks with accelerate (``"auto"``-style strategies are resolved first)."""
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    if isinstance(device_map, str):
        no_split = list(getattr(model, "_no_split_modules", None) or [])
        if device_map != "sequential":
            max_memory = get_balanced_memory(model, max_memory=max_memory, no_split_module_classes=no_split,
                                             low_zero=device_map == "balanced_low_0")
        device_map = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=no_split)
    model = dispatch_model(model, device_map=dict(device_map), offload_dir=offload_folder)
    model.hf_device_map = dict(device_map)
    return model


def placement_of(model: torch.nn.Module) -> dict | None:
    """The module-to-device map of a dispatched model (``None`` for a model on one device)."""
    dm = getattr(model, "hf_device_map", None)
    if not dm or len(set(map(str, dm.values()))) < 2 and "disk" not in map(str, dm.values()):
        return None
    return {str(k): v if isinstance(v, int) else str(v) for k, v in dm.items()}


def quantization_of(model: torch.nn.Module) -> dict | None:
    """The Hugging Face quantization config the model was loaded with, as a dict (``None`` if none)."""
    qc = getattr(model.config, "quantization_config", None)
    if qc is None:
        return None
    return qc.to_dict() if hasattr(qc, "to_dict") else dict(qc)


def input_device(model: torch.nn.Module) -> torch.device:
    """Where a forward's inputs go: the first accelerator of a dispatched model, else its parameters' device."""
    dm = getattr(model, "hf_device_map", None)
    if dm:
        for v in dm.values():
            if v not in ("cpu", "disk"):
                return torch.device(f"cuda:{v}" if isinstance(v, int) else v)
        return torch.device("cpu")
    return next(model.parameters()).device
