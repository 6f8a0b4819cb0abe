"""Minimum description length probing, online code (Voita & Titov 2020).

Voita & Titov 2020, "Information-Theoretic Probing with Minimum Description
Length" (EMNLP). The training set (shuffled with a seed) is split at the
fractions ``0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.25, 12.5, 25, 50, 100`` %: the
first block is sent with the uniform code (``|block| * log2 K`` bits); each
later block with the codelength ``-sum log2 p(y | x)`` under a probe trained
on all the blocks before it. Compression is ``uniform / online``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone

__all__ = ["MDLResult", "online_codelength", "codelength_bits", "uniform_codelength", "DEFAULT_FRACTIONS"]

logger = logging.getLogger(__name__)

DEFAULT_FRACTIONS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)

#: floor on probabilities, so a class the probe never saw costs about 40 bits, not infinity
PROB_FLOOR = 1e-12


@dataclass(frozen=True)
class MDLResult:
    """Online codelength of a probing task.

    Attributes
    ----------
    online_bits : float
        Total online codelength (first block uniform + every later block).
    uniform_bits : float
        ``n * log2(K)``.
    compression : float
        ``uniform_bits / online_bits``.
    block_ends : tuple of int
        Cumulative sizes at which the data was split (the last one is ``n``).
    block_bits : tuple of float
        Bits spent on each block (the first with the uniform code).
    seed : int
        The shuffling seed.
    """

    online_bits: float
    uniform_bits: float
    compression: float
    block_ends: tuple[int, ...]
    block_bits: tuple[float, ...] = field(repr=False)
    seed: int = 0


def uniform_codelength(n: int, n_classes: int) -> float:
    """``n * log2(K)`` bits.

    Examples
    --------
    >>> uniform_codelength(1000, 4)
    2000.0
    """
    return float(n * np.log2(n_classes))


def codelength_bits(proba: np.ndarray, y_codes: np.ndarray) -> float:
    """``-sum_i log2 proba[i, y_i]`` (probabilities floored at ``PROB_FLOOR``).

    Examples
    --------
    >>> import numpy as np
    >>> round(codelength_bits(np.array([[0.5, 0.5], [0.25, 0.75]]), np.array([0, 1])), 3)  # 1 + log2(4/3)
    1.415
    """
    p = np.asarray(proba, dtype=np.float64)[np.arange(len(y_codes)), np.asarray(y_codes)]
    return float(-np.log2(np.maximum(p, PROB_FLOOR)).sum())


def _block_ends(n: int, fractions) -> list[int]:
    ends = sorted({max(1, min(n, int(round(f * n)))) for f in fractions})
    if ends[-1] != n:
        ends.append(n)
    return ends


def online_codelength(
    estimator, X, y, *, fractions=DEFAULT_FRACTIONS, random_state: int = 0, classes=None
) -> MDLResult:
    """Online (prequential) codelength of the labels ``y`` given ``X`` under a probe family.

    Parameters
    ----------
    estimator : classifier with ``fit`` and ``predict_proba``
        Cloned and refitted on each prefix of the shuffled data.
    X : array ``[n, d]``; y : array ``[n]``
    fractions : increasing fractions of ``n`` at which blocks end (Voita & Titov's by default).
    random_state : int
        Seed of the shuffle.
    classes : array, optional
        The label set (``K = len(classes)``); default the labels present in ``y``.

    Returns
    -------
    MDLResult

    Examples
    --------
    >>> import numpy as np
    >>> from probekit.probes import LinearProbe, online_codelength
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 4)); y = (X[:, 0] > 0).astype(int)
    >>> res = online_codelength(LinearProbe(random_state=0), X, y, random_state=0)
    >>> res.uniform_bits, res.compression > 2
    (2000.0, True)
    """
    X = np.asarray(X) if not hasattr(X, "shape") else X
    y = np.asarray(y)
    n = len(y)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    K = len(classes)
    if K < 2:
        raise ValueError("MDL needs at least 2 classes")
    codes = np.searchsorted(classes, y)
    if not np.array_equal(classes[np.clip(codes, 0, K - 1)], y):
        raise ValueError("y holds labels that are not in classes")
    order = np.random.default_rng(random_state).permutation(n)
    ends = _block_ends(n, fractions)
    block_bits = [uniform_codelength(ends[0], K)]
    for start, stop in zip(ends[:-1], ends[1:]):
        train, block = order[:start], order[start:stop]
        if len(np.unique(codes[train])) < 2:  # a probe cannot be trained on one class: uniform code
            block_bits.append(uniform_codelength(len(block), K))
            continue
        probe = clone(estimator).fit(X[np.sort(train)], y[np.sort(train)])
        proba = np.zeros((len(block), K))
        cols = np.searchsorted(classes, probe.classes_)
        proba[:, cols] = probe.predict_proba(X[np.sort(block)])
        block_codes = codes[np.sort(block)]
        block_bits.append(codelength_bits(proba, block_codes))
        logger.debug("MDL block %d:%d -> %.1f bits", start, stop, block_bits[-1])
    online = float(sum(block_bits))
    uniform = uniform_codelength(n, K)
    return MDLResult(online, uniform, uniform / online, tuple(ends), tuple(block_bits), int(random_state))
