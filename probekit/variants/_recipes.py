"""Recipes: frozen, validated descriptions of how a variant was made.

A recipe is a frozen dataclass. It is checked when it is built, so a recipe
that cannot apply (a sparsity of 1.2, a student deeper than its teacher) fails
before any work is done. ``fingerprint()`` is the SHA-256 of its sorted JSON,
stable across runs and machines, and is part of a variant's fingerprint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar, Literal

from probekit.fingerprint import hash_json
from probekit.validation import Boolean, Interval, ListOf, Options, validate_params

__all__ = [
    "Recipe", "FinetuneRecipe", "MagnitudePruneRecipe", "HeadPruneRecipe", "QuantizeRecipe", "DistillRecipe",
    "recipe_from_dict", "RECIPES",
]


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


_POSITIVE_INT = Interval(Integral, 1, None, closed="left")
_POSITIVE = Interval(Real, 0, None, closed="neither")
_NON_NEGATIVE = Interval(Real, 0, None, closed="left")
_FRACTION = Interval(Real, 0, 1, closed="left")
_SEED = Interval(Integral, 0, None, closed="left")
_PRECISION = Options({"auto", "fp32", "bf16", "fp16"})
_MODULES = Options({"blocks", "all-linear"})


@dataclass(frozen=True)
class Recipe:
    """Base class: every recipe has a ``kind`` and a stable fingerprint.

    Each recipe declares what its fields accept in ``_parameter_constraints``
    and checks them when it is built (also shared with the experiment-config
    schema of :mod:`probekit.pipeline`).
    """

    kind: ClassVar[str] = "base"
    _parameter_constraints: ClassVar[dict[str, list]] = {}

    def __post_init__(self):
        validate_params(type(self), {f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters, with ``kind``."""
        out = {"kind": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
        return out

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict` (:func:`probekit.fingerprint.hash_json`)."""
        return hash_json(self.to_dict())


@dataclass(frozen=True)
class FinetuneRecipe(Recipe):
    """Fine-tuning settings (Hugging Face ``Trainer`` underneath).

    Parameters
    ----------
    task : {"sequence-classification", "token-classification"}
    epochs : float
    lr : float
        Peak AdamW learning rate (linear warm-up, then linear decay to 0).
    batch_size : int
        Per-device batch size; the effective batch is
        ``batch_size * grad_accum * devices``.
    grad_accum : int
        Gradient accumulation steps.
    warmup_ratio : float
        Fraction of the optimisation steps spent warming up.
    weight_decay, max_grad_norm : float
        AdamW weight decay; gradient clipping norm.
    precision : {"auto", "fp32", "bf16", "fp16"}
        ``"auto"``: bf16 autocast on CPU, fp16 with a gradient scaler on CUDA
        (bf16 where the GPU supports it). ``"fp16"`` needs CUDA.
    max_length : int
        Truncation length in tokens.
    early_stopping : int or None
        Stop after this many epochs without a better validation metric.
    metric : {"accuracy", "macro_f1"}
        Metric that picks the best checkpoint.
    group_by_length : bool
        Draw training batches of similar lengths (Hugging Face's
        ``LengthGroupedSampler``, still shuffled), so less compute goes to
        padding; on short sentences of mixed lengths this is the cheapest
        speed-up on a CPU.
    seed : int
    """

    kind: ClassVar[str] = "finetune"
    _parameter_constraints: ClassVar[dict[str, list]] = {
        "task": [Options({"sequence-classification", "token-classification"})],
        "epochs": [_POSITIVE],
        "lr": [_POSITIVE],
        "batch_size": [_POSITIVE_INT],
        "grad_accum": [_POSITIVE_INT],
        "warmup_ratio": [_FRACTION],
        "weight_decay": [_NON_NEGATIVE],
        "max_grad_norm": [_POSITIVE],
        "precision": [_PRECISION],
        "max_length": [Interval(Integral, 8, None, closed="left")],
        "early_stopping": [_POSITIVE_INT, None],
        "metric": [Options({"accuracy", "macro_f1"})],
        "group_by_length": [Boolean()],
        "seed": [_SEED],
    }
    task: Literal["sequence-classification", "token-classification"] = "sequence-classification"
    epochs: float = 3.0
    lr: float = 5e-5
    batch_size: int = 32
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    max_length: int = 128
    early_stopping: int | None = 2
    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    group_by_length: bool = False
    seed: int = 0



@dataclass(frozen=True)
class MagnitudePruneRecipe(Recipe):
    """Unstructured L1-magnitude pruning of linear weights, made permanent.

    Parameters
    ----------
    sparsity : float
        Target fraction of zero weights, in ``[0, 1)``.
    scope : {"global", "layer"}
        One threshold over all pruned weights, or the same sparsity in each
        module.
    modules : {"blocks", "all-linear"}
        Linear layers inside the transformer blocks only (default), or every
        linear layer including pooler and classifier.
    recover_epochs : float
        Epochs of recovery fine-tuning afterwards (0: none). The pruned
        weights stay zero throughout: their gradients are masked and the
        mask is re-applied after every optimizer step.
    recover_lr : float
        Peak learning rate of the recovery fine-tune.
    """

    kind: ClassVar[str] = "magnitude-prune"
    _parameter_constraints: ClassVar[dict[str, list]] = {
        "sparsity": [_FRACTION],
        "scope": [Options({"global", "layer"})],
        "modules": [_MODULES],
        "recover_epochs": [_NON_NEGATIVE],
        "recover_lr": [_POSITIVE],
    }
    sparsity: float = 0.5
    scope: Literal["global", "layer"] = "global"
    modules: Literal["blocks", "all-linear"] = "blocks"
    recover_epochs: float = 0.0
    recover_lr: float = 5e-5



@dataclass(frozen=True)
class HeadPruneRecipe(Recipe):
    """Structured pruning of attention heads (and optionally FFN neurons).

    Parameters
    ----------
    fraction : float
        Fraction of all heads to remove, lowest importance first, never the
        last head of a layer. Ignored when ``heads`` is given.
    heads : tuple of (layer, head) pairs, optional
        Exactly which heads to remove (original numbering).
    importance : {"michel", "magnitude"}
        Michel et al. (2019) gradient scores (needs data) or the L2 norm of
        each head's Q/K/V/O slices.
    ffn_fraction : float
        Fraction of feed-forward neurons to remove in each layer (by the L2
        norm of their in and out weights).
    recover_epochs : float
        Epochs of recovery fine-tuning afterwards (0: none). Removed heads
        and neurons are gone from the weight shapes, so they stay removed.
    recover_lr : float
        Peak learning rate of the recovery fine-tune.
    """

    kind: ClassVar[str] = "head-prune"
    _parameter_constraints: ClassVar[dict[str, list]] = {
        "fraction": [_FRACTION],
        "heads": [ListOf(ListOf(Interval(Integral, 0, None, closed="left"), min_len=2), min_len=1), None],
        "importance": [Options({"michel", "magnitude"})],
        "ffn_fraction": [_FRACTION],
        "recover_epochs": [_NON_NEGATIVE],
        "recover_lr": [_POSITIVE],
    }
    fraction: float = 0.0
    heads: tuple[tuple[int, int], ...] | None = None
    importance: Literal["michel", "magnitude"] = "michel"
    ffn_fraction: float = 0.0
    recover_epochs: float = 0.0
    recover_lr: float = 5e-5

    def __post_init__(self):
        super().__post_init__()
        if self.heads is not None:
            _check(all(len(h) == 2 for h in self.heads), f"heads must be (layer, head) pairs, got {self.heads!r}")
            object.__setattr__(self, "heads", tuple(sorted({(int(a), int(b)) for a, b in self.heads})))
        _check(self.heads is not None or self.fraction > 0 or self.ffn_fraction > 0,
               "nothing to prune: give fraction > 0, heads=..., or ffn_fraction > 0")


@dataclass(frozen=True)
class QuantizeRecipe(Recipe):
    """Post-training int8/int4 quantization of the linear layers.

    Parameters
    ----------
    method : {"dynamic-int8", "static-int8", "weight-int8", "weight-int4"}
        Dynamic int8 (weights int8, activations quantized per batch),
        static int8 (activation ranges calibrated on data), or weight-only.
    backend : {"auto", "torch.ao", "torchao", "probekit"}
        ``"auto"``: ``torch.ao`` on CPU (measured fastest here for dynamic
        int8), ``torchao`` on CUDA when installed; weight-only falls back to
        probekit's own dequantize-on-the-fly modules.
    modules : {"blocks", "all-linear"}
        Which linear layers to quantize.
    calibration_size : int
        Examples used to calibrate ``static-int8``.
    """

    kind: ClassVar[str] = "quantize"
    _parameter_constraints: ClassVar[dict[str, list]] = {
        "method": [Options({"dynamic-int8", "static-int8", "weight-int8", "weight-int4"})],
        "backend": [Options({"auto", "torch.ao", "torchao", "probekit"})],
        "modules": [_MODULES],
        "calibration_size": [_POSITIVE_INT],
    }
    method: Literal["dynamic-int8", "static-int8", "weight-int8", "weight-int4"] = "dynamic-int8"
    backend: Literal["auto", "torch.ao", "torchao", "probekit"] = "auto"
    modules: Literal["blocks", "all-linear"] = "all-linear"
    calibration_size: int = 128



@dataclass(frozen=True)
class DistillRecipe(Recipe):
    """Knowledge distillation into a smaller student.

    Loss: ``alpha * CE(student, y) + (1 - alpha) * T^2 * KL(p_teacher^T || p_student^T)``
    plus ``cosine * mean(1 - cos(h_student_i, h_teacher_k))`` over aligned
    layers when ``cosine > 0``.

    Parameters
    ----------
    layers : tuple of int, optional
        Teacher layers copied into the student, in order. Default: every
        other layer (DistilBERT: 0, 2, 4, ...).
    n_layers : int, optional
        Student depth when ``layers`` is not given (layers spread evenly).
    alpha, temperature, cosine : float
    epochs, lr, batch_size, max_length, group_by_length, seed
        Training settings, as in :class:`FinetuneRecipe`.
    """

    kind: ClassVar[str] = "distill"
    _parameter_constraints: ClassVar[dict[str, list]] = {
        "layers": [ListOf(Interval(Integral, 0, None, closed="left"), min_len=1), None],
        "n_layers": [_POSITIVE_INT, None],
        "alpha": [Interval(Real, 0, 1, closed="both")],
        "temperature": [_POSITIVE],
        "cosine": [_NON_NEGATIVE],
        "epochs": [_POSITIVE],
        "lr": [_POSITIVE],
        "batch_size": [_POSITIVE_INT],
        "grad_accum": [_POSITIVE_INT],
        "precision": [_PRECISION],
        "max_length": [Interval(Integral, 8, None, closed="left")],
        "group_by_length": [Boolean()],
        "seed": [_SEED],
    }
    layers: tuple[int, ...] | None = None
    n_layers: int | None = None
    alpha: float = 0.5
    temperature: float = 2.0
    cosine: float = 0.0
    epochs: float = 3.0
    lr: float = 5e-5
    batch_size: int = 32
    grad_accum: int = 1
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    max_length: int = 128
    group_by_length: bool = False
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
            _check(list(self.layers) == sorted(set(self.layers)), f"layers must be increasing, got {self.layers}")

    def teacher_layers(self, n_teacher: int) -> tuple[int, ...]:
        """The teacher layer behind each student layer; errors if the student is too deep."""
        if self.layers is not None:
            _check(max(self.layers) < n_teacher,
                   f"student layers {self.layers} name teacher layers beyond its {n_teacher}")
            return self.layers
        if self.n_layers is None:
            return tuple(range(0, n_teacher, 2))
        _check(self.n_layers <= n_teacher,
               f"a student of {self.n_layers} layers is deeper than its teacher ({n_teacher} layers)")
        # spread evenly, always keeping the last teacher layer (as TinyBERT's uniform map)
        return tuple(round((i + 1) * n_teacher / self.n_layers) - 1 for i in range(self.n_layers))


RECIPES: dict[str, type[Recipe]] = {
    r.kind: r for r in (FinetuneRecipe, MagnitudePruneRecipe, HeadPruneRecipe, QuantizeRecipe, DistillRecipe)
}


def recipe_from_dict(d: dict) -> Recipe:
    """Rebuild a recipe from :meth:`Recipe.to_dict` output."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in RECIPES:
        raise ValueError(f"unknown recipe kind {kind!r}; known: {sorted(RECIPES)}")
    cls = RECIPES[kind]
    for key in ("heads", "layers"):
        if d.get(key) is not None:
            d[key] = tuple(tuple(x) if isinstance(x, list) else x for x in d[key])
    return cls(**d)
