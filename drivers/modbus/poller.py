"""Poll one Modbus device on its schedule over a shared :class:`ModbusLink`.

A :class:`DevicePoller` runs the plan of one device (a tuple of planner
:class:`~drivers.modbus.planner.Request`), each request at its own interval,
on the injectable :class:`~gateway.clock.Clock`. Values go to
``on_values(request, values, ts_ns)`` as they arrive (a plain function or a
coroutine function; it owns decoding and its own errors).

Failures: the first failed read marks the device offline through
:class:`~gateway.health.Health` (``device.offline``, logged loudly once) and
opens its :class:`~drivers.modbus.breaker.CircuitBreaker`; the rest of that
cycle is skipped. While the breaker is open the device sends nothing, so the
other devices on the link wait at most one timeout per probe. The first good
answer closes the breaker and announces ``device.online``.

Schedule: each request keeps its phase (due times ``t0 + k * interval``);
ticks missed while the link was busy are skipped, not made up in a burst.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Sequence

from drivers.modbus.breaker import CircuitBreaker
from drivers.modbus.link import LinkError, ModbusLink
from drivers.modbus.planner import Request
from gateway.clock import Clock, SystemClock
from gateway.health import Health

__all__ = ["DevicePoller", "OnValues", "PollStats"]

log = logging.getLogger("drivers.modbus.poller")

OnValues = Callable[[Request, list[int] | list[bool], int], Awaitable[None] | None]
"""Called with the request, its values (registers or bits) and the receive time (UTC ns)."""


class PollStats:
    """Counters of one device, for ``/health`` and tests."""

    __slots__ = ("failures", "missed", "reads", "skipped")

    def __init__(self) -> None:
        self.reads = 0  # good reads
        self.failures = 0  # failed reads (after the link's retries)
        self.skipped = 0  # due requests not sent because the breaker was open
        self.missed = 0  # poll ticks that passed while a request waited (the link was busy)


class DevicePoller:
    """The schedule of one device (one unit id on one link)."""

    def __init__(
        self,
        device: str,
        unit: int,
        plan: Sequence[Request],
        link: ModbusLink,
        breaker: CircuitBreaker,
        health: Health,
        on_values: OnValues,
        *,
        driver: str = "modbus",
        clock: Clock | None = None,
    ) -> None:
        if not plan:
            raise ValueError(f"device {device}: empty plan, nothing to poll")
        self.device = device
        self.unit = unit
        self.plan = tuple(plan)
        self.link = link
        self.breaker = breaker
        self.health = health
        self.driver = driver
        self.stats = PollStats()
        self._on_values = on_values
        self._clock: Clock = clock or SystemClock()
        self._due: list[float] = []

    async def run(self) -> None:
        """Poll until cancelled. Every request is due at once on start."""
        start = self._clock.monotonic()
        self._due = [start] * len(self.plan)
        while True:
            now = self._clock.monotonic()
            wake = min(self._due)
            if wake > now:
                await self._clock.sleep(wake - now)
                now = self._clock.monotonic()
            due = [i for i, t in enumerate(self._due) if t <= now]
            await self.poll_once(due)
            now = self._clock.monotonic()
            for i in due:
                nxt = _next_due(self._due[i], self.plan[i].interval, now)
                self.stats.missed += round((nxt - self._due[i]) / self.plan[i].interval) - 1
                self._due[i] = nxt

    async def poll_once(self, indexes: Sequence[int] | None = None) -> None:
        """Send the given requests of the plan (all by default), as the breaker allows."""
        chosen = range(len(self.plan)) if indexes is None else indexes
        try:
            for i in chosen:
                request = self.plan[i]
                if not self.breaker.allow():
                    self.stats.skipped += 1
                    continue
                try:
                    values = await self.link.read(
                        request.table, request.start, request.count, self.unit
                    )
                except LinkError as exc:
                    await self._failed(exc)
                    continue
                ts = self._clock.time_ns()
                self.stats.reads += 1
                if self.breaker.is_open or self.stats.reads == 1:
                    await self.health.device_online(self.device, self.driver)
                self.breaker.success()
                result = self._on_values(request, values, ts)
                if inspect.isawaitable(result):
                    await result
        finally:
            await self.link.end_cycle()

    async def _failed(self, exc: LinkError) -> None:
        self.stats.failures += 1
        delay = self.breaker.failure(exc)
        reason = f"{type(exc).__name__}: {exc}"
        # Health logs the first failure loudly and repeats quietly.
        await self.health.device_offline(self.device, reason, self.driver)
        log.debug("device %s: next probe in %.1f s", self.device, delay)


def _next_due(previous: float, interval: float, now: float) -> float:
    """Next due time on the request's phase, skipping ticks already past."""
    nxt = previous + interval
    if nxt < now:
        nxt += math.ceil((now - nxt) / interval) * interval
    return nxt
