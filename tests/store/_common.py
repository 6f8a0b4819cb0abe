"""Helpers shared by the store tests and their subprocesses."""

from __future__ import annotations

import json
import random
import resource
import sys
from pathlib import Path

import transformers as T

import probekit

WORDS = ("the a film movie plot actor scene story good bad great boring funny sad long short director "
         "camera music score ending beginning character dialogue script unbelievably remarkable dull "
         "charming clever predictable moving").split()


def tiny_model() -> probekit.HookedModel:
    cfg = T.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=37)
    return probekit.load_model(cfg, seed=0)


def make_texts(n: int, seed: int = 0, min_words: int = 3, max_words: int = 40) -> list[str]:
    """``n`` deterministic texts of varied length."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))) for _ in range(n)]


def store_files(path: str | Path) -> dict[str, bytes]:
    """Every file of a store as bytes, with the run statistics (and the manifest checksum over them) dropped
    from the manifest."""
    path = Path(path)
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(path))
            out[rel] = comparable(rel, p.read_bytes())
    return out


def comparable(rel: str, data: bytes) -> bytes:
    """A store file's bytes as two runs that wrote the same store agree on: the manifest without its run
    statistics (and the checksum over them), every other file as it is."""
    if rel != "manifest.json":
        return data
    m = json.loads(data)
    m.pop("stats", None)
    m.pop("manifest_sha256", None)
    return json.dumps(m, sort_keys=True).encode()


def peak_rss_kb() -> int:
    """Peak RSS of this process in kB.

    On Linux this reads ``VmHWM`` from ``/proc/self/status``: unlike
    ``getrusage(...).ru_maxrss``, it is not inherited from the parent across
    ``fork`` + ``exec``, so a small child of a large process reports its own
    peak.
    """
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak
