"""probekit: probing and interpretability for Hugging Face transformers.

Load a model, run it with hooks that capture activations at named sites,
cache them on disk, and run probe, attention and attribution suites over the
cache. Every suite returns :class:`Results`: tidy rows whose ``layer``
column means the same everywhere (:func:`site_layer`: ``emb`` 0, block ``i``
``i + 1``, ``final`` after the last block).

Examples
--------
>>> import probekit
>>> probekit.Site.parse("L3.attn.pattern")
Site('L3.attn.pattern')
>>> probekit.site_layer("L3.attn.pattern"), probekit.site_block("L3.attn.pattern")
(4, 3)
"""

from probekit._results import RESULT_COLUMNS, Results
from probekit.model import (
    ADAPTERS,
    ALIASES,
    DEFAULT_MODEL,
    ActivationCache,
    Adapter,
    AliasUnavailableError,
    Hook,
    HookedModel,
    HubUnreachableError,
    Site,
    TokenizedBatch,
    load_model,
    load_tokenizer,
    site_block,
    site_layer,
)
from probekit.store import ActivationStore, extract

__version__ = "0.1.0"

__all__ = [
    "ADAPTERS",
    "ALIASES",
    "ActivationCache",
    "ActivationStore",
    "Adapter",
    "AliasUnavailableError",
    "DEFAULT_MODEL",
    "Hook",
    "HookedModel",
    "HubUnreachableError",
    "RESULT_COLUMNS",
    "Results",
    "Site",
    "TokenizedBatch",
    "extract",
    "load_model",
    "load_tokenizer",
    "site_block",
    "site_layer",
    "__version__",
]
