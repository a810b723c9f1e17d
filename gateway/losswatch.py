"""Turns loss counters into events, so a loss is alarmed and not only logged.

The core never drops events, alarms or commands, but a few paths can lose or
set aside data by design: the outbox's size limit drops the oldest points,
a sink can reject points as malformed (quarantined: kept, not delivered),
the event store can refuse an event, a driver's inbox can overflow. Each
exposes a monotonic counter; :class:`LossWatch` polls them and emits
``data.lost`` (gone) or ``data.quarantined`` (kept aside) with the increase,
which the alarm engine turns into an alarm and the recorder keeps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.model import Event

__all__ = ["LossCounter", "LossWatch"]


@dataclass(frozen=True, slots=True)
class LossCounter:
    what: str  # "timeseries points", "events", "mqtt messages"
    reason: str  # "outbox full", "rejected by the historian"
    read: Callable[[], int]
    quarantined: bool = False  # kept aside rather than gone


class LossWatch:
    def __init__(
        self,
        source: str,
        counters: list[LossCounter],
        emit: Callable[[Event], Awaitable[None]],
        clock: Clock,
        interval: float = 5.0,
    ) -> None:
        self._source = source
        self._counters = counters
        self._emit = emit
        self._clock = clock
        self._interval = interval
        self._seen = [0] * len(counters)

    async def check(self) -> None:
        for i, c in enumerate(self._counters):
            total = c.read()
            increase = total - self._seen[i]
            if increase <= 0:
                continue
            await self._emit(
                Event(
                    "data.quarantined" if c.quarantined else "data.lost",
                    self._source,
                    self._clock.time_ns(),
                    {"what": c.what, "reason": c.reason, "count": increase, "total": total},
                )
            )
            self._seen[i] = total  # only once announced: a cancelled emit is retried

    async def run(self) -> None:
        while True:
            await self._clock.sleep(self._interval)
            await self.check()
