"""Peak resident memory of this process."""

from __future__ import annotations

import resource
import sys

__all__ = ["peak_rss_kb"]


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
