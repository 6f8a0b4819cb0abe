"""The machine facts every benchmark writes beside its figures."""

from __future__ import annotations

import os
import platform
import resource
import sys
import threading

import numpy as np
import torch
import transformers

import probekit


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


def machine(**extra) -> dict:
    """Python, library versions, CPU model, cores, torch threads, CUDA and load average, plus ``extra``."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": np.__version__, "probekit": probekit.__version__, "cpu": cpu, "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "load_average": os.getloadavg(), "platform": platform.platform(), **extra}


class AnonPeak:
    """Peak anonymous resident memory (``RssAnon``, MB) of this process, sampled by a thread.

    Peak RSS (``VmHWM``) also counts every page of a memory-mapped file a reader has touched; the kernel
    drops those under memory pressure, so they say nothing about whether a computation fits in RAM.
    ``RssAnon`` is the memory the process itself allocated. Linux only (``None`` elsewhere).

    >>> with AnonPeak() as mem:
    ...     _ = bytearray(50 << 20)
    >>> mem.peak_mb is None or mem.peak_mb > 0
    True
    """

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak_mb: float | None = None
        self._stop = threading.Event()

    @staticmethod
    def current_mb() -> float | None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = self.current_mb()
            if now is not None:
                self.peak_mb = now if self.peak_mb is None else max(self.peak_mb, now)
            self._stop.wait(self.interval)

    def __enter__(self) -> AnonPeak:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        now = self.current_mb()
        if now is not None:
            self.peak_mb = now if self.peak_mb is None else max(self.peak_mb, now)
