"""The report's last section: how the run was made (facts, stage timings, versions, store fingerprints, config).

It closes the report, collapsed (one click away), so that the page opens
with what was found.
"""

from __future__ import annotations

import json

import pandas as pd

from probekit.report._blocks import Block, Section, absent
from probekit.report._format import Table, pretty_seconds
from probekit.runfolder import RunFolder

__all__ = ["provenance_section", "NOT_FINISHED"]

#: Shown for a run that recorded when it started but not when it finished.
NOT_FINISHED = "not recorded (the run was still going, or stopped early)"


def _show(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}=[{_show(w)}]" if isinstance(w, (list, tuple, dict)) else f"{k}={w}"
                         for k, w in v.items() if w not in (None, ""))
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def stage_profile(run: dict) -> pd.DataFrame:
    """One row per stage of ``run.json`` with a profile: seconds per phase (tokenize, forward, pool, write, fit...).

    Examples
    --------
    >>> stage_profile({"stages": {"probes": {"profile": {"fit": 2.0, "bootstrap": 0.5}}}}).values.tolist()
    [['probes', 2.0, 0.5]]
    """
    from probekit.profiling import PHASES

    rows = [{"stage": name, **(st.get("profile") or {})} for name, st in (run.get("stages") or {}).items()
            if isinstance(st, dict) and st.get("profile")]
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    order = {p: i for i, p in enumerate(PHASES)}
    phases = sorted((c for c in df.columns if c != "stage"), key=lambda c: (order.get(c, len(order)), c))
    return df[["stage", *phases]]


def provenance_section(run: RunFolder) -> Section:
    """Run facts (name, model, data, started, finished, seeds, machine), stage timings, versions, fingerprints, config.

    Examples
    --------
    >>> from pathlib import Path
    >>> s = provenance_section(RunFolder(Path("r"), run={"name": "x", "started": "2024-01-01T00:00:00+00:00"}))
    >>> dict(s.blocks[0].data)["finished"]
    'not recorded (the run was still going, or stopped early)'
    """
    s = Section("provenance", "Provenance", collapsed=True)
    r = run.run
    cfg = r.get("config") if isinstance(r.get("config"), dict) else {}
    facts = []
    for label, value in (("run", r.get("name")), ("model", cfg.get("model")), ("data", cfg.get("data")),
                         ("probekit", r.get("probekit_version")), ("started", r.get("started")),
                         ("finished", r.get("finished")), ("seeds", r.get("seeds")),
                         ("machine", r.get("machine"))):
        if label == "finished" and not value and r.get("started"):
            value = NOT_FINISHED
        if value not in (None, "", {}, []):
            facts.append((label, _show(value)))
    timings = r.get("timings") or {}
    if timings:
        facts.append(("total stage time", pretty_seconds(sum(float(v) for v in timings.values()))))
    if facts:
        s.blocks.append(Block("facts", facts))
    if timings:
        cached = r.get("cached") or {}
        total = sum(float(v) for v in timings.values()) or 1.0
        bars = [(str(k), float(v), float(v) / total, bool(cached.get(k))) for k, v in timings.items()]
        s.blocks.append(Block("bars", bars, caption="Stage timings (in stage order; cached stages were reused)"))
    profile = stage_profile(r)
    if not profile.empty:
        s.blocks.append(Block("table", Table.build(profile, "Where each stage's time went (seconds per phase, as "
                                                            "computed; a writer thread's phases overlap the forward)",
                                                   max_rows=60)))
    versions = r.get("versions") or {}
    if versions:
        df = pd.DataFrame({"package": list(versions), "version": [str(v) for v in versions.values()]})
        s.blocks.append(Block("table", Table.build(df, "Versions", max_rows=60)))
    fps = r.get("fingerprints") or {}
    if fps:
        df = pd.DataFrame({"store": list(fps), "fingerprint": [str(v) for v in fps.values()]})
        s.blocks.append(Block("table", Table.build(df, "Activation store fingerprints", max_rows=60)))
    text = run.config_text
    if text is None and cfg:
        text = json.dumps(cfg, indent=2, default=str)
    if text:
        s.blocks.append(Block("code", text, caption="Experiment config (config.yaml)" if run.config_text
                              else "Experiment config (from run.json)"))
    parts = [p for p, ok in (("run facts", facts), ("stage timings", timings), ("package versions", versions),
                             (f"{len(fps)} store fingerprints", fps), ("the config", text)) if ok]
    s.summary = ", ".join(parts)
    if not s.blocks:
        return absent(s, "run.json and config.yaml")
    return s
