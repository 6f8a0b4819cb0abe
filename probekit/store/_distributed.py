"""Data parallelism: rank and world size from the launcher; ranks meet (gloo) to share failures and statistics."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch

__all__ = ["dist_env", "distributed", "Dist"]


def dist_env() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if not 0 <= rank < max(world, 1):
        raise ValueError(f"RANK={rank} is out of range for WORLD_SIZE={world}")
    return rank, max(world, 1)


class Dist:
    def __init__(self, world: int):
        self.world = world

    def agree(self, error: Exception | None, what: str) -> None:
        """Raise on every rank when any rank failed at this point (instead of leaving the others at a barrier).

        Each rank passes the exception it caught (or ``None``); a rank re-raises its own, the others raise a
        :class:`RuntimeError` naming the first rank that failed and its message.
        """
        if self.world > 1:
            msgs: list[Any] = [None] * self.world
            torch.distributed.all_gather_object(msgs, None if error is None else f"{type(error).__name__}: {error}")
        else:
            msgs = [None]
        if error is not None:
            raise error
        failed = [(r, m) for r, m in enumerate(msgs) if m is not None]
        if failed:
            r, m = failed[0]
            raise RuntimeError(f"rank {r} failed while {what}: {m}")

    @contextlib.contextmanager
    def step(self, what: str):
        """Run the block on every rank, then :meth:`agree` on whether any rank failed in it."""
        error = None
        try:
            yield
        except Exception as exc:  # noqa: BLE001  (raised again by agree, on every rank)
            error = exc
        self.agree(error, what)

    def gather_stats(self, stats: dict) -> list[dict]:
        if self.world == 1:
            return [stats]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, stats)
        return out


@contextlib.contextmanager
def distributed(world: int):
    created = False
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="gloo")
        created = True
    try:
        yield Dist(world)
    finally:
        if created:
            torch.distributed.destroy_process_group()


