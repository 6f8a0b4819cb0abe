"""Start-up cost: ``import probekit`` and ``probekit --help`` in a fresh interpreter, beside ``import torch``.

Each command runs in its own fresh Python process (``-X importtime`` is not
used: it slows every import); commands are interleaved round by round so a
busy shared machine disturbs them alike. Reports the median and the best
(least disturbed) wall time per command, and which heavy modules each start
loads. With ``--before PATH`` (a checkout of another probekit revision) the
same commands also run against that tree, side by side.

Writes ``benchmarks/results/startup.json`` and prints a table.

Usage: ``python benchmarks/startup.py [--rounds 7] [--before /path/to/other/checkout]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "startup.json"
HEAVY = ("torch", "transformers", "torch._dynamo", "torch.distributed", "pandas", "matplotlib", "sklearn")
COMMANDS = {
    "import torch": ["-c", "import torch"],
    "import probekit": ["-c", "import probekit"],
    "probekit --help": ["-m", "probekit.cli", "--help"],
}


def _run(tree: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, cwd=tree, check=True, capture_output=True)
    return time.perf_counter() - t0


def _loaded(tree: Path, args: list[str]) -> list[str]:
    code = ("import sys, runpy, json\n"
            f"sys.argv = {['probekit'] + args[2:]!r}\n"
            + ("import torch\n" if args[1] == "import torch" else
               "import probekit\n" if args[1] == "import probekit" else
               "try:\n    runpy.run_module('probekit.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n")
            + f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tree, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _revision(tree: Path) -> str:
    """The git commit a tree is at (``+changes`` when it has uncommitted edits), never its path on this machine."""
    def git(*args: str) -> str:
        r = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    head = git("rev-parse", "--short=7", "HEAD") or "not a git checkout"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--before", type=Path, default=None, help="another probekit checkout to time beside this one")
    p.add_argument("--shared", default=None, help="say so when other work shares the machine (recorded in the JSON)")
    a = p.parse_args()
    trees = {"this": ROOT} | ({"before": a.before.resolve()} if a.before else {})
    times: dict[str, dict[str, list[float]]] = {t: {c: [] for c in COMMANDS} for t in trees}
    for _ in range(a.rounds):
        for cmd, args in COMMANDS.items():
            for t, tree in trees.items():
                times[t][cmd].append(_run(tree, args))
    extra = {"shared": a.shared} if a.shared else {}
    out = {"machine": machine(**extra), "rounds": a.rounds,
           "trees": {t: _revision(p) for t, p in trees.items()}, "results": {}}
    print(f"{'tree':8} {'command':18} {'median s':>9} {'best s':>8}  heavy modules loaded")
    for t, tree in trees.items():
        out["results"][t] = {}
        for cmd, args in COMMANDS.items():
            v = times[t][cmd]
            heavy = _loaded(tree, args)
            out["results"][t][cmd] = {"median_s": statistics.median(v), "best_s": min(v), "all_s": v,
                                      "heavy_modules": heavy}
            print(f"{t:8} {cmd:18} {statistics.median(v):9.2f} {min(v):8.2f}  {', '.join(heavy) or '-'}")
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
