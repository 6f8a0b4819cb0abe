"""Background writing of captured activations into a shard (overlapped with compute)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch

from probekit.model import CHAT_POOLING, PoolPlan, Site, pool_sentences_many, pool_words_many
from probekit.profiling import current, phase
from probekit.store._batching import stitch_example
from probekit.store._errors import Float16OverflowError
from probekit.store._shards import ShardWriter

__all__ = ["ShardContext", "Writer", "commit", "write_ids", "CHAT_STREAMS"]


def write_ids(sw: ShardWriter, exs, profile=None) -> None:
    with phase("write", profile):
        _write_ids(sw, exs)


def commit(sw: ShardWriter, profile=None) -> None:
    """Hash the shard's files, rename it into place and write its sidecar."""
    with phase("write", profile):
        sw.commit()


def _write_ids(sw: ShardWriter, exs) -> None:
    ids = np.fromiter((t for ex in exs for t in ex.input_ids), dtype=np.int32)
    wids = np.fromiter((-1 if w is None else w for ex in exs for w in ex.word_ids), dtype=np.int32)
    sw.write("input_ids", 0, ids)
    sw.write("word_ids", 0, wids)
    if exs and exs[0].is_chat:  # every token's turn, role and mark: conversations only
        for name, attr, dtype in CHAT_STREAMS:
            sw.write(name, 0, np.fromiter((v for ex in exs for v in getattr(ex, attr)), dtype=dtype))


_F16_MAX = float(np.finfo(np.float16).max)


def to_store_dtype(x, dtype, name: str, shard: int):
    """``x`` (a tensor or an array) cast to the store's ``dtype``; values beyond float16's range are refused
    rather than stored as inf (some models' massive activations are). Checked on ``x`` before the cast with one
    min/max pass (``torch.isfinite`` on float16 rows costs ten times as much on a CPU); NaN stays NaN."""
    tensor = isinstance(x, torch.Tensor)
    half = dtype == torch.float16 if tensor else np.dtype(dtype) == np.float16
    if half and (x.numel() if tensor else x.size):
        lo, hi = torch.aminmax(x) if tensor else (x.min(), x.max())
        if float(hi) > _F16_MAX or float(lo) < -_F16_MAX:
            raise Float16OverflowError(
                f"stream {name!r} has values beyond float16's range (largest magnitude 65,504; here "
                f"{max(float(hi), -float(lo)):,.0f}) (shard {shard}; the complete shards before it are kept); "
                "store it with dtype='float32'")
    return x.to(dtype) if tensor else x.astype(dtype, copy=False)


#: token streams a store of conversations adds: (name, Example attribute, dtype)
CHAT_STREAMS = (("turn_ids", "turns", np.int32), ("role_ids", "roles", np.int8), ("marked", "marked", np.int8))


