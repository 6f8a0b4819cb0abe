"""The staged runner: each stage is keyed by a hash of its config and its upstream fingerprints.

A stage's record (``RUN/.stages/<stage>.json``) is written only once the
stage has finished, with its key, outputs and fingerprints. A later run
whose key matches and whose outputs all exist reuses the stage; a changed
config key re-runs that stage and everything downstream of it; an
interrupted run resumes at the first stage without a record (and
extraction itself resumes at its last complete shard).

``run.json`` records ``finished`` once every analysis stage is done, before
the closing stages (the report) run, so that the report they write from
``run.json`` says when the run finished; a run that stopped early has no
``finished``.

What the report may show is decided by the keys: ``run.json`` holds
``stage_keys``, the key each stage has under the run's config (written
before the first stage starts, and completed as upstream stages finish;
``null`` while it depends on a stage not yet run), and a stage about to
re-run marks its record ``"state": "running"`` first. A table or figure is
current only when the record that lists it is complete and its key is the
config's; an interrupted, edited run therefore shows no table of the settings
it replaced (see :class:`probekit.report.RunFolder`).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probekit.fingerprint import hash_json
from probekit.pipeline._config import resolve
from probekit.pipeline._interventions import eraser_fingerprints
from probekit.pipeline._stages import STAGES, Stage
from probekit.profiling import Profile
from probekit.runfolder import CONFIG_FILE, RUN_JSON, stage_record_path
from probekit.version import __version__

__all__ = ["Stage", "Context", "run_experiment", "stage_key", "plan", "expected_keys"]

logger = logging.getLogger(__name__)

#: Bumped when a stage's code changes what it writes (part of every stage key).
STAGE_VERSION = 3  # 2: linear probes stream from stores (new solver); 3: task stores derived from the main store


@dataclass
class Context:
    """What stages share within one run: the config, the run folder and lazily loaded models."""

    cfg: dict
    run_dir: Path
    force: bool = False
    progress: bool = True
    records: dict[str, dict] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        p = self.run_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


def _h(obj: Any) -> str:
    return hash_json(obj)[:16]


def stage_key(stage: Stage, cfg: dict, records: dict[str, dict]) -> str:
    """Hash of the stage's config sections, the seed and the fingerprints of its upstream stages."""
    up = {n: records[n]["fingerprint"] for n in stage.needs if n in records}
    key = {"stage": stage.name, "version": STAGE_VERSION, "seed": cfg.get("seed"),
           "config": {k: _get(cfg, k) for k in stage.keys}, "upstream": up}
    if stage.version:
        key["stage_version"] = stage.version
    if "interventions" in stage.keys:  # the config names erasers by folder: their contents count too
        erasers = eraser_fingerprints(cfg)
        if erasers:
            key["erasers"] = erasers
    return _h(key)


def _get(cfg: dict, path: str) -> Any:
    """The value at a dotted config path (``None`` where a section is absent)."""
    node: Any = cfg
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def expected_keys(stages: list[Stage], cfg: dict, run_dir: Path, records: dict[str, dict], *,
                  force: bool = False) -> dict[str, str | None]:
    """The key of every planned stage under ``cfg``, as far as it can be known now.

    A stage's key hashes its upstream stages' fingerprints, so it is known once
    every upstream stage has a record: one finished in this run (``records``)
    or, unless ``force``, one on disk that this run will reuse (same key, outputs
    present). A stage downstream of one that will run again has ``None``.
    """
    known = dict(records)
    planned = {s.name for s in stages}
    out: dict[str, str | None] = {}
    for stage in stages:
        if any(n in planned and n not in known for n in stage.needs):
            out[stage.name] = None
            continue
        key = stage_key(stage, cfg, known)
        out[stage.name] = key
        if stage.name in known:
            out[stage.name] = known[stage.name]["key"]
            continue
        rec = None if force else _load_record(run_dir, stage.name)
        if _reusable(rec, key, run_dir):
            known[stage.name] = rec
    return out


def _reusable(rec: dict | None, key: str, run_dir: Path) -> bool:
    """Whether a stage record is a finished run of ``key`` whose outputs are all there."""
    return (rec is not None and rec.get("key") == key and rec.get("state", "done") == "done"
            and all((run_dir / p).exists() for p in rec.get("outputs", [])))


def _record_path(run_dir: Path, name: str) -> Path:
    return stage_record_path(run_dir, name)


def _load_record(run_dir: Path, name: str) -> dict | None:
    p = _record_path(run_dir, name)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return None


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for name, dist in (("torch", "torch"), ("transformers", "transformers"), ("captum", "captum"),
                       ("sklearn", "scikit-learn"), ("numpy", "numpy"), ("pandas", "pandas"),
                       ("spacy", "spacy"), ("matplotlib", "matplotlib"), ("seaborn", "seaborn"),
                       ("pyyaml", "PyYAML")):
        try:
            out[name] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def plan(cfg: dict) -> list[Stage]:
    """The stages ``cfg`` turns on, in order."""

    return [s for s in STAGES if s.enabled(cfg)]


