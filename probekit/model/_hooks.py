"""Forward hooks that exist only inside a ``with`` block.

Every hook added by :func:`capture` is removed in ``finally``, also when the
forward pass raises, so a model never keeps a stray hook.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn

from probekit.model._adapters import Hook

__all__ = ["capture", "resolve_module"]


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
                def pre(_m, inp, key=key, hook=hook):
                    t = _select(inp, hook.index)
                    sink(key, t.detach() if detach else t)
                handles.append(module.register_forward_pre_hook(pre))
        yield
    finally:
        for h in handles:
            h.remove()
