"""Where the time goes: a per-stage profile of extraction, probing and writing results.

Library code marks its phases with :func:`phase` (``tokenize``, ``forward``,
``pool``, ``write``, ``fit``, ``bootstrap``, ``tables``, ``figures``...);
nothing is recorded unless a :class:`Profile` is collecting, so the marks
cost one context-variable look-up otherwise. The command line's
``--profile``, the pipeline (every stage's profile goes to ``run.json`` and
the report) and benchmarks collect them.

Seconds are wall-clock seconds spent inside each phase. Phases run by a
background thread (the shard writer, when it overlaps the forward pass) are
recorded as they happen, so they may overlap other phases; a phase entered
inside another one of the same name is counted once.

Examples
--------
>>> from probekit.profiling import Profile, phase
>>> with Profile() as prof:
...     with phase("fit"):
...         pass
>>> sorted(prof.seconds)
['fit']
>>> with phase("fit"):  # no profile collecting: nothing recorded, nothing costs
...     pass
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator

__all__ = ["Profile", "phase", "current", "PHASES"]

#: The phases probekit marks, in the order a study runs them (others may be added by callers).
PHASES = ("load", "tokenize", "forward", "pool", "write", "read", "fit", "bootstrap", "tables", "figures")

_active: contextvars.ContextVar[Profile | None] = contextvars.ContextVar("probekit_profile", default=None)


class Profile:
    """Collects seconds per phase while it is active (``with Profile() as p``).

    Profiles nest: an inner one also adds its phases to the one around it
    when it closes, so a pipeline stage's profile is part of the run's.
    Safe to add to from several threads.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._token: contextvars.Token | None = None
        self._parent: Profile | None = None
        self._open: dict[tuple[int, str], int] = {}

    def add(self, name: str, seconds: float, calls: int = 1) -> None:
        """Add ``seconds`` (and ``calls``) to phase ``name``."""
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + calls

    def merge(self, other: Profile) -> None:
        """Add every phase of ``other``."""
        for name, s in other.seconds.items():
            self.add(name, s, other.calls.get(name, 0))

    def to_dict(self) -> dict[str, float]:
        """Seconds per phase, rounded to milliseconds, in :data:`PHASES` order then by name."""
        order = {p: i for i, p in enumerate(PHASES)}
        names = sorted(self.seconds, key=lambda n: (order.get(n, len(order)), n))
        return {n: round(self.seconds[n], 3) for n in names}

    def table(self) -> str:
        """A short plain-text table (phase, seconds, share of the profiled time, calls)."""
        d = self.to_dict()
        total = sum(d.values()) or 1.0
        width = max([len(n) for n in d] + [5])
        lines = [f"{'phase':<{width}}  {'seconds':>9}  {'share':>6}  {'calls':>7}"]
        lines += [f"{n:<{width}}  {s:9.2f}  {s / total:6.1%}  {self.calls.get(n, 0):7d}" for n, s in d.items()]
        return "\n".join(lines)

    def __enter__(self) -> Profile:
        self._parent = _active.get()
        self._token = _active.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _active.reset(self._token)
        if self._parent is not None:
            self._parent.merge(self)


def current() -> Profile | None:
    """The profile collecting in this context (``None`` when none is); hand it to worker threads."""
    return _active.get()


@contextlib.contextmanager
def phase(name: str, profile: Profile | None = None) -> Iterator[None]:
    """Count the time spent in the block as phase ``name`` of the active profile (or of ``profile``)."""
    prof = profile if profile is not None else _active.get()
    if prof is None:
        yield
        return
    key = (threading.get_ident(), name)
    with prof._lock:
        depth = prof._open.get(key, 0)
        prof._open[key] = depth + 1
    t = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t
        with prof._lock:
            prof._open[key] -= 1
        if depth == 0:
            prof.add(name, dt)
