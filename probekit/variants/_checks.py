"""Checks that a training run learned something: warnings that name the numbers.

A fine-tune can end "successfully" with a model that learned nothing: a run
of a few optimizer steps (600 sentences in batches of 32 with
``grad_accum=4`` is 5 steps per epoch) barely moves the weights, and the
randomly initialised classifier head then predicts one class for almost
every input. These checks look at what the run produced and warn with
:class:`TrainingWarning`; the messages are also kept in the variant's
``report["warnings"]`` (saved in ``recipe.json``, shown in the HTML report).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np

__all__ = ["TrainingWarning", "loss_did_not_fall", "one_class_predictions", "warn_all"]

logger = logging.getLogger(__name__)

#: Share of evaluation examples given one class above which the predictions count as collapsed.
ONE_CLASS_SHARE = 0.95
#: The training loss "fell" if its last quarter averages below this fraction of its first quarter.
LOSS_FALL = 0.97


class TrainingWarning(UserWarning):
    """A training run that ended without learning (one predicted class, a loss that did not fall)."""


def one_class_predictions(confusion: Sequence[Sequence[int]], *, where: str = "evaluation",
                          share: float = ONE_CLASS_SHARE) -> str | None:
    """A message when one class takes ``>= share`` of the predictions while the labels are more varied.

    Parameters
    ----------
    confusion : square array-like
        Confusion matrix, rows true labels, columns predicted labels.
    where : str
        Which examples these were (named in the message).
    share : float
        Threshold on the most frequent predicted class.

    Returns
    -------
    str or None

    Examples
    --------
    >>> print(one_class_predictions([[0, 300], [0, 300]]))  # doctest: +NORMALIZE_WHITESPACE
    the model predicts class 1 for 600 of 600 evaluation examples (100.0%),
    while the most frequent label covers 50.0% (accuracy 0.500)
    >>> one_class_predictions([[280, 20], [30, 270]]) is None
    True
    """
    cm = np.asarray(confusion, dtype=np.int64)
    n = int(cm.sum())
    if n == 0 or cm.ndim != 2 or cm.shape[0] < 2:
        return None
    pred = cm.sum(0)
    true = cm.sum(1)
    top = int(pred.argmax())
    p_share, t_share = pred[top] / n, true.max() / n
    if p_share < share or t_share >= share:
        return None
    return (f"the model predicts class {top} for {int(pred[top])} of {n} {where} examples ({100 * p_share:.1f}%), "
            f"while the most frequent label covers {100 * t_share:.1f}% (accuracy {np.trace(cm) / n:.3f})")


def loss_did_not_fall(losses: Sequence[float], *, steps: int | None = None, examples_per_step: int | None = None,
                      fall: float = LOSS_FALL) -> str | None:
    """A message when the logged training loss did not fall (last quarter vs first quarter).

    Needs at least two logged values (otherwise there is nothing to compare).

    Examples
    --------
    >>> losses = [0.692, 0.694, 0.693, 0.691, 0.689, 0.688, 0.687, 0.685]
    >>> print(loss_did_not_fall(losses, steps=10, examples_per_step=128))  # doctest: +NORMALIZE_WHITESPACE
    the training loss did not fall: 0.693 over the first 2 logged values,
    0.686 over the last 2 (10 optimizer steps of 128 examples)
    >>> loss_did_not_fall([0.69, 0.5, 0.4, 0.3]) is None
    True
    """
    vals = [float(x) for x in losses if x is not None and math.isfinite(float(x))]
    if len(vals) < 2:
        return None
    k = max(1, len(vals) // 4)
    first, last = float(np.mean(vals[:k])), float(np.mean(vals[-k:]))
    if last < fall * first:
        return None
    run = ""
    if steps is not None:
        run = f" ({steps} optimizer steps" + (f" of {examples_per_step} examples)" if examples_per_step else ")")
    return (f"the training loss did not fall: {first:.3f} over the first {k} logged values, {last:.3f} over "
            f"the last {k}{run}")


def warn_all(messages: Sequence[str | None], *, what: str, hint: str = "") -> list[str]:
    """Issue one :class:`TrainingWarning` per message (``None`` skipped); return the messages kept."""
    kept = [f"{what}: {m}" + (f"; {hint}" if hint else "") for m in messages if m]
    for m in kept:
        logger.warning(m)
        warnings.warn(m, TrainingWarning, stacklevel=3)
    return kept
