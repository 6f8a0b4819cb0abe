"""The demo's wall time, stage times, forward passes and disk footprint, now and (optionally) for another checkout.

``probekit demo`` runs the model over its sentences for the main store, and for the probing tasks' stores. This
benchmark runs the whole demo in a fresh process per checkout (``--before DIR`` runs the demo of the probekit
package found in DIR, e.g. a checkout of an earlier commit, with this interpreter) and records, from the run
folder: the wall time and peak RSS of the process, every stage's time from ``run.json``, each store's size on
disk, and how many examples each store ran through a model (``examples_computed`` in its manifest; a store
derived from other stores ran none). The two demos run back to back on the same machine, so their ratio is the
figure to read; each records the load average.

Usage::

    python benchmarks/demo_stores.py [--before /path/to/old/checkout] [--quick]

Writes ``benchmarks/results/demo_stores.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "demo_stores.json"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _revision(checkout: Path) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(checkout), "describe", "--always", "--dirty"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_demo(checkout: Path, quick: bool) -> dict:
    out = Path(tempfile.mkdtemp(prefix="demo-")) / "run"
    env = dict(os.environ, PYTHONPATH=str(checkout), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "probekit", "demo", "--out", str(out), "--no-progress"]
    cmd += ["--quick"] if quick else []
    load_before = os.getloadavg()
    log = out.parent / "demo.log"
    t = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"the demo of {checkout} failed:\n{log.read_text()[-3000:]}")
    run = json.loads((out / "run.json").read_text())
    stores = {}
    for manifest in sorted((out / "stores").rglob("manifest.json")):
        folder = manifest.parent
        m = json.loads(manifest.read_text())
        stats = m.get("stats", {})
        stores[str(folder.relative_to(out / "stores"))] = {
            "bytes": _size(folder), "examples": m["n_examples"],
            "examples_run_through_a_model": stats.get("examples_computed"), "derived": bool(stats.get("derived")),
            "token_rows": m["settings"]["tokens"]}
    task_stores = {k: v for k, v in stores.items() if not k.startswith(("main", "compare-"))}
    return {"revision": _revision(checkout), "wall_s": wall,
            "peak_rss_gb": usage.ru_maxrss / 2**20, "stage_s": run["timings"],
            "stores_bytes": sum(v["bytes"] for v in stores.values()),
            "task_stores_bytes": sum(v["bytes"] for v in task_stores.values()),
            "run_folder_bytes": _size(out),
            "examples_run_base_model_tasks": sum(v["examples_run_through_a_model"] or 0 for k, v in task_stores.items()
                                                 if not k.startswith("random")),
            "examples_run_random_copy": sum(v["examples_run_through_a_model"] or 0 for k, v in task_stores.items()
                                            if k.startswith("random")),
            "stores": stores, "load_average_before": load_before, "load_average_after": os.getloadavg()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, default=None, help="another checkout to run first (e.g. an older commit)")
    p.add_argument("--quick", action="store_true", help="probekit demo --quick")
    a = p.parse_args()
    runs = {}
    if a.before is not None:
        runs["before"] = run_demo(a.before.resolve(), a.quick)
    runs["now"] = run_demo(ROOT, a.quick)
    payload = {"quick": a.quick, "runs": runs, "machine": machine()}
    if "before" in runs:
        b, n = runs["before"], runs["now"]
        payload["ratios"] = {"wall": n["wall_s"] / b["wall_s"],
                             "task_stores_stage": n["stage_s"]["task_stores"] / b["stage_s"]["task_stores"],
                             "stores_bytes": n["stores_bytes"] / b["stores_bytes"],
                             "task_stores_bytes": n["task_stores_bytes"] / b["task_stores_bytes"]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=1))
    print(f"{'run':8} {'revision':9} {'wall s':>7} {'task_stores s':>14} {'stores GB':>10} {'task stores GB':>15} "
          f"{'examples run (model / random copy)':>36}")
    for k, r in runs.items():
        print(f"{k:8} {r['revision'] or '-':9} {r['wall_s']:7.1f} {r['stage_s']['task_stores']:14.1f} "
              f"{r['stores_bytes'] / 1e9:10.2f} {r['task_stores_bytes'] / 1e9:15.2f} "
              f"{r['examples_run_base_model_tasks']:>18} / {r['examples_run_random_copy']}")


if __name__ == "__main__":
    main()
