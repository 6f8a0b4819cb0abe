"""What a forward pass depends on besides the weights: the module tree's settings, the config, and hooks.

Two models with the same weights compute different activations when a ``LayerNorm``'s ``eps``, an
activation function, a module's class or the attention implementation differ; all of these are
settings of the module tree and its config, and :func:`module_settings_hash` and
:func:`config_hash` cover them. A forward hook can change anything and cannot be hashed (its code
and the state it closes over are not data), so :func:`foreign_hooks` lists the hooks on a module
tree, and the global module hooks, for the caller to refuse.
"""

from __future__ import annotations

import re
from typing import Any

from probekit.fingerprint._json import hash_json, jsonable

__all__ = ["module_settings_hash", "config_hash", "foreign_hooks"]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")
#: config keys that record where a model came from, not how it computes
_PROVENANCE = frozenset({"_name_or_path", "name_or_path", "transformers_version", "architectures", "dtype",
                         "torch_dtype", "_commit_hash"})


def module_settings_hash(module) -> str:
    """SHA-256 of a module tree's structure and settings: every submodule's name, class and ``extra_repr()``.

    ``extra_repr`` is how a torch module describes its settings (``LayerNorm``: shape, ``eps``,
    affine; ``Dropout``: ``p``; ``Linear``: sizes). The training flags are left out: probekit runs
    every stored forward in ``eval()`` mode.

    Examples
    --------
    >>> import torch
    >>> ln = torch.nn.LayerNorm(4)
    >>> h = module_settings_hash(ln)
    >>> ln.eps = 1e-3
    >>> module_settings_hash(ln) != h
    True
    """
    entries = []
    for name, m in module.named_modules(remove_duplicate=False):
        cls = type(m)
        entries.append([name, f"{cls.__module__}.{cls.__qualname__}", _ADDRESS.sub("", m.extra_repr())])
    return hash_json(entries)


def config_hash(config: Any) -> str:
    """SHA-256 of a model config (a Hugging Face ``PretrainedConfig``'s ``to_dict()``), provenance left out.

    The path a model was loaded from, the transformers version that saved it, its ``architectures``
    and ``dtype`` (the parameters' dtype is fingerprinted on its own) do not change what it computes.
    """
    if config is None:
        return hash_json(None)
    to_dict = getattr(config, "to_dict", None)
    values = to_dict() if callable(to_dict) else dict(vars(config))
    values = {k: v for k, v in values.items() if k not in _PROVENANCE}
    try:
        return hash_json(jsonable(values))
    except TypeError:  # a value whose repr holds a memory address: drop the address
        return hash_json(_ADDRESS.sub("", repr(sorted(values.items(), key=lambda kv: kv[0]))))


def _callable_name(fn) -> str:
    inner = getattr(fn, "__func__", fn)
    name = getattr(inner, "__qualname__", None) or type(inner).__name__
    module = getattr(inner, "__module__", None)
    return f"{module}.{name}" if module else name


#: hooks libraries install that never change an output: (defining module, function name)
_INERT_HOOKS = frozenset({
    # transformers 5 installs these on a model's layers the first time it is asked for hidden states or
    # attentions; they only append to a list while such outputs are being collected, and return None
    ("transformers.utils.output_capturing", "output_capturing_hook"),
})


def _inert(fn) -> bool:
    inner = getattr(fn, "__func__", fn)
    return (getattr(inner, "__module__", None), getattr(inner, "__name__", None)) in _INERT_HOOKS


def foreign_hooks(module) -> list[str]:
    """Descriptions of every forward hook and forward pre-hook on ``module``'s tree, and the global ones.

    Global module hooks (``torch.nn.modules.module.register_module_forward_hook`` and
    ``register_module_forward_pre_hook``) run on every module, so they count too. The output-capturing
    hooks transformers installs itself (once a model has been asked for ``output_hidden_states`` or
    ``output_attentions``) only record outputs and are left out.

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Linear(2, 2)
    >>> foreign_hooks(lin)
    []
    >>> handle = lin.register_forward_hook(lambda m, i, o: o * 0)
    >>> foreign_hooks(lin)
    ['a forward hook (<lambda>) on the model itself (Linear)']
    >>> handle.remove()
    """
    from torch.nn.modules import module as torch_module

    found = []
    for kind, hooks, how in (("forward hook", torch_module._global_forward_hooks, "forward_hook"),
                             ("forward pre-hook", torch_module._global_forward_pre_hooks, "forward_pre_hook")):
        found.extend(f"a global {kind} ({_callable_name(h).rsplit('.', 1)[-1]}, registered with "
                     f"torch.nn.modules.module.register_module_{how}) on every module" for h in hooks.values()
                     if not _inert(h))
    for name, m in module.named_modules():
        where = f"{name} ({type(m).__name__})" if name else f"the model itself ({type(m).__name__})"
        for kind, hooks in (("forward hook", m._forward_hooks), ("forward pre-hook", m._forward_pre_hooks)):
            found.extend(f"a {kind} ({_callable_name(h).rsplit('.', 1)[-1]}) on {where}" for h in hooks.values()
                         if not _inert(h))
    return found
