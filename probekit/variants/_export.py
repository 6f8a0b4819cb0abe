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
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from probekit.model import HookedModel, as_hooked_model
from probekit.variants._variant import ModelVariant

__all__ = ["export", "ExportedModel", "measure_latency", "compare_latency", "LatencyComparison", "fixed_threads",
           "parameter_count", "state_dict_bytes"]

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
        Median batch-1 latency: ``{"eager": ..., "exported": ...}``, the two timed call by call in turn.
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


@contextmanager
def fixed_threads(n: int | None):
    """Run the block with ``torch.set_num_threads(n)`` and restore the old count after (``None``: unchanged)."""
    if n is None:
        yield
        return
    if int(n) < 1:
        raise ValueError(f"threads must be >= 1, not {n}")
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def parameter_count(model: nn.Module) -> int:
    """Weight elements in ``model``'s state dict, whatever their dtype (packed int8 linears included)."""
    total = 0
    for v in model.state_dict().values():
        if isinstance(v, torch.Tensor):
            total += v.numel()
        elif isinstance(v, tuple):  # torch.ao packed int8 linear: (weight, bias)
            total += sum(t.numel() for t in v if isinstance(t, torch.Tensor))
    return total


def state_dict_bytes(model: nn.Module) -> int:
    """Size of ``model``'s state dict as ``torch.save`` writes it (the size of a variant on disk)."""
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def measure_latency(fn: Callable[[], object], *, repeats: int = 20, warmup: int = 3, threads: int | None = None,
                    clock: Literal["wall", "cpu"] = "wall") -> float:
    """Median time of ``fn()`` in milliseconds.

    Parameters
    ----------
    fn : callable
        Called with no arguments.
    repeats : int
        Timed calls (after ``warmup`` untimed ones).
    warmup : int
    threads : int, optional
        Fix ``torch``'s intra-op thread count while timing.
    clock : {"wall", "cpu"}
        ``"cpu"`` is the process CPU time: it does not count time spent
        descheduled by other processes, so it is steadier on a shared machine
        (best with ``threads=1``; with several threads it sums them).

    Returns
    -------
    float
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, not {repeats}")
    if clock not in _CLOCKS:
        raise ValueError(f"clock must be 'wall' or 'cpu', not {clock!r}")
    tick = _CLOCKS[clock]
    with fixed_threads(threads):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            t0 = tick()
            fn()
            times.append((tick() - t0) * 1000)
    return statistics.median(times)


@dataclass
class LatencyComparison:
    """Interleaved timings of several callables over the same inputs (from :func:`compare_latency`).

    Attributes
    ----------
    names : list of str
    rounds : list of dict
        Per round, ``{name: {"median_ms", "total_s", "per_s"}}``: median time
        of one call, summed time of all calls, and units (e.g. sentences) per
        second over the round.
    clock : str
    threads : int
    """

    names: list
    rounds: list
    clock: str
    threads: int

    def summary(self, baseline: str | None = None):
        """One row per callable: median and best over rounds, and ratios to ``baseline``.

        Parameters
        ----------
        baseline : str, optional
            Name the ratios are taken against (default: the first).

        Returns
        -------
        pandas.DataFrame
            Columns ``median_ms`` / ``best_ms`` (median and minimum over
            rounds of the per-round median call time), ``per_s_median`` /
            ``per_s_best`` (units per second), ``speedup_paired`` (median over
            rounds of the same-round throughput ratio to the baseline: the
            figure least moved by load that comes and goes),
            ``speedup_of_medians``, ``speedup_of_bests``, ``latency_ratio_paired``
            (median over rounds of the same-round median call time ratio) and
            ``speedup_min`` / ``speedup_max`` (the spread of the per-round ratios).
        """
        import pandas as pd

        baseline = baseline if baseline is not None else self.names[0]
        if baseline not in self.names:
            raise KeyError(f"baseline {baseline!r} is not one of {self.names}")
        med = statistics.median
        rows = []
        for name in self.names:
            r = [rd[name] for rd in self.rounds]
            b = [rd[baseline] for rd in self.rounds]
            speed = [x["per_s"] / y["per_s"] for x, y in zip(r, b)]
            lat = [x["median_ms"] / y["median_ms"] for x, y in zip(r, b)]
            rows.append({
                "name": name, "median_ms": med(x["median_ms"] for x in r), "best_ms": min(x["median_ms"] for x in r),
                "per_s_median": med(x["per_s"] for x in r), "per_s_best": max(x["per_s"] for x in r),
                "speedup_paired": med(speed),
                "speedup_of_medians": med(x["per_s"] for x in r) / med(y["per_s"] for y in b),
                "speedup_of_bests": max(x["per_s"] for x in r) / max(y["per_s"] for y in b),
                "speedup_min": min(speed), "speedup_max": max(speed), "latency_ratio_paired": med(lat),
            })
        return pd.DataFrame(rows).set_index("name")


def compare_latency(fns: Mapping[str, Callable[..., object]], inputs: Sequence[tuple] | None = None, *,
                    units: Sequence[float] | None = None, rounds: int = 5, warmup: int = 2,
                    threads: int | None = None, clock: Literal["wall", "cpu"] = "wall") -> LatencyComparison:
    """Time several callables on the same inputs, interleaved call by call, over several rounds.

    Each round goes through ``inputs`` once; for each input every callable
    runs once, in an order rotated from round to round, so a burst of load
    from other processes hits all of them alike and the same-round ratios stay
    comparable even when absolute times move.

    Parameters
    ----------
    fns : mapping of str to callable
        ``fn(*args)`` for each ``args`` in ``inputs``.
    inputs : sequence of tuple, optional
        Argument tuples (default: one call with no arguments).
    units : sequence of float, optional
        Work per input (e.g. sentences in a batch) for the ``per_s`` figure;
        default 1 per call.
    rounds : int
    warmup : int
        Untimed passes over the first input per callable before the first round.
    threads : int, optional
        Fix ``torch``'s intra-op thread count for the whole comparison.
    clock : {"wall", "cpu"}
        See :func:`measure_latency`.

    Returns
    -------
    LatencyComparison

    Examples
    --------
    Two tiny models, one twice as deep, on the same batch:

    >>> import probekit, transformers
    >>> def tiny(layers):
    ...     return probekit.load_model(transformers.BertConfig(hidden_size=32, num_hidden_layers=layers,
    ...                                num_attention_heads=4, intermediate_size=37), seed=0)
    >>> big, small = tiny(4), tiny(2)
    >>> ids = big.tokenizer(["a fine film", "it rained all day"], padding=True, return_tensors="pt")["input_ids"]
    >>> c = compare_latency({"big": big.model, "small": small.model}, [(ids,)], rounds=3,
    ...                     threads=1)
    >>> s = c.summary("big")
    >>> list(s.index), bool(s.loc["small", "speedup_paired"] > 0)
    (['big', 'small'], True)
    """
    names = list(fns)
    if not names:
        raise ValueError("compare_latency needs at least one callable")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, not {rounds}")
    if clock not in _CLOCKS:
        raise ValueError(f"clock must be 'wall' or 'cpu', not {clock!r}")
    inputs = [()] if inputs is None else [tuple(a) for a in inputs]
    if not inputs:
        raise ValueError("inputs is empty")
    units = [1.0] * len(inputs) if units is None else [float(u) for u in units]
    if len(units) != len(inputs):
        raise ValueError(f"units has {len(units)} entries for {len(inputs)} inputs")
    tick = _CLOCKS[clock]
    out = []
    with fixed_threads(threads):
        n_threads = torch.get_num_threads()
        for name in names:
            for _ in range(warmup):
                fns[name](*inputs[0])
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            times = {n: [] for n in names}
            for args in inputs:
                for name in order:
                    t0 = tick()
                    fns[name](*args)
                    times[name].append(tick() - t0)
            # a coarse cpu clock can read 0 for a tiny call; floor the round total at one tick
            out.append({n: {"median_ms": 1000 * statistics.median(t), "total_s": max(sum(t), 1e-9),
                            "per_s": sum(units) / max(sum(t), 1e-9)} for n, t in times.items()})
    return LatencyComparison(names, out, clock, n_threads)


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
    >>> import probekit, transformers
    >>> model = probekit.load_model(probekit.model.tiny_config(), seed=0)
    >>> import tempfile
    >>> e = export(model, tempfile.mkdtemp() + "/model.onnx", format="onnx", repeats=2)
    >>> bool(e.max_abs_diff < 1e-4)
    True
    """
    if format not in ("torchscript", "torch.export", "onnx"):
        raise ValueError(f"format must be 'torchscript', 'torch.export' or 'onnx', not {format!r}")
    hooked = as_hooked_model(model)
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
        timed = compare_latency({"eager": wrapper, "exported": run}, [one] * max(1, repeats), rounds=1, warmup=3)
        lat = {k: v["median_ms"] for k, v in timed.rounds[0].items()}
    logger.info("%s export: max abs diff %.2e, batch-1 latency %.1f ms (eager %.1f ms)", format, diff,
                lat["exported"], lat["eager"])
    return ExportedModel(path, format, run, diff, lat, note)
