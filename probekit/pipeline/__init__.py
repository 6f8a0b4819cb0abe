"""Staged, cached experiment pipeline behind ``probekit demo`` and ``probekit run EXPERIMENT.yaml``.

Stages, in order (each runs only when its config section is present):
``extract`` (the experiment's sentences into ``stores/main``), ``task_stores``
(one store of pooled rows per task example set under ``stores/tasks/``, derived
from the main store's token rows, so the model runs only over task sentences
the main store lacks; and the random-weights copy's under ``stores/random/``,
each sentence run once), ``probes``
(:class:`~probekit.probes.ProbeSuite`), ``attention``
(:class:`~probekit.attention.AttentionSuite`), ``finetune`` (Rotten Tomatoes
sentiment), ``variants`` (magnitude pruning, head pruning, int8, distillation),
``attribution`` (on the fine-tuned classifier), ``compare`` (each variant
against the fine-tuned original), ``erase`` (a concept eraser),
``amnesic`` (amnesic probing) and ``report``. A config's ``interventions:``
(``ablate:SITE``, ``heads:BLOCK:H1,H2``, ``erase:DIR``, or descriptions)
act on the model in ``extract`` and ``task_stores``.

Each stage's key hashes its config sections and its upstream fingerprints; a
second run reuses every stage whose key and outputs are unchanged.

The run folder ``RUN/`` holds ``run.json`` (config, versions, seeds,
fingerprints, timings in stage order, start/finish, which stages were cached,
machine, and ``stage_keys``: each stage's key under the config, so that a
report leaves out tables an earlier config left), ``.stages/<stage>.json``
(each stage's key, state and outputs), ``config.yaml``, ``stores/``, ``models/``, ``tables/*.csv``,
``figures/<section>__<name>.png``, ``attributions/*.html`` and the report.
The layout is owned by :mod:`probekit.runfolder` (its writer
:class:`~probekit.runfolder.Outputs` and reader
:class:`~probekit.runfolder.RunFolder`). Each analysis turns its results into
tables and figures in one function, called by its stage and by its command
(``probekit probe``, ``attention``, ``compare``, ``attribute``, ``amnesic``):
:func:`probe_outputs`, :func:`attention_outputs`, :func:`compare_outputs`,
:func:`attribution_outputs`, :func:`amnesic_outputs`.

Modules: ``_config`` (schema, defaults, validation), ``_runner`` (stage keys,
records, reuse), ``_stages`` (the stage table), ``_analysis`` (extract, task
stores, probes, attention), ``_variants`` (fine-tuning, variants,
attribution, compare), ``_common`` (model spec, sentences), ``_tables``,
``_compare_tables`` and ``_model_tables`` (the per-analysis outputs).

Notes
-----
A full experiment (MiniLM on gold UD English EWT: minutes on a CPU, and the
treebank from ``probekit data fetch ud_ewt`` or ``PROBEKIT_UD_PATH``)::

    from probekit.pipeline import load_config, run_experiment
    run_experiment(load_config("examples/ud_ewt_probes.yaml"), "runs/ud")

Examples
--------
>>> from probekit.pipeline import DEMO_CONFIG, plan, resolve
>>> [s.name for s in plan(resolve(DEMO_CONFIG))]                          # doctest: +NORMALIZE_WHITESPACE
['extract', 'task_stores', 'probes', 'attention', 'finetune', 'variants', 'attribution', 'compare', 'report']

A tiny run (a 2-layer BERT built from its config, probed for sentiment on 60
Rotten Tomatoes sentences), cached stage by stage:

>>> import pathlib, tempfile
>>> from probekit.pipeline import TINY_CONFIG as tiny, run_experiment
>>> run = tempfile.mkdtemp() + "/tiny"
>>> _ = run_experiment(tiny, run, progress=False)
>>> sorted(p.name for p in pathlib.Path(run, "tables").iterdir())[:2]
['expected_layer.csv', 'probe_best.csv']
>>> run_experiment(tiny, run, progress=False)["cached"]
{'task_stores': True, 'probes': True}
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and the API reference; at run time __getattr__ below imports them
    from probekit.pipeline._common import TINY_CONFIG
    from probekit.pipeline._compare_tables import compare_outputs, probe_delta_table
    from probekit.pipeline._config import (
        DEMO_CONFIG,
        FULL_OVERRIDES,
        QUICK_OVERRIDES,
        SCHEMA,
        ConfigError,
        load_config,
        merge,
        resolve,
        validate,
    )
    from probekit.pipeline._interventions import amnesic_analysis, config_interventions, fit_eraser
    from probekit.pipeline._model_tables import amnesic_outputs, attribution_outputs
    from probekit.pipeline._runner import Context, plan, run_experiment, stage_key
    from probekit.pipeline._stages import STAGES, Stage
    from probekit.pipeline._tables import attention_outputs, best_layers, probe_outputs

#: where each name lives: a name is imported on first use, so that ``probe_outputs`` and the config helpers do not
#: import the stages that load models (transformers: about 5 s)
_WHERE = {
    "TINY_CONFIG": "_common",
    "compare_outputs": "_compare_tables",
    "probe_delta_table": "_compare_tables",
    "ConfigError": "_config",
    "DEMO_CONFIG": "_config",
    "FULL_OVERRIDES": "_config",
    "QUICK_OVERRIDES": "_config",
    "SCHEMA": "_config",
    "load_config": "_config",
    "merge": "_config",
    "resolve": "_config",
    "validate": "_config",
    "amnesic_analysis": "_interventions",
    "config_interventions": "_interventions",
    "fit_eraser": "_interventions",
    "amnesic_outputs": "_model_tables",
    "attribution_outputs": "_model_tables",
    "Context": "_runner",
    "plan": "_runner",
    "run_experiment": "_runner",
    "stage_key": "_runner",
    "STAGES": "_stages",
    "Stage": "_stages",
    "attention_outputs": "_tables",
    "best_layers": "_tables",
    "probe_outputs": "_tables",
}


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"probekit.pipeline.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEMO_CONFIG",
    "FULL_OVERRIDES",
    "QUICK_OVERRIDES",
    "SCHEMA",
    "STAGES",
    "TINY_CONFIG",
    "ConfigError",
    "Context",
    "Stage",
    "amnesic_analysis",
    "amnesic_outputs",
    "attention_outputs",
    "attribution_outputs",
    "best_layers",
    "compare_outputs",
    "config_interventions",
    "fit_eraser",
    "load_config",
    "merge",
    "plan",
    "probe_delta_table",
    "probe_outputs",
    "resolve",
    "run_experiment",
    "stage_key",
    "validate",
]
