"""What the store, the probes and the suites need of a model: :class:`ModelLike`.

A :class:`~probekit.model.HookedModel` is one; so is anything that carries
one as ``.model`` beside a ``recipe`` (a saved or derived model variant), so
the layers below the variants take a variant without knowing the class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["ModelLike", "recipe_of"]


@runtime_checkable
class ModelLike(Protocol):
    """A model the store and the probes accept: a tokenizer, its sites, hooks at them and a weights fingerprint.

    An object that also has a ``recipe`` (a frozen dataclass with ``to_dict``)
    is a model variant: the recipe enters the fingerprint of what it makes.

    Examples
    --------
    >>> import probekit, transformers
    >>> from probekit.model import tiny_config
    >>> m = probekit.load_model(tiny_config())
    >>> isinstance(m, ModelLike), recipe_of(m) is None
    (True, True)
    """

    tokenizer: Any

    def sites(self, components: Iterable[str] | None = None) -> list: ...

    def hooks(self, sites: Sequence, sink, **kwargs) -> Any: ...

    def weights_hash(self, *, refresh: bool = False) -> str: ...


def recipe_of(model) -> Any:
    """The recipe of a model variant (any object with a ``recipe`` beside its ``.model``), ``None`` for a model.

    A bare model records no variant of its own: pass the variant itself to have its recipe in a fingerprint.
    """
    return getattr(model, "recipe", None) if hasattr(model, "model") else None
