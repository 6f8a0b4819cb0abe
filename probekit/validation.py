"""Settings checked when they are given: constraints declared once per class or function.

Every public class declares the constraints of its settings in one place, a
``_parameter_constraints`` mapping (as scikit-learn's estimators do), and
checks the values it is given with :func:`validate_params` in its
constructor, or for a function at the top of the call, before any file is
written or any model runs. A function declares its mapping with the
:func:`declare` decorator, which only attaches it (the function is not
wrapped). Each entry is a list of alternatives; a value is accepted when one
of them accepts it (``None`` in the list accepts ``None``):

>>> from numbers import Integral, Real
>>> class Suite:
...     _parameter_constraints = {"n_boot": [Interval(Integral, 1, None, closed="left")],
...                               "alpha": [Interval(Real, 0, 1, closed="neither")]}
...     def __init__(self, n_boot=1000, alpha=0.05):
...         validate_params(Suite, {"n_boot": n_boot, "alpha": alpha})
>>> Suite(alpha=1.5)
Traceback (most recent call last):
...
probekit.validation.InvalidParameterError: the 'alpha' parameter of Suite must be a float in the range (0, 1); got ...

The experiment-config validator (:mod:`probekit.pipeline`) reads its ranges
from the same declarations (:func:`constraint_of`), so a range is written
once.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["InvalidParameterError", "Constraint", "Interval", "Options", "InstanceOf", "Boolean", "ListOf",
           "Device", "declare", "validate_params", "constraints_of", "constraint_of", "describe", "explain",
           "satisfies", "invalid_values", "keep_params"]


class InvalidParameterError(ValueError, TypeError):
    """A setting outside what its class or function accepts; the message names the setting and the allowed values.

    A subclass of both ``ValueError`` and ``TypeError``, so code that caught
    either keeps working.
    """


class Constraint:
    """One kind of accepted value: ``is_satisfied_by(value)`` and a description (``str``)."""

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def invalid_examples(self) -> list:
        """Values this constraint refuses (for the generated tests); the other alternatives may accept them."""
        return []

    def valid_example(self) -> Any:
        """A value this constraint accepts."""
        raise NotImplementedError


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _fmt(x: float) -> str:
    if x is None:
        return "inf"
    return f"{x:g}" if isinstance(x, float) else str(x)


class Interval(Constraint):
    """A number in a range.

    Parameters
    ----------
    kind : ``numbers.Integral`` or ``numbers.Real``
        ``Integral``: integers only (not ``bool``); ``Real``: any real number
        (ints too), never NaN.
    low, high : number or None
        Bounds (``None``: unbounded).
    closed : {"both", "left", "right", "neither"}
        Which bounds are included.

    Examples
    --------
    >>> from numbers import Real
    >>> str(Interval(Real, 0, 1, closed="left")), Interval(Real, 0, 1, closed="left").is_satisfied_by(1)
    ('a float in the range [0, 1)', False)
    """

    def __init__(self, kind: type, low: float | None, high: float | None, *, closed: str = "both"):
        if kind not in (numbers.Integral, numbers.Real):
            raise ValueError(f"Interval kind must be numbers.Integral or numbers.Real, not {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', not {closed!r}")
        if low is not None and high is not None and low > high:
            raise ValueError(f"empty interval: low {low} > high {high}")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    @property
    def low_open(self) -> bool:
        return self.closed in ("right", "neither")

    @property
    def high_open(self) -> bool:
        return self.closed in ("left", "neither")

    def is_satisfied_by(self, value: Any) -> bool:
        ok = _is_int(value) if self.kind is numbers.Integral else _is_real(value)
        if not ok:
            return False
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def __str__(self) -> str:
        what = "an int" if self.kind is numbers.Integral else "a float"
        if self.low is None and self.high is None:
            return what
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        low = "-inf" if self.low is None else _fmt(self.low)
        return f"{what} in the range {left}{low}, {_fmt(self.high)}{right}"

    def __repr__(self) -> str:
        kind = "Integral" if self.kind is numbers.Integral else "Real"
        return f"Interval({kind}, {self.low!r}, {self.high!r}, closed={self.closed!r})"

    def invalid_examples(self) -> list:
        out: list = []
        step = 1
        if self.low is not None:
            out.append(self.low if self.low_open else self.low - step)
        if self.high is not None:
            out.append(self.high if self.high_open else self.high + step)
        if self.kind is numbers.Integral:
            out.append(1.5)
        else:
            out.append(float("nan"))
        out.append("1")
        return out

    def valid_example(self) -> Any:
        if self.low is None and self.high is None:
            return 0
        if self.low is None:
            return self.high - 1
        if self.high is None:
            return self.low + 1
        if self.kind is numbers.Integral:
            v = self.low + 1 if self.low_open else self.low
            return v if self.is_satisfied_by(v) else self.high
        return (self.low + self.high) / 2


class Options(Constraint):
    """One of a fixed set of values (strings, usually).

    Examples
    --------
    >>> str(Options({"error", "window"}))
    "one of 'error', 'window'"
    """

    def __init__(self, options: Iterable[Any]):
        self.options = tuple(sorted(options, key=str))

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return any(value == o and type(value) is type(o) for o in self.options)
        except TypeError:  # unhashable or uncomparable
            return False

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def __repr__(self) -> str:
        return f"Options({set(self.options)!r})"

    def invalid_examples(self) -> list:
        return ["not-an-option", 3.5]

    def valid_example(self) -> Any:
        return self.options[0]


class InstanceOf(Constraint):
    """An instance of one of ``types`` (``bool`` is refused where ``int`` is asked for)."""

    def __init__(self, *types: type, name: str | None = None):
        self.types = types
        self.name = name

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, self.types)

    def __str__(self) -> str:
        if self.name:
            return self.name
        names = {str: "a string", int: "an int", float: "a float", dict: "a mapping", Mapping: "a mapping",
                 list: "a list", tuple: "a tuple"}
        return " or ".join(names.get(t, f"an instance of {t.__name__}") for t in self.types)

    def invalid_examples(self) -> list:
        return [object()]

    def valid_example(self) -> Any:
        return self.types[0]()


class Boolean(Constraint):
    """``True`` or ``False`` (``numpy.bool_`` too)."""

    def is_satisfied_by(self, value: Any) -> bool:
        np = sys.modules.get("numpy")
        return isinstance(value, bool) or (np is not None and isinstance(value, np.bool_))

    def __str__(self) -> str:
        return "a bool"

    def invalid_examples(self) -> list:
        return ["yes", 2]

    def valid_example(self) -> Any:
        return True


class ListOf(Constraint):
    """A list or tuple whose every item satisfies ``item``, with at least ``min_len`` items.

    Examples
    --------
    >>> from numbers import Integral
    >>> c = ListOf(Interval(Integral, 0, None, closed="left"), min_len=1)
    >>> str(c), c.is_satisfied_by([0, 2]), c.is_satisfied_by([]), c.is_satisfied_by([-1])
    ('a non-empty list of int in the range [0, inf)', True, False, False)
    """

    def __init__(self, item: Constraint, *, min_len: int = 0):
        self.item, self.min_len = item, min_len

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
            return False
        return len(value) >= self.min_len and all(self.item.is_satisfied_by(v) for v in value)

    def __str__(self) -> str:
        inner = str(self.item)
        for article in ("an ", "a "):
            if inner.startswith(article):
                inner = inner[len(article):]
        return f"{'a non-empty list' if self.min_len else 'a list'} of {inner}"

    def invalid_examples(self) -> list:
        bad_items = [v for v in self.item.invalid_examples() if not isinstance(v, (list, tuple))]
        out: list = [[bad_items[0]]] if bad_items else []
        if self.min_len:
            out.append([])
        out.append("not-a-list")
        return out

    def valid_example(self) -> Any:
        return [self.item.valid_example()] * max(self.min_len, 1)


class Device(Constraint):
    """A torch device that exists here: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` (``"auto"``), a ``torch.device``.

    ``"cuda"`` on a machine without CUDA (a CPU build of torch, or no GPU) is
    refused when it is given, with the reason, instead of failing in the
    middle of the work with torch's ``AssertionError``.
    """

    def __init__(self, *, auto: bool = False):
        self.auto = auto

    def why_not(self, value: Any) -> str | None:
        """Why ``value`` is not a usable device (``None`` when it is)."""
        if self.auto and value == "auto":
            return None
        if not isinstance(value, str) and type(value).__name__ != "device":
            return "not a device"
        import torch

        try:
            dev = torch.device(value)
        except (RuntimeError, TypeError, ValueError):
            return "not a device"
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                build = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA device is visible"
                return f"CUDA is not available here: {build}, torch.cuda.is_available() is False"
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                return f"there are only {torch.cuda.device_count()} CUDA devices"
        elif dev.type == "mps":
            mps = getattr(torch.backends, "mps", None)
            if mps is None or not mps.is_available():
                return "MPS is not available here"
        elif dev.type not in ("cpu", "meta"):
            return f"device type {dev.type!r} is not supported"
        return None

    def is_satisfied_by(self, value: Any) -> bool:
        return self.why_not(value) is None

    def __str__(self) -> str:
        return "an available torch device ('cpu', 'cuda', 'cuda:N', 'mps'" + (", 'auto')" if self.auto else ")")

    def invalid_examples(self) -> list:
        return ["gpu0", 7]

    def valid_example(self) -> Any:
        return "cpu"


# ---------------------------------------------------------------- declarations
def declare(constraints: Mapping[str, list]) -> Callable:
    """Attach ``constraints`` to a function as ``_parameter_constraints`` (the function is returned unchanged).

    The function checks its arguments itself, first thing, with
    ``validate_params(function, locals())``.

    Examples
    --------
    >>> from numbers import Integral
    >>> @declare({"n": [Interval(Integral, 1, None, closed="left")]})
    ... def repeat(text, n=2):
    ...     validate_params(repeat, locals())
    ...     return text * n
    >>> repeat("ab", n=0)
    Traceback (most recent call last):
    ...
    probekit.validation.InvalidParameterError: the 'n' parameter of repeat must be an int in the range [1, inf); got 0
    """
    def deco(fn):
        fn._parameter_constraints = dict(constraints)
        return fn

    return deco


def constraints_of(owner: Any) -> dict[str, list]:
    """The declared constraints of a class, an instance of it, or a function (``{}`` when none)."""
    return dict(getattr(owner, "_parameter_constraints", None) or {})


def constraint_of(owner: Any, name: str) -> list:
    """The alternatives declared for setting ``name`` of ``owner`` (a ``KeyError`` naming it when undeclared)."""
    found = constraints_of(owner)
    if name not in found:
        raise KeyError(f"{_name(owner)} declares no constraint for {name!r}")
    return found[name]


def satisfies(value: Any, alternatives: list) -> bool:
    """Whether ``value`` satisfies one of ``alternatives`` (``None`` in the list accepts ``None``)."""
    for c in alternatives:
        if c is None:
            if value is None:
                return True
        elif isinstance(c, Constraint):
            if c.is_satisfied_by(value):
                return True
        elif isinstance(c, type):
            if isinstance(value, c) and not (isinstance(value, bool) and c is not bool):
                return True
        elif c == "callable":
            if callable(value):
                return True
        else:  # pragma: no cover - a declaration bug
            raise TypeError(f"unknown constraint {c!r}")
    return False


def describe(alternatives: list) -> str:
    """The accepted values in words, e.g. ``"an int in the range [1, inf) or None"``.

    Examples
    --------
    >>> describe([ListOf(Options({"a", "b"}), min_len=1), Options({"a", "b"})])
    "one of 'a', 'b', or a non-empty list of them"
    """
    alternatives = list(alternatives)
    lists = [c for c in alternatives if isinstance(c, ListOf) and isinstance(c.item, Options)]
    for lst in lists:  # "one of X or a list of them" instead of naming the options twice
        same = [c for c in alternatives if isinstance(c, Options) and c.options == lst.item.options]
        if same:
            alternatives.remove(same[0])
            alternatives[alternatives.index(lst)] = _OneOrList(lst)
    parts = []
    for c in alternatives:
        if c is None:
            parts.append("None")
        elif isinstance(c, type):
            parts.append(str(InstanceOf(c)))
        elif c == "callable":
            parts.append("a callable")
        else:
            parts.append(str(c))
    if len(parts) <= 2:
        return " or ".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]


class _OneOrList:
    """How :func:`describe` names an option or a list of options."""

    def __init__(self, lst: ListOf):
        self.lst = lst

    def __str__(self) -> str:
        return f"{self.lst.item}, or {'a non-empty list' if self.lst.min_len else 'a list'} of them"


def _name(owner: Any) -> str:
    if isinstance(owner, type) or callable(owner) and hasattr(owner, "__qualname__"):
        return owner.__qualname__
    return type(owner).__qualname__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_params(owner: Any, values: Mapping[str, Any], *, caller: str | None = None) -> None:
    """Check every value of ``values`` that ``owner`` declares; :class:`InvalidParameterError` at the first bad one.

    Parameters
    ----------
    owner : class, instance or function
        Whatever carries ``_parameter_constraints``.
    values : mapping
        Setting name -> value (``locals()`` at the top of a constructor or
        function works: undeclared names such as ``self`` are skipped).
    caller : str, optional
        How the owner is named in the message (default: its qualified name).
    """
    declared = constraints_of(owner)
    for name, alternatives in declared.items():
        if name not in values:
            continue
        problem = explain(values[name], alternatives)
        if problem is not None:
            raise InvalidParameterError(f"the {name!r} parameter of {caller or _name(owner)} {problem}")


def explain(value: Any, alternatives: list) -> str | None:
    """``"must be ...; got ..."`` when no alternative accepts ``value`` (``None`` when one does).

    Examples
    --------
    >>> from numbers import Integral
    >>> explain(0, [Interval(Integral, 1, None, closed="left")])
    'must be an int in the range [1, inf); got 0'
    >>> explain("windw", [Options({"error", "window"})])
    "must be one of 'error', 'window'; got 'windw' (did you mean 'window'?)"
    """
    if satisfies(value, alternatives):
        return None
    return f"must be {describe(alternatives)}; got {_short(value)}{_hint(value, alternatives)}"


def _hint(value: Any, alternatives: list) -> str:
    """Why a device string is unusable, or the closest option to a mistyped one."""
    import difflib

    for c in alternatives:
        if isinstance(c, Device) and isinstance(value, str):
            reason = c.why_not(value)
            if reason and reason != "not a device":
                return f" ({reason})"
        options = c.options if isinstance(c, Options) else \
            c.item.options if isinstance(c, ListOf) and isinstance(c.item, Options) else None
        if options is None:
            continue
        items = [value] if isinstance(value, str) else \
            [v for v in value if isinstance(v, str)] if isinstance(value, (list, tuple)) else []
        for v in items:
            if v in options:
                continue
            close = difflib.get_close_matches(v, [str(o) for o in options], n=1)
            if close:
                return f" (did you mean {close[0]!r}?)"
    return ""


def invalid_values(alternatives: list) -> list:
    """Values none of ``alternatives`` accepts (what the generated tests pass)."""
    out = []
    for c in alternatives:
        if isinstance(c, Constraint):
            out.extend(c.invalid_examples())
    out.append(object())
    return [v for v in out if not satisfies(v, alternatives)]


def keep_params(estimator, values: Mapping[str, object]) -> None:
    """Store each ``__init__`` argument of ``estimator`` unchanged under its own name (``values``: ``locals()``).

    Call it first in ``__init__``, while ``locals()`` holds the arguments
    alone. scikit-learn's rule for estimators: ``get_params`` and ``clone``
    read the constructor's arguments back from attributes of the same names.

    Examples
    --------
    >>> class Smoother:
    ...     def __init__(self, width=3, *, mode="mean"):
    ...         keep_params(self, locals())
    >>> vars(Smoother(5))
    {'width': 5, 'mode': 'mean'}
    """
    for name, value in values.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)
