"""The stage table: order, upstream stages, config sections read, and when each stage runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from probekit.pipeline._analysis import stage_attention, stage_extract, stage_probes, stage_task_stores
from probekit.pipeline._interventions import stage_amnesic, stage_erase
from probekit.pipeline._variants import stage_attribution, stage_compare, stage_finetune, stage_variants
from probekit.report import write_report

if TYPE_CHECKING:
    from probekit.pipeline._runner import Context

__all__ = ["STAGES", "Stage", "stage_report"]


@dataclass
class Stage:
    """One pipeline stage.

    Parameters
    ----------
    name : str
    needs : tuple of str
        Upstream stages whose fingerprints enter this stage's key (when they run).
    keys : tuple of str
        Config paths this stage reads (sections or dotted keys such as ``probes.tasks``).
    enabled : callable
        ``cfg -> bool``: whether the config asks for this stage.
    fn : callable
        ``Context -> dict`` with ``outputs`` (paths relative to the run folder),
        optional ``fingerprints`` (store name -> manifest fingerprint) and ``info``.
    closing : bool
        Runs after the run is recorded as finished in ``run.json`` (it reads
        the finished run, as the report does); closing stages come last.
    version : int
        Bumped when this stage's code changes what it writes (part of its key
        when not 0, so that the other stages keep theirs); ``STAGE_VERSION``
        is the version of every stage.
    """

    name: str
    needs: tuple[str, ...]
    keys: tuple[str, ...]
    enabled: Callable[[dict], bool]
    fn: Callable[[Context], dict]
    closing: bool = False
    version: int = 0


def stage_report(ctx) -> dict:
    """Write ``report.html`` and ``report.md`` from the run folder."""
    write_report(ctx.run_dir)
    return {"outputs": [p for p in ("report.html", "report.md") if (ctx.run_dir / p).exists()]}


def _on(section: str):
    return lambda cfg: cfg.get(section) is not None


_ANALYSIS = ("model", "data")

#: Every stage, in run order.
STAGES: list[Stage] = [
    Stage("extract", (), _ANALYSIS + ("extract", "interventions"), _on("extract"), stage_extract),
    Stage("task_stores", ("extract",), _ANALYSIS + ("extract", "interventions", "probes.tasks", "probes.random_init"),
          _on("probes"), stage_task_stores),
    # version 1: accuracy intervals bootstrapped from the patterns of hits (the same distribution, other draws)
    Stage("probes", ("task_stores",), _ANALYSIS + ("probes", "outputs.figures"), _on("probes"), stage_probes,
          version=1),
    Stage("attention", ("extract",), ("attention", "outputs.figures"), _on("attention"), stage_attention),
    Stage("finetune", (), ("model", "finetune"), _on("finetune"), stage_finetune),
    Stage("variants", ("finetune",), ("finetune", "variants", "outputs.figures"), _on("variants"), stage_variants),
    Stage("attribution", ("finetune",), ("finetune", "attribution", "outputs.figures"), _on("attribution"),
          stage_attribution),
    Stage("compare", ("finetune", "variants"), _ANALYSIS + ("compare", "variants", "outputs.figures"),
          lambda cfg: cfg.get("compare") is not None and cfg.get("variants") is not None, stage_compare, version=1),
    Stage("erase", (), _ANALYSIS + ("erase", "outputs.figures"), _on("erase"), stage_erase),
    Stage("amnesic", ("finetune",), _ANALYSIS + ("amnesic", "outputs.figures"), _on("amnesic"), stage_amnesic,
          version=1),
    Stage("report", ("extract", "probes", "attention", "finetune", "variants", "attribution", "compare", "erase",
                     "amnesic"),
          ("outputs", "name"), lambda cfg: bool(cfg["outputs"]["report"]), stage_report, closing=True),
]
