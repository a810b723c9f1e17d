"""Injectable time.

Everything time-based (polling, heartbeats, retries, schedules, SLAs) asks a
:class:`Clock` instead of ``time`` or ``asyncio.sleep``. Production uses
:class:`SystemClock`; tests use :class:`ManualClock` and run a day of
schedule in milliseconds by advancing it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    def time_ns(self) -> int:
        """Wall-clock time: UTC ns since the epoch (for timestamps)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (for intervals and timeouts)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""

    def now(self) -> datetime:
        """Wall-clock time as an aware UTC datetime."""


class SystemClock:
    def time_ns(self) -> int:
        return time.time_ns()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when a test says so.

    Sleepers wake in deadline order as :meth:`advance` passes their
    deadlines; each wake-up is given a chance to run (and to sleep again)
    before time moves further, so a loop of ``await clock.sleep(60)`` runs
    exactly as many times as minutes pass.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware start time")
        self._wall0 = start.timestamp()
        self._t = 0.0
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def time_ns(self) -> int:
        return round((self._wall0 + self._t) * 1e9)

    def monotonic(self) -> float:
        return self._t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._wall0 + self._t, tz=UTC)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._t + seconds, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline passes."""
        target = self._t + seconds
        await self._settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            if fut.done():  # cancelled sleeper
                continue
            self._t = max(self._t, deadline)
            fut.set_result(None)
            await self._settle()
        self._t = target
        await self._settle()

    @staticmethod
    async def _settle() -> None:
        # Let woken tasks run until they block again. A few loop turns cover
        # chains of awaits (queue hand-offs) started by one wake-up.
        for _ in range(20):
            await asyncio.sleep(0)
