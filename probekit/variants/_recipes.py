"""Recipes: frozen, validated descriptions of how a variant was made.

A recipe is a frozen dataclass. It is checked when it is built, so a recipe
that cannot apply (a sparsity of 1.2, a student deeper than its teacher) fails
before any work is done. ``fingerprint()`` is the SHA-256 of its sorted JSON,
stable across runs and machines, and is part of a variant's fingerprint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from probekit.fingerprint import hash_json

__all__ = [
    "Recipe", "FinetuneRecipe", "MagnitudePruneRecipe", "HeadPruneRecipe", "QuantizeRecipe", "DistillRecipe",
    "recipe_from_dict", "RECIPES",
]


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class Recipe:
    """Base class: every recipe has a ``kind`` and a stable fingerprint."""

    kind: ClassVar[str] = "base"

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

    def __post_init__(self):
        _check(self.task in ("sequence-classification", "token-classification"),
               f"task must be 'sequence-classification' or 'token-classification', not {self.task!r}")
        _check(self.epochs > 0, f"epochs must be > 0, got {self.epochs}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be >= 1")
        _check(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _check(self.precision in ("auto", "fp32", "bf16", "fp16"),
               f"precision must be auto, fp32, bf16 or fp16, not {self.precision!r}")
        _check(self.max_length >= 8, f"max_length must be >= 8, got {self.max_length}")
        _check(self.early_stopping is None or self.early_stopping >= 1, "early_stopping must be None or >= 1")
        _check(self.metric in ("accuracy", "macro_f1"), f"metric must be accuracy or macro_f1, not {self.metric!r}")


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
    sparsity: float = 0.5
    scope: Literal["global", "layer"] = "global"
    modules: Literal["blocks", "all-linear"] = "blocks"
    recover_epochs: float = 0.0
    recover_lr: float = 5e-5

    def __post_init__(self):
        _check(isinstance(self.sparsity, (int, float)) and 0 <= self.sparsity < 1,
               f"sparsity must be in [0, 1), got {self.sparsity!r}")
        _check(self.scope in ("global", "layer"), f"scope must be 'global' or 'layer', not {self.scope!r}")
        _check(self.modules in ("blocks", "all-linear"),
               f"modules must be 'blocks' or 'all-linear', not {self.modules!r}")
        _check(self.recover_epochs >= 0, f"recover_epochs must be >= 0, got {self.recover_epochs}")
        _check(self.recover_lr > 0, f"recover_lr must be > 0, got {self.recover_lr}")


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
    fraction: float = 0.0
    heads: tuple[tuple[int, int], ...] | None = None
    importance: Literal["michel", "magnitude"] = "michel"
    ffn_fraction: float = 0.0
    recover_epochs: float = 0.0
    recover_lr: float = 5e-5

    def __post_init__(self):
        if self.heads is not None:
            object.__setattr__(self, "heads", tuple(sorted({(int(a), int(b)) for a, b in self.heads})))
        _check(0 <= self.fraction < 1, f"fraction must be in [0, 1), got {self.fraction}")
        _check(0 <= self.ffn_fraction < 1, f"ffn_fraction must be in [0, 1), got {self.ffn_fraction}")
        _check(self.importance in ("michel", "magnitude"),
               f"importance must be 'michel' or 'magnitude', not {self.importance!r}")
        _check(self.recover_epochs >= 0, "recover_epochs must be >= 0")
        _check(self.recover_lr > 0, f"recover_lr must be > 0, got {self.recover_lr}")
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
    method: Literal["dynamic-int8", "static-int8", "weight-int8", "weight-int4"] = "dynamic-int8"
    backend: Literal["auto", "torch.ao", "torchao", "probekit"] = "auto"
    modules: Literal["blocks", "all-linear"] = "all-linear"
    calibration_size: int = 128

    def __post_init__(self):
        methods = ("dynamic-int8", "static-int8", "weight-int8", "weight-int4")
        _check(self.method in methods, f"method must be one of {methods}, not {self.method!r}")
        _check(self.backend in ("auto", "torch.ao", "torchao", "probekit"), f"unknown backend {self.backend!r}")
        _check(self.modules in ("blocks", "all-linear"), "modules must be 'blocks' or 'all-linear'")
        _check(self.calibration_size >= 1, "calibration_size must be >= 1")


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
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
            _check(len(self.layers) >= 1, "layers must name at least one teacher layer")
            _check(list(self.layers) == sorted(set(self.layers)), f"layers must be increasing, got {self.layers}")
            _check(min(self.layers) >= 0, "layers must be >= 0")
        _check(self.n_layers is None or self.n_layers >= 1, "n_layers must be >= 1")
        _check(0 <= self.alpha <= 1, f"alpha must be in [0, 1], got {self.alpha}")
        _check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        _check(self.cosine >= 0, "cosine must be >= 0")
        _check(self.epochs > 0 and self.lr > 0 and self.batch_size >= 1, "epochs, lr, batch_size must be positive")

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
