"""The machine facts every benchmark writes beside its figures."""

from __future__ import annotations

import os
import platform

import numpy as np
import torch
import transformers

import probekit


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
