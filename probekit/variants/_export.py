"""Export a model or variant to TorchScript, ``torch.export`` or ONNX, with a parity check and latency.

The exported graph takes ``input_ids`` and ``attention_mask`` (int64,
``[batch, tokens]``, both axes dynamic) and returns the first model output
(logits for a task head, the last hidden state otherwise). Parity is the max
absolute difference against the eager model on real sentences; ONNX is run
with ONNX Runtime when it is installed (``pip install onnx onnxruntime``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from probekit._hooked import HookedModel
from probekit.variants._variant import ModelVariant

__all__ = ["export", "ExportedModel", "measure_latency"]

logger = logging.getLogger(__name__)
Format = Literal["torchscript", "torch.export", "onnx"]


class _FirstOutput(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]


@dataclass
class ExportedModel:
    """An exported model: call it with ``(input_ids, attention_mask)``; parity and latency attached.

    Attributes
    ----------
    path : Path
    format : {"torchscript", "torch.export", "onnx"}
    max_abs_diff : float or None
        Against the eager model on the check batch (``None`` if it could not run).
    latency_ms : dict
        Median batch-1 latency: ``{"eager": ..., "exported": ...}``.
    note : str
        Why a check was skipped, if one was.
    """

    path: Path
    format: str
    run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(repr=False)
    max_abs_diff: float | None = None
    latency_ms: dict = field(default_factory=dict)
    note: str = ""

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.run(input_ids, attention_mask)


def measure_latency(fn: Callable[[], object], *, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _onnx_runner(path: Path):
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(ids, mask):
        out = sess.run(None, {"input_ids": ids.cpu().numpy().astype(np.int64),
                              "attention_mask": mask.cpu().numpy().astype(np.int64)})
        return torch.from_numpy(out[0])
    return run


def export(model: HookedModel | ModelVariant, path: str | os.PathLike, *, format: Format = "torchscript",
           texts: Sequence[str] | None = None, max_length: int = 64, repeats: int = 20) -> ExportedModel:
    """Export ``model`` and check it against the eager model.

    Parameters
    ----------
    model : HookedModel or ModelVariant
    path : path
        Output file (``.pt`` for TorchScript, ``.pt2`` for torch.export,
        ``.onnx`` for ONNX).
    format : {"torchscript", "torch.export", "onnx"}
    texts : list of str, optional
        Sentences for the parity check (default: two short ones).
    max_length : int
        Truncation of the check batch.
    repeats : int
        Timed runs for the batch-1 latency.

    Returns
    -------
    ExportedModel

    Examples
    --------
    >>> e = export(model, "model.onnx", format="onnx")   # doctest: +SKIP
    >>> e.max_abs_diff < 1e-4                            # doctest: +SKIP
    True
    """
    if format not in ("torchscript", "torch.export", "onnx"):
        raise ValueError(f"format must be 'torchscript', 'torch.export' or 'onnx', not {format!r}")
    hooked = model.model if isinstance(model, ModelVariant) else model
    if format == "onnx" and importlib.util.find_spec("onnx") is None:
        raise ImportError("ONNX export needs the 'onnx' package: pip install onnx onnxruntime")
    if format == "onnx" and any("quantized" in type(m).__module__ for m in hooked.model.modules()):
        raise ValueError("ONNX export of a torch.ao-quantized model is not supported; export the float model "
                         "and quantize with onnxruntime.quantization, or use format='torchscript'")
    path = Path(path)
    if format == "torch.export" and path.suffix != ".pt2":
        path = path.with_name(path.name + ".pt2")  # torch.export.save insists on .pt2
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = list(texts or ["a gripping, beautifully acted film .", "dull ."])
    enc = hooked.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    wrapper = _FirstOutput(hooked.model).eval()
    note = ""
    with torch.inference_mode():
        ref = wrapper(ids, mask).float()
    if format == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, (ids, mask), strict=False, check_trace=False)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path))
        run = lambda a, b: loaded(a, b)
    elif format == "torch.export":
        batch, seq = torch.export.Dim("batch", max=1024), torch.export.Dim("seq", max=hooked.max_length)
        try:
            prog = torch.export.export(wrapper, (ids, mask),
                                       dynamic_shapes={"input_ids": {0: batch, 1: seq},
                                                       "attention_mask": {0: batch, 1: seq}})
        except Exception as exc:  # noqa: BLE001 - fall back to static shapes, and say so
            note = f"dynamic shapes failed ({type(exc).__name__}); exported with static shapes"
            logger.warning(note)
            prog = torch.export.export(wrapper, (ids, mask))
        torch.export.save(prog, str(path))
        module = torch.export.load(str(path)).module()
        run = lambda a, b: module(a, b)
    else:
        with hooked.eager_attention(), torch.no_grad():
            torch.onnx.export(wrapper, (ids, mask), str(path), dynamo=False,
                              input_names=["input_ids", "attention_mask"], output_names=["output"], opset_version=17,
                              dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                            "attention_mask": {0: "batch", 1: "seq"}, "output": {0: "batch"}})
        if importlib.util.find_spec("onnxruntime") is None:
            note = "onnxruntime not installed: no parity check or latency for the ONNX file"
            logger.warning(note)
            return ExportedModel(path, format, lambda a, b: (_ for _ in ()).throw(ImportError(note)), None, {}, note)
        run = _onnx_runner(path)
    with torch.inference_mode():
        diff = float((run(ids, mask).float() - ref).abs().max())
        one = (ids[:1], mask[:1])
        lat = {"eager": measure_latency(lambda: wrapper(*one), repeats=repeats),
               "exported": measure_latency(lambda: run(*one), repeats=repeats)}
    logger.info("%s export: max abs diff %.2e, batch-1 latency %.1f ms (eager %.1f ms)", format, diff,
                lat["exported"], lat["eager"])
    return ExportedModel(path, format, run, diff, lat, note)
