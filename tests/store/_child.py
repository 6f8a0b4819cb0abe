"""Run one extraction in its own process (for the kill, memory and distributed tests).

Usage: python _child.py OUT N [--kill MODE AT] [--sleep S] [--hold FILE] [--rss] [--sites ...]

``--hold FILE``: every forward pass waits until FILE exists (so a test decides when the extraction goes on).
``--one-line-errors``: report a failure as the command line does (``Error: <message>``, exit status 1).

Kill modes: ``mid-write`` (shard AT half written), ``before-sidecar`` (shard AT in place, no sidecar),
``before-manifest`` (the first manifest write half done; AT is ignored), ``before-remote-sidecar`` (a store at
a URL: shard AT's data objects uploaded, its sidecar not).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, os.path.dirname(__file__))

from _common import make_texts, peak_rss_kb, tiny_model  # noqa: E402

import probekit  # noqa: E402
from probekit.store import _manifest, _shards  # noqa: E402


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("n", type=int)
    p.add_argument("--shard-size", type=int, default=16)
    p.add_argument("--sites", default="emb,L0.resid,L1.resid")
    p.add_argument("--dtype", default="float16")
    p.add_argument("--kill", nargs=2, metavar=("MODE", "AT"), default=None)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--hold", default=None)
    p.add_argument("--one-line-errors", action="store_true")
    p.add_argument("--rss", action="store_true")
    p.add_argument("--pooling", action="store_true")
    a = p.parse_args()
    model = tiny_model()
    if a.kill:
        mode, at = a.kill[0], int(a.kill[1])
        if mode == "mid-write":  # killed while shard `at` is half written
            orig_write = _shards.ShardWriter.write

            def write(self, name, row, array):
                orig_write(self, name, row, array)
                if self.index == at and name.endswith(".tok") and row > 0:
                    _die()
            _shards.ShardWriter.write = write
        elif mode == "before-sidecar":  # shard `at` renamed into place, sidecar not yet written
            orig_json = _shards.write_json_atomic

            def write_json(path, obj):
                if str(path).endswith(f"{_shards.shard_name(at)}.json"):
                    _die()
                orig_json(path, obj)
            _shards.write_json_atomic = write_json
        elif mode == "before-manifest":  # the manifest's temporary file written, not yet renamed into place
            def write_manifest_json(path, obj):
                if str(path).endswith("manifest.json"):
                    tmp = str(path) + ".tmp"
                    with open(tmp, "w") as f:
                        f.write(json.dumps(obj)[: 50])
                    _die()
            _manifest.write_json_atomic = write_manifest_json
        elif mode == "before-remote-sidecar":
            from probekit.store import _remote

            orig_upload = _remote.Remote.upload

            def upload(self, src, rel):
                if rel == f"shards/{_shards.shard_name(at)}.json":
                    _die()
                orig_upload(self, src, rel)
            _remote.Remote.upload = upload
    if a.sleep:
        orig_fwd = model.forward_rows

        def slow(rows, **kw):
            import time
            time.sleep(a.sleep)
            return orig_fwd(rows, **kw)
        model.forward_rows = slow
    if a.hold:
        held_fwd = model.forward_rows

        def held(rows, **kw):
            import time
            deadline = time.monotonic() + 300
            while not os.path.exists(a.hold) and time.monotonic() < deadline:
                time.sleep(0.05)
            return held_fwd(rows, **kw)
        model.forward_rows = held
    kw = dict(word_pooling=["mean"], sentence_pooling=["mean"]) if a.pooling else {}
    try:
        store = probekit.extract(model, make_texts(a.n), a.sites.split(","), a.out, dtype=a.dtype,
                                 shard_size=a.shard_size, batch_tokens=512, progress=False, **kw)
    except Exception as exc:
        if not a.one_line_errors:
            raise
        from probekit.cli._errors import error_message

        print(f"Error: {error_message(exc)}", file=sys.stderr)
        sys.exit(1)
    if a.rss:
        print(json.dumps({"maxrss_kb": peak_rss_kb(),
                          "n_tokens": store.manifest["n_tokens"]}))


if __name__ == "__main__":
    main()
