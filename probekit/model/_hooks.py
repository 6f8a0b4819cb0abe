"""Forward hooks that exist only inside a ``with`` block.

:func:`capture` reads tensors; :func:`intervene` replaces them (an
intervention's hook returns the module's output, or input, with the tensor
at the hook's index replaced). Every hook either adds is removed in
``finally``, also when the forward pass raises, so a model never keeps a
stray hook.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from probekit.model._adapters import Hook

__all__ = ["InterventionLike", "as_interventions", "capture", "intervene", "resolve_module"]


@runtime_checkable
class InterventionLike(Protocol):
    """What ``run_with_cache``, ``extract``, ``evaluate`` and ``Attributor`` accept as an intervention.

    The objects of :mod:`probekit.interventions` (``Ablate``, ``Patch``,
    ``Steer``, ``ProjectOut``, ``AblateHeads``, every fitted ``Eraser``)
    implement it; the model core needs nothing else of them.

    ``target()`` returns the site and, for a per-head intervention, the heads
    (then ``apply`` receives the per-head input of the block's attention
    output projection as ``[batch, tokens, heads, head_dim]``; otherwise the
    site's tensor, e.g. ``[batch, tokens, d]``). ``apply(x, examples)``
    returns the replacement; ``examples`` holds the example index of every
    batch row when known (``None`` otherwise). ``to_dict()`` describes it as
    JSON for fingerprints. An intervention may also define
    ``check_model(model)``, called before it acts on a model, to refuse one it
    does not fit (a fitted eraser refuses a model other than its own).
    """

    def target(self) -> tuple: ...

    def apply(self, x: torch.Tensor, examples: Sequence[int] | None) -> torch.Tensor: ...

    def to_dict(self) -> dict: ...


def as_interventions(items) -> list:
    """``None``, one intervention or a sequence of them -> a list, each checked against :class:`InterventionLike`.

    Raises
    ------
    TypeError
        An item is not an intervention.
    """
    if items is None:
        return []
    if isinstance(items, InterventionLike):
        items = [items]
    out = list(items)
    for i, iv in enumerate(out):
        if not isinstance(iv, InterventionLike):
            raise TypeError(f"interventions[{i}] is a {type(iv).__name__}, not an intervention (see "
                            "probekit.interventions: Ablate, Patch, Steer, ProjectOut, AblateHeads or a fitted eraser)")
    return out


def resolve_module(root: nn.Module, path: str) -> nn.Module:
    """``root.get_submodule(path)`` that raises ``LookupError(path)`` when absent."""
    try:
        return root.get_submodule(path) if path else root
    except AttributeError:
        raise LookupError(path) from None


def _select(value, index: int | None) -> torch.Tensor:
    if isinstance(value, torch.Tensor) or index is None:
        return value
    return value[index]


def _read_input(hook: Hook, args: tuple, kwargs: dict, module: nn.Module):
    """The input tensor a ``port="in"`` hook reads: positional ``args[index]``, else ``kwargs[keyword]``."""
    if hook.index is None:
        return args
    if len(args) > hook.index:
        return args[hook.index]
    if hook.keyword is not None and hook.keyword in kwargs:
        return kwargs[hook.keyword]
    raise RuntimeError(f"{type(module).__name__} got no input {hook.index} (nor {hook.keyword!r} by keyword)")


def _replace_input(hook: Hook, args: tuple, kwargs: dict, new: torch.Tensor) -> tuple[tuple, dict]:
    if hook.index is not None and len(args) <= hook.index and hook.keyword in kwargs:
        return args, {**kwargs, hook.keyword: new}
    return _replace(args, hook.index, new), kwargs


def _replace(value, index: int | None, new: torch.Tensor):
    """``value`` with the tensor :func:`_select` reads replaced by ``new``."""
    if isinstance(value, torch.Tensor) or index is None:
        return new
    if isinstance(value, tuple):
        return value[:index] + (new,) + value[index + 1:]
    if isinstance(value, list):
        return value[:index] + [new] + value[index + 1:]
    raise TypeError(f"cannot replace element {index} of a {type(value).__name__} module value")


@contextlib.contextmanager
def intervene(
    targets: Sequence[tuple[nn.Module, Hook, Callable[[torch.Tensor], torch.Tensor]]],
) -> Iterator[None]:
    """Replace what target modules produce (or receive) with ``fn(tensor)`` while the block runs.

    Parameters
    ----------
    targets : sequence of (module, hook, fn)
        Applied in order; several at one module chain (each sees the
        previous one's result). The hook's ``port`` says whether the module's
        output (forward hook) or its input (forward pre-hook) is changed, its
        ``index`` which tuple element.

    Notes
    -----
    Hooks registered here before a :func:`capture` on the same module run
    first, so the captured tensor is the intervened one.
    """
    handles = []
    try:
        for module, hook, fn in targets:
            if hook.port == "out":
                def post(_m, _inp, out, hook=hook, fn=fn):
                    return _replace(out, hook.index, fn(_select(out, hook.index)))
                handles.append(module.register_forward_hook(post))
            else:
                def pre(m, args, kwargs, hook=hook, fn=fn):
                    return _replace_input(hook, args, kwargs, fn(_read_input(hook, args, kwargs, m)))
                handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def capture(
    targets: Mapping[object, tuple[nn.Module, Hook]],
    sink: Callable[[object, torch.Tensor], None],
    *,
    detach: bool = True,
) -> Iterator[None]:
    """Call ``sink(key, tensor)`` each time a target module runs.

    Parameters
    ----------
    targets : mapping key -> (module, hook)
        What to read: the hook's ``port`` says output or input, its ``index``
        which tuple element.
    sink : callable
        Receives the key and the captured tensor.
    detach : bool
        Detach captured tensors from the autograd graph.
    """
    handles = []
    try:
        for key, (module, hook) in targets.items():
            if hook.port == "out":
                def fn(_m, _inp, out, key=key, hook=hook):
                    t = _select(out, hook.index)
                    if t is None:
                        raise RuntimeError(f"module for {key} returned no value at index {hook.index}")
                    sink(key, t.detach() if detach else t)
                handles.append(module.register_forward_hook(fn))
            else:
                def pre(m, args, kwargs, key=key, hook=hook):
                    t = _read_input(hook, args, kwargs, m)
                    sink(key, t.detach() if detach else t)
                handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()