def run_experiment(cfg: dict, out: str | os.PathLike, *, force: bool = False, progress: bool = True,
                   on_event: Callable[[str, str, dict], None] | None = None, base_dir: str | os.PathLike = ".",
                   ) -> dict:
    """Run (or resume, or reuse) every stage ``cfg`` turns on, writing the run folder ``out``.

    Parameters
    ----------
    cfg : dict
        An experiment config (validated and completed here with :func:`resolve`).
    out : path
        The run folder (see the run-folder contract in ``probekit.pipeline``).
    force : bool
        Re-run every stage even when its record matches.
    progress : bool
        Progress bars inside stages.
    on_event : callable, optional
        ``(event, stage, info)`` with event ``"start"``, ``"cached"`` or ``"done"``
        (the command line prints these).

    Returns
    -------
    dict
        The content of ``run.json``.
    """
    import yaml

    cfg = resolve(cfg, base_dir=base_dir)
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    ctx = Context(cfg, run_dir, force=force, progress=progress)
    emit = on_event or (lambda *a: None)
    info = {"name": cfg["name"], "config": cfg, "probekit_version": __version__, "versions": _versions(),
            "seeds": {"seed": cfg["seed"], "probe_seeds": (cfg.get("probes") or {}).get("seeds")},
            "fingerprints": {}, "timings": {}, "cpu_seconds": {}, "started": _now(), "finished": None, "cached": {},
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                        "processor": platform.processor()}, "stages": {}}
    try:
        import torch

        info["machine"]["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    stages = plan(cfg)
    # before any stage runs: run.json names the config's stage keys, so a report of an interrupted run can tell
    # the tables of this config from those an earlier config left
    info["stage_keys"] = expected_keys(stages, cfg, run_dir, ctx.records, force=force)
    _write_json(run_dir / RUN_JSON, info)
    for stage in stages:
        if stage.closing and info["finished"] is None:
            _finish(info)  # every analysis stage is done: the closing stages read a finished run.json
            _write_json(run_dir / RUN_JSON, info)
        t0, c0 = time.perf_counter(), time.process_time()
        key = stage_key(stage, cfg, ctx.records)
        rec = None if force else _load_record(run_dir, stage.name)
        if _reusable(rec, key, run_dir):
            ctx.records[stage.name] = rec
            info["cached"][stage.name] = True
            emit("cached", stage.name, rec)
        else:
            emit("start", stage.name, {})
            logger.info("stage %s (key %s)", stage.name, key)
            if not stage.closing:
                _mark_running(run_dir, stage.name, key)
            with Profile() as prof:
                result = stage.fn(ctx) or {}
            fps = result.get("fingerprints", {})
            rec = {"key": key, "state": "done", "fingerprint": _h({"key": key, "fingerprints": fps}),
                   "outputs": result.get("outputs", []),
                   "fingerprints": fps, "info": result.get("info", {}), "seconds": time.perf_counter() - t0,
                   "profile": prof.to_dict(), "finished": _now()}
            _write_json(_record_path(run_dir, stage.name), rec)
            ctx.records[stage.name] = rec
            info["cached"][stage.name] = False
            emit("done", stage.name, rec)
        info["timings"][stage.name] = round(time.perf_counter() - t0, 3)
        info["cpu_seconds"][stage.name] = round(time.process_time() - c0, 3)
        info["fingerprints"].update(rec.get("fingerprints", {}))
        info["stages"][stage.name] = {"key": rec["key"], "computed_seconds": round(rec.get("seconds", 0.0), 3),
                                      "profile": rec.get("profile", {}), "info": rec.get("info", {})}
        info["stage_keys"] = expected_keys(stages, cfg, run_dir, ctx.records, force=force)
        _write_json(run_dir / RUN_JSON, info)
    _finish(info, keep_time=info["finished"] is not None)
    _write_json(run_dir / RUN_JSON, info)
    return info


def _mark_running(run_dir: Path, name: str, key: str) -> None:
    """Before a stage runs again: its record says so, keeping the outputs it listed (stale until it finishes).

    ``since`` dates the start, so that a report can also tell the files the
    interrupted stage had already rewritten (newer than ``since``).
    """
    old = _load_record(run_dir, name) or {}
    _write_json(_record_path(run_dir, name), {"key": key, "state": "running", "since": time.time(),
                                              "outputs": old.get("outputs", []), "started": _now()})


def _finish(info: dict, *, keep_time: bool = False) -> None:
    """Record the finish time (unless already recorded) and the totals of the stage timings so far."""
    if not keep_time:
        info["finished"] = _now()
    info["total_seconds"] = round(sum(info["timings"].values()), 3)
    info["total_cpu_seconds"] = round(sum(info["cpu_seconds"].values()), 3)