class ShardContext:
    """Turns captured batch tensors into rows of the shard's streams."""

    def __init__(self, sw: ShardWriter, exs, n_tok, n_words, dims, streams, torch_dtype, windows, by_example,
                 inline: bool = False):
        self.windows = windows
        #: pooling runs in the forward's own thread between batches: on one intra-op thread (see _pool_threads)
        self.inline = inline
        self.sw, self.exs, self.dims, self.streams, self.dtype = sw, exs, dims, streams, torch_dtype
        self.tok_off = np.concatenate([[0], np.cumsum(n_tok)]).tolist()
        self.word_off = np.concatenate([[0], np.cumsum(n_words)]).tolist()
        self.att_off = {s: np.concatenate([[0], np.cumsum([dims[s] * n * n for n in n_tok])]).tolist()
                        for s in dims if s.is_attention}
        self.by_example = by_example
        self.pending: dict[int, dict[Site, torch.Tensor]] = {}
        levels = {level for names in streams.values() for level, _how in names.values()}
        self.word_pooled = "word" in levels
        self.pooled = self.word_pooled or "sentence" in levels
        #: the selections chat poolings read (a role or "mark")
        self.selections = sorted({how.split(".", 1)[1] for names in streams.values()
                                  for _level, how in names.values() if how in CHAT_POOLING})
        self.profile = current()  # the writer thread has no context of its own

    def write_batch(self, rows: list[int], wins, captured: dict[Site, torch.Tensor]) -> None:
        with phase("write", self.profile):
            cpu = {s: t.to("cpu") for s, t in captured.items()}
        if self.by_example is None:
            items = [(w.example, b, len(w.row_ids)) for b, w in enumerate(wins)]
            # the padded width, read off [batch, tokens, ...] or an attention pattern's [batch, heads, tokens, tokens]
            site, first = next(iter(cpu.items()))
            plan = self._plan(items, first.shape[-1] if site.is_attention else first.shape[1])
            for s, t in cpu.items():
                self._write_site(s, t, items, plan)
            return
        for b, (r, w) in enumerate(zip(rows, wins)):
            self.pending[r] = {s: t[b, : len(w.row_ids)] for s, t in cpu.items()}
            idx = self.by_example[w.example]
            if all(i in self.pending for i in idx):
                parts = [self.pending.pop(i) for i in idx]
                ex = self.exs[w.example]
                wlist = [self._window(i) for i in idx]
                items = [(w.example, 0, ex.n_tokens)]
                plan = self._plan(items, ex.n_tokens)
                for s in cpu:
                    x = stitch_example(ex, wlist, [p[s] for p in parts])
                    self._write_site(s, x[None], items, plan)

    def _plan(self, items: list[tuple[int, int, int]], width: int) -> PoolPlan | None:
        """Where each item's tokens and words sit in the batch tensor flattened to ``[batch * width, d]``."""
        if not self.pooled:
            return None
        with phase("pool", self.profile):
            spans = [self.exs[e].word_spans() for e, _b, _n in items] if self.word_pooled else None
            picks = {name: [self.exs[e].selection(name) for e, _b, _n in items] for name in self.selections}
            return PoolPlan.build([b * width for _e, b, _n in items], [n for _e, _b, n in items], spans, picks)

    def _window(self, i: int):
        return self.windows[i]

    def _write_site(self, s: Site, t: torch.Tensor, items: list[tuple[int, int, int]], plan: PoolPlan | None) -> None:
        prof = self.profile
        if s.is_attention:
            with phase("write", prof):
                q = self._cast(t, str(s)).numpy()
                for e, b, n in items:
                    self.sw.write(str(s), self.att_off[s][e], q[b, :, :n, :n])
            return
        for name, (level, how) in self.streams[s].items():
            if level == "token":
                with phase("write", prof):
                    q = self._cast(t, name).numpy()
                    for e, b, n in items:
                        self.sw.write(name, self.tok_off[e], q[b, :n])
                continue
            with phase("pool", prof), _pool_threads(self.inline and t.device.type == "cpu"):
                flat = t.reshape(-1, t.shape[-1])
                pooled = self._cast(pool_words_many(flat, plan, how, dtype=torch.float32) if level == "word" else
                                    pool_sentences_many(flat, plan, how, dtype=torch.float32), name).numpy()
            with phase("write", prof):
                if level == "word":
                    at = 0
                    for (e, _b, _n), k in zip(items, plan.n_words):
                        self.sw.write(name, self.word_off[e], pooled[at: at + k])
                        at += k
                else:
                    for i, (e, _b, _n) in enumerate(items):
                        self.sw.write(name, e, pooled[i: i + 1])

    def _cast(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return to_store_dtype(x, self.dtype, name, self.sw.index)


@contextlib.contextmanager
def _pool_threads(one: bool) -> Iterator[None]:
    """Torch on one intra-op thread inside the block when ``one``.

    Pooling a batch is a few gathers and one ``index_add_`` over a few thousand rows: too small to share out, and
    on a busy machine waking a second intra-op thread costs more than the work (on 2 shared cores one
    ``index_add_`` of 2,000 x 384 rows took 6-11 ms on two threads, 1.0-1.4 ms on one). Only for inline writing:
    the thread count is process-wide, so a background writer must not change it under a running forward.
    """
    if not one:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or ``None`` where the C library has none (macOS, Windows, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def trim_heap() -> bool:
    """Give the heap memory freed so far back to the operating system; whether the C library could.

    An extraction allocates and frees batches of many shapes (the token budget packs sentences of every length),
    and glibc keeps what is freed inside its heap: without a trim after each shard, the resident memory of a
    20,000-sentence extraction of MiniLM-L6 grew by about 12 MB per shard (to about 1,290 MB at the end, twice);
    with it, it rises and falls and peaked at 1,031 and 1,048 MB (773 MB for 2,000 sentences). What stays is
    fragmentation a trim cannot return.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class Writer:
    """Runs write jobs in order, in a background thread when ``overlap``."""

    def __init__(self, overlap: bool):
        self.overlap = overlap
        self.error: BaseException | None = None
        if overlap:
            self.q: queue.Queue = queue.Queue(maxsize=2)
            self.thread = threading.Thread(target=self._loop, name="probekit-writer", daemon=True)
            self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.q.get()
            if job is None:
                return
            if self.error is not None:
                continue
            try:
                job[0](*job[1:])
            except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread)
                self.error = exc

    def submit(self, fn, *args) -> None:
        if not self.overlap:
            fn(*args)
            return
        if self.error is not None:
            raise self.error
        self.q.put((fn, *args))

    def close(self) -> None:
        """Wait for every job; re-raise a writer error."""
        if self.overlap:
            self.q.put(None)
            self.thread.join()
            self.overlap = False
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self.overlap:
            self.q.put(None)
            self.thread.join()
            self.overlap = False
