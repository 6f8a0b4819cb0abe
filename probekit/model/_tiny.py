"""A tiny random model's config, for examples and quick checks: :func:`tiny_config`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import transformers

__all__ = ["tiny_config"]


def tiny_config(**overrides) -> transformers.BertConfig:
    """A fresh 2-layer, 4-head BERT config of width 32 (random weights once loaded): runs in milliseconds.

    ``overrides`` replace any of its settings (e.g. ``num_hidden_layers=3``).

    Examples
    --------
    >>> import probekit
    >>> m = probekit.load_model(tiny_config(), seed=0)
    >>> m.n_layers, m.n_heads, m.d_model
    (2, 4, 32)
    """
    import transformers

    settings = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
    return transformers.BertConfig(**{**settings, **overrides})
