"""The ``probekit`` command line.

:func:`main` is the command group (``probekit.cli._main``); the command
modules below add their commands to it. They import only ``click`` at the
top and the library inside each command, so ``probekit --help`` stays fast.
"""

from probekit.cli import (  # noqa: F401  (each adds its commands to main)
    _analysis,
    _compare,
    _data,
    _demo,
    _extract,
    _interventions,
    _models,
    _probe,
    _report,
    _run,
    _store,
    _tasks,
    _variants,
)
from probekit.cli._main import main

__all__ = ["main"]
