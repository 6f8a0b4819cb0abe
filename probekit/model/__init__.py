"""The model core: sites, hooks, the hooked model, tokenization, pooling and loading.

Everything else in probekit builds on these names; nothing here imports another probekit
subpackage except :mod:`probekit.fingerprint` (and the settings checks of :mod:`probekit.validation`;
:meth:`ActivationCache.plot_attention` loads :mod:`probekit.plots` when a figure is asked for).

One line per file:

- ``_sites``: :class:`Site` (``L3.resid``, ``emb``...) and the one layer axis (:func:`site_layer`, :func:`site_block`).
- ``_adapters``: :class:`Adapter`, the table mapping each site to a module path and hook kind.
- ``_discovery``: :func:`adapter_for` finds that table by Hugging Face's modeling conventions (:data:`OVERRIDES`,
  :data:`REFERENCE_RESULTS`).
- ``_hooks``: the forward hooks themselves; :func:`capture` and :func:`intervene` remove them in ``finally``.
- ``_tokenize``: tokenization with word alignment and long-input windows (:class:`TokenizedBatch`).
- ``_pooling``: word and sentence pooling of token activations.
- ``_cache``: :class:`ActivationCache`, the in-memory result of one hooked forward pass (it knows its tokenizer;
  ``cache.plot_attention(site, example=0)`` draws a heatmap in one call).
- ``_hooked``: :class:`HookedModel`, a Hugging Face model run with hooks at named sites; other packages use its
  public ``blocks``, ``module_of(site)`` and ``check_interventions``, never its private members.
- ``_assets``: the offline model aliases (:data:`ALIASES`, :data:`DEFAULT_MODEL`).
- ``_loading``: :func:`load_hooked_model` / :func:`load_tokenizer` from an alias, a path, a hub id or a config
  (the public loader, which also knows saved variants, is ``probekit.load_model``).
- ``_protocol``: :class:`ModelLike`, what the store, probes and suites need of a model; :func:`recipe_of`.
- ``_tiny``: :func:`tiny_config`, the 2-layer random BERT of the examples.
- ``_onnx_convert``: ONNX initializers to a BERT folder (the ``minilm-l3`` alias ships as ONNX only).

Examples
--------
>>> from probekit.model import Site, site_layer
>>> Site.parse("L2.mlp.out"), site_layer("L2.mlp.out")
(Site('L2.mlp.out'), 3)
"""

from typing import TYPE_CHECKING

from probekit.model._adapters import Adapter, Hook
from probekit.model._assets import ALIASES, DEFAULT_MODEL, AliasUnavailableError, resolve_alias
from probekit.model._cache import ActivationCache
from probekit.model._chat import (
    CHAT_POOLING,
    ROLES,
    chat_template_of,
    conversation_text,
    is_conversation,
    validate_conversations,
)
from probekit.model._discovery import (
    OVERRIDES,
    REFERENCE_RESULTS,
    VERIFIED_TYPES,
    UnsupportedArchitectureError,
    adapter_for,
)
from probekit.model._hooked import HookedModel, as_hooked_model
from probekit.model._hooks import InterventionLike, as_interventions, capture, intervene, resolve_module
from probekit.model._pooling import (
    POOLING_VERSION,
    SENTENCE_POOLING,
    WORD_POOLING,
    PoolPlan,
    SentencePooling,
    WordPooling,
    check_word_spans,
    pool_sentence,
    pool_sentences_many,
    pool_words,
    pool_words_many,
)
from probekit.model._protocol import ModelLike, recipe_of
from probekit.model._sites import GLOBAL_COMPONENTS, LAYER_COMPONENTS, Site, site_block, site_layer
from probekit.model._tiny import tiny_config
from probekit.model._tokenize import (
    LONG_INPUTS,
    Example,
    LongInputPolicy,
    TokenizedBatch,
    Window,
    tokenize,
    validate_inputs,
)

if TYPE_CHECKING:  # for type checkers and the API reference; at run time __getattr__ below reads them
    from probekit.model._loading import HubUnreachableError, load_tokenizer
    from probekit.model._loading import load_model as load_hooked_model

#: names read from ``_loading`` on first use: it imports transformers (about 5 s), which reading a store, probing
#: and the data modules never need
_LOADING = {"HubUnreachableError": "HubUnreachableError", "load_tokenizer": "load_tokenizer",
            "load_hooked_model": "load_model"}


def __getattr__(name: str):
    if name in _LOADING:
        from probekit.model import _loading

        value = getattr(_loading, _LOADING[name])
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALIASES",
    "ActivationCache",
    "Adapter",
    "AliasUnavailableError",
    "CHAT_POOLING",
    "DEFAULT_MODEL",
    "Example",
    "GLOBAL_COMPONENTS",
    "Hook",
    "HookedModel",
    "HubUnreachableError",
    "InterventionLike",
    "LAYER_COMPONENTS",
    "LONG_INPUTS",
    "LongInputPolicy",
    "OVERRIDES",
    "REFERENCE_RESULTS",
    "ROLES",
    "SENTENCE_POOLING",
    "SentencePooling",
    "Site",
    "TokenizedBatch",
    "UnsupportedArchitectureError",
    "VERIFIED_TYPES",
    "WORD_POOLING",
    "Window",
    "WordPooling",
    "adapter_for",
    "as_hooked_model",
    "as_interventions",
    "capture",
    "chat_template_of",
    "conversation_text",
    "check_word_spans",
    "intervene",
    "ModelLike",
    "recipe_of",
    "load_hooked_model",
    "is_conversation",
    "load_tokenizer",
    "POOLING_VERSION",
    "PoolPlan",
    "pool_sentence",
    "pool_sentences_many",
    "pool_words",
    "pool_words_many",
    "resolve_alias",
    "resolve_module",
    "site_block",
    "site_layer",
    "tiny_config",
    "tokenize",
    "validate_conversations",
    "validate_inputs",
]
