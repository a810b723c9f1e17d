"""The engine's timers: one heap of deadlines for every rule.

An owner schedules ``(ts, key)``; cancelling is lazy: the owner's
:meth:`TimerOwner.timer_valid` says whether an entry still stands when it
comes up, so a chattering on-delay costs a heap push, not a search.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Protocol

from gateway.rules.condition import ConditionChange

__all__ = ["TimerOwner", "Timers"]


class TimerOwner(Protocol):
    def timer_valid(self, key: Hashable, ts: int) -> bool:
        """Whether the entry ``(ts, key)`` still stands."""

    def on_timer(self, key: Hashable, ts: int, out: list[ConditionChange]) -> None:
        """The deadline ``ts`` of ``key`` has come (``tick`` ran at or after it)."""


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, TimerOwner, Hashable]] = []
        self._seq = itertools.count()

    def schedule(self, ts: int, owner: TimerOwner, key: Hashable) -> None:
        heapq.heappush(self._heap, (ts, next(self._seq), owner, key))

    def __len__(self) -> int:
        return len(self._heap)

    def next_deadline(self) -> int | None:
        """The earliest deadline that still stands (drops cancelled ones on the way)."""
        heap = self._heap
        while heap:
            ts, _, owner, key = heap[0]
            if owner.timer_valid(key, ts):
                return ts
            heapq.heappop(heap)
        return None

    def run_due(self, now: int, out: list[ConditionChange]) -> None:
        """Fire every deadline at or before ``now``, in deadline order (including
        deadlines that firing schedules, as long as they are due)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            ts, _, owner, key = heapq.heappop(heap)
            if owner.timer_valid(key, ts):
                owner.on_timer(key, ts, out)
