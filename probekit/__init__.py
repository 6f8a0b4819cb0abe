"""probekit: probing and interpretability for Hugging Face transformers.

Load a model, run it with hooks that capture activations at named sites,
cache them on disk, and run probe, attention and attribution suites over the
cache.

Examples
--------
>>> import probekit
>>> probekit.Site.parse("L3.attn.pattern")
Site('L3.attn.pattern')
"""

from probekit._adapters import ADAPTERS, Adapter, Hook
from probekit._assets import ALIASES, DEFAULT_MODEL, AliasUnavailableError
from probekit._cache import ActivationCache
from probekit._hooked import HookedModel
from probekit._loading import HubUnreachableError, load_model, load_tokenizer
from probekit._sites import Site
from probekit._tokenize import TokenizedBatch
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
    "Site",
    "TokenizedBatch",
    "extract",
    "load_model",
    "load_tokenizer",
    "__version__",
]
