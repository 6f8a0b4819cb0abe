"""The probekit version (a leaf module: every package may read it without importing the rest)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
