"""Labels as classes: one canonical name per class, and missing labels as errors, wherever labels enter.

Class names are text (:func:`canonical_label`): a label and its spelling in a
CSV are one class, so ``1``, ``1.0``, ``numpy.int64(1)``, ``"1"`` and
``"1.0"`` are all the class ``'1'`` (``str()`` alone would make ``1`` and
``1.0`` two classes, ``'1'`` and ``'1.0'``).

``None``, a float NaN, pandas' ``NA``/``NaT`` and an empty (or whitespace-only)
string are *missing*: were they kept, ``str()`` would turn them into classes
named ``'None'``, ``'nan'`` or ``''``.
"""

from __future__ import annotations

import math
import numbers
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["MissingLabelError", "is_missing", "check_labels", "canonical_label", "canonical_labels"]

#: A number written plainly: an optional sign, no leading zeros (so ids like "007" stay text), optional decimals.
_NUMBER = re.compile(r"[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?")


def canonical_label(value: Any) -> str:
    """The name of ``value``'s class: integral numbers (and their plain spellings) as integers, other text as is.

    Integers and integral floats of any type, and strings spelling them plainly
    (``"1"``, ``"1.0"``, ``"+1"``), are the class ``'1'``; other finite numbers
    and their plain spellings are the shortest float text (``0.50`` and
    ``"0.50"`` are ``'0.5'``); booleans are ``'True'``/``'False'``; any other
    string is kept exactly (``"007"``, ``"NOUN"``). Missing labels are refused
    before this is called (:func:`check_labels`).

    Examples
    --------
    >>> [canonical_label(v) for v in (1, 1.0, "1", "1.0", 2, 0.5, "0.50", "007", "NOUN", True)]
    ['1', '1', '1', '1', '2', '0.5', '0.5', '007', 'NOUN', 'True']
    """
    np = sys.modules.get("numpy")
    if isinstance(value, bool) or (np is not None and isinstance(value, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isfinite(f) and f == int(f):
            return str(int(f))
        return repr(f)
    if isinstance(value, str):
        if _NUMBER.fullmatch(value):
            return canonical_label(float(value)) if "." in value else str(int(value))
        return value
    return str(value)


def canonical_labels(values: Iterable[Any]) -> list[str]:
    """:func:`canonical_label` of every value.

    Examples
    --------
    >>> sorted(set(canonical_labels([1, 1.0, 2])))
    ['1', '2']
    """
    return [canonical_label(v) for v in values]


class MissingLabelError(ValueError):
    """A label is missing; ``example`` (and ``word`` for word/edge labels) say where, counting from 0."""

    def __init__(self, message: str, example: int, word: int | None = None):
        super().__init__(message)
        self.example, self.word = example, word


def is_missing(value: Any) -> bool:
    """Whether ``value`` stands for no label at all.

    Examples
    --------
    >>> [is_missing(v) for v in (None, float("nan"), "", "  ", "neg", 0)]
    [True, True, True, True, False, False]
    """
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    pd = sys.modules.get("pandas")
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return True
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.floating):
        return bool(np.isnan(value))
    return False


def _what(value: Any) -> str:
    return "an empty string" if isinstance(value, str) else repr(value)


def check_labels(labels: Sequence[Any], level: str = "sentence", *, words: Sequence[Sequence[str]] | None = None,
                 what: str = "label") -> None:
    """Raise :class:`MissingLabelError` naming the first missing label: its example and, below sentence level, word.

    Parameters
    ----------
    labels : sequence
        One label per example (``"sentence"``), a sequence per example
        (``"word"``), or ``(i, j, label)`` triples per example (``"edge"``);
        ``"structural"`` labels (arrays) are not checked.
    level : {"sentence", "word", "edge", "structural"}
    words : sequence of sequence of str, optional
        The words of every example, quoted in the message.
    what : str
        How the labels are named in the message (e.g. ``"column 'label'"``).

    Examples
    --------
    >>> check_labels([["DET", "NOUN"], ["DET", None]], "word", words=[["a", "cat"], ["the", "dog"]])
    Traceback (most recent call last):
    ...
    probekit.labels.MissingLabelError: example 1, word 1 ('dog'): the label is missing (None)
    """
    if level == "structural":
        return
    for i, row in enumerate(labels):
        if level == "sentence":
            if is_missing(row):
                raise MissingLabelError(f"example {i}: the {what} is missing ({_what(row)})", i)
            continue
        if is_missing(row):
            raise MissingLabelError(f"example {i}: the {what}s are missing ({_what(row)})", i)
        for k, item in enumerate(row):
            j, lab = (k, item) if level == "word" else (item[0] if len(item) == 3 else k, item[-1])
            if is_missing(lab):
                word = f" ({words[i][j]!r})" if words is not None and 0 <= j < len(words[i]) else ""
                where = f"word {j}{word}" if level == "word" else f"pair {k} (word {j}{word} -> word {item[1]})"
                raise MissingLabelError(f"example {i}, {where}: the {what} is missing ({_what(lab)})", i, j)
