"""probekit: probing and interpretability for Hugging Face transformers.

Load a model, run it with hooks that capture activations at named sites,
cache them on disk, and run probe, attention and attribution suites over the
cache. Every suite returns :class:`Results`: tidy rows whose ``layer``
column means the same everywhere (:func:`site_layer`: ``emb`` 0, block ``i``
``i + 1``, ``final`` after the last block).

``import probekit`` is cheap: the names below and the subpackages
(``probekit.model``, ``probekit.store``, ``probekit.probes``, ...) are
imported on first use (PEP 562), so the command line and scripts that need
one part do not pay for ``transformers`` and the rest.

Examples
--------
>>> import probekit
>>> probekit.Site.parse("L3.attn.pattern")
Site('L3.attn.pattern')
>>> probekit.site_layer("L3.attn.pattern"), probekit.site_block("L3.attn.pattern")
(4, 3)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from probekit.version import __version__

if TYPE_CHECKING:
    from probekit.model import (
        ALIASES,
        DEFAULT_MODEL,
        VERIFIED_TYPES,
        ActivationCache,
        Adapter,
        AliasUnavailableError,
        Hook,
        HookedModel,
        HubUnreachableError,
        Site,
        TokenizedBatch,
        UnsupportedArchitectureError,
        load_tokenizer,
        site_block,
        site_layer,
    )
    from probekit.results import RESULT_COLUMNS, Results
    from probekit.store import ActivationStore, extract
    from probekit.variants import ModelVariant, load_model

#: Where each public name lives (imported on first access).
_NAMES: dict[str, str] = {
    **dict.fromkeys(["ALIASES", "DEFAULT_MODEL", "ActivationCache", "Adapter", "AliasUnavailableError",
                     "Hook", "HookedModel", "HubUnreachableError", "Site", "TokenizedBatch",
                     "UnsupportedArchitectureError", "VERIFIED_TYPES", "load_tokenizer", "site_block",
                     "site_layer"], "probekit.model"),
    **dict.fromkeys(["RESULT_COLUMNS", "Results"], "probekit.results"),
    **dict.fromkeys(["ActivationStore", "extract"], "probekit.store"),
    **dict.fromkeys(["ModelVariant", "load_model"], "probekit.variants"),
}

#: The subpackages and public modules, also imported on first access (``probekit.store``).
_MODULES = ("attention", "attribution", "cli", "compare", "data", "fingerprint", "interventions", "labels", "model",
            "pipeline", "plots", "probes", "profiling", "report", "results", "store", "validation", "variants",
            "version")

__all__ = [
    "ALIASES",
    "ActivationCache",
    "ActivationStore",
    "Adapter",
    "AliasUnavailableError",
    "DEFAULT_MODEL",
    "Hook",
    "HookedModel",
    "HubUnreachableError",
    "ModelVariant",
    "RESULT_COLUMNS",
    "Results",
    "Site",
    "TokenizedBatch",
    "UnsupportedArchitectureError",
    "VERIFIED_TYPES",
    "extract",
    "load_model",
    "load_tokenizer",
    "site_block",
    "site_layer",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(f"probekit.{name}")
    else:
        raise AttributeError(f"module 'probekit' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_MODULES))
