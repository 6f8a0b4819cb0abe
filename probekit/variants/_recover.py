"""Recovery fine-tuning after pruning: what was pruned stays pruned.

Structured pruning (heads, FFN neurons) removes rows and columns, so a
recovery fine-tune cannot bring them back. Unstructured (magnitude) pruning
only zeroes weights; during recovery each pruned weight's gradient is
masked as it is computed (a tensor hook, so gradient clipping sees the
masked gradient), and the mask is re-applied after every optimizer step, so
the sparsity after recovery is exactly the sparsity before.
"""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

from probekit.variants._variant import ModelVariant

__all__ = ["recover", "KeepMasks"]

logger = logging.getLogger(__name__)


class KeepMasks(TrainerCallback):
    """Hold pruned weights at zero during training: gradients masked in backward, weights after each step.

    Parameters
    ----------
    pairs : list of (Parameter, Tensor)
        Each weight with its 0/1 mask (1 = kept).
    """

    def __init__(self, pairs: list[tuple[torch.nn.Parameter, torch.Tensor]]):
        self.pairs = [(p, m.to(device=p.device, dtype=p.dtype)) for p, m in pairs]
        self._hooks: list = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.remove()
        self._hooks = [p.register_hook(lambda g, m=m: g * m) for p, m in self.pairs]
        self.apply()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.apply()

    def on_train_end(self, args, state, control, **kwargs):
        self.apply()
        self.remove()

    def apply(self) -> None:
        """Zero the pruned weights (in place)."""
        with torch.no_grad():
            for p, m in self.pairs:
                p.mul_(m)

    def remove(self) -> None:
        """Take the gradient hooks off."""
        for h in self._hooks:
            h.remove()
        self._hooks = []


def recover(variant: ModelVariant, *, epochs: float, lr: float, data, eval_data=None, out=None, seed: int = 0,
            masks: list[tuple[torch.nn.Parameter, torch.Tensor]] | None = None) -> dict:
    """Fine-tune a pruned variant in place for ``epochs`` at ``lr``; returns the training report.

    With ``eval_data``, the report also holds ``eval_before`` and ``eval_after`` (accuracy, macro-F1 of the
    pruned model before and after recovery). ``masks`` keeps unstructured sparsity (see :class:`KeepMasks`).
    """
    from probekit.variants._recipes import FinetuneRecipe
    from probekit.variants._trainer import evaluate, train_in_place

    ft = FinetuneRecipe(epochs=epochs, lr=lr, early_stopping=None, group_by_length=True, seed=seed)
    before = evaluate(variant.model, eval_data, max_length=ft.max_length) if eval_data is not None else None
    keep = KeepMasks(masks) if masks else None
    try:
        report = train_in_place(variant.model, ft, data, eval_data, out=out, callbacks=[keep] if keep else ())
    finally:
        if keep is not None:
            keep.apply()
            keep.remove()
    variant.model.model.eval()
    if before is not None:
        after = evaluate(variant.model, eval_data, max_length=ft.max_length)
        report["eval_before"] = {k: before[k] for k in ("accuracy", "macro_f1")}
        report["eval_after"] = {k: after[k] for k in ("accuracy", "macro_f1")}
        logger.info("recovery: validation accuracy %.4f -> %.4f", before["accuracy"], after["accuracy"])
    return report
