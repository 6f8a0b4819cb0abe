"""The ``probekit`` command line.

:func:`main` is the command group (``probekit.cli._main``); the command
modules below add their commands to it. They import only ``click`` at the
top and the library inside each command, so ``probekit --help`` stays fast.

One line per file:

- ``_analysis``: ``probekit attention`` and ``probekit attribute``: analysis reports written to a folder.
- ``_compare``: ``probekit compare``: compare two stores (a model and a variant) layer by layer.
- ``_data``: ``probekit data``: fetch pinned gold data (UD English EWT) into the cache, verified.
- ``_demo``: ``probekit demo``: the main job on the bundled default model and data, as a staged, cached pipeline.
- ``_errors``: How the command line reports failures: one ``Error: ...`` line and exit status 1, never a traceback.
- ``_extract``: ``probekit extract``: write an activation store to disk.
- ``_interventions``: ``probekit erase`` (fit and save a concept eraser) and ``probekit amnesic`` (amnesic probing
  into a run folder).
- ``_main``: The ``probekit`` command group; each ``probekit.cli._<topic>`` module adds its commands to it.
- ``_models``: ``probekit sites``: inspect a model's site vocabulary.
- ``_probe``: ``probekit probe``: run the probe suite over stores extracted for tasks.
- ``_report``: ``probekit report``: the analysis report of a run folder (HTML, Markdown, tables, screenshot).
- ``_run``: ``probekit run EXPERIMENT.yaml``: run a staged, cached experiment from one config file.
- ``_store``: ``probekit store``: move stores between disks and object storage, list and verify them.
- ``_tasks``: ``probekit tasks``: list the probing tasks and show their class statistics on real data.
- ``_variants``: ``probekit finetune | prune | quantize | distill | export``: make model variants from the shell.
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
