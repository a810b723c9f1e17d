"""Named tasks that restart with jittered exponential backoff.

A crash (any exception out of the task's coroutine) is announced as a
``driver.crashed`` event and the task is restarted after a backoff that
doubles from ``backoff_min`` to ``backoff_max`` with full jitter. A task that
ran for ``stable_after`` seconds before crashing starts again from the
minimum. More than ``max_restarts`` crashes within ``restart_window``
seconds mark the task failed (``driver.failed``); it stays down until the
gateway restarts, and the rest of the process goes on.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.health import DriverState, Health
from gateway.model import Event

__all__ = ["RestartPolicy", "Supervisor"]

log = logging.getLogger("gateway.supervisor")


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    stable_after: float = 60.0
    max_restarts: int = 10
    restart_window: float = 600.0


class Supervisor:
    def __init__(
        self,
        clock: Clock,
        health: Health,
        emit: Callable[[Event], Awaitable[None]],
        policy: RestartPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._health = health
        self._emit = emit
        self._policy = policy or RestartPolicy()
        self._rng = rng or random.Random()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run ``factory()`` as task ``name``, restarting it when it crashes."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        self._tasks[name] = asyncio.create_task(self._keep(name, factory), name=name)

    @property
    def names(self) -> list[str]:
        return list(self._tasks)

    def done(self, name: str) -> bool:
        return self._tasks[name].done()

    async def _keep(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        try:
            await self._restart_loop(name, factory)
        except asyncio.CancelledError:
            self._health.set_driver(name, DriverState.STOPPED)
            raise

    async def _restart_loop(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        p = self._policy
        crashes: deque[float] = deque()
        delay = p.backoff_min
        while True:
            self._health.set_driver(name, DriverState.RUNNING)
            started = self._clock.monotonic()
            try:
                await factory()
            except Exception as e:  # noqa: BLE001 - a crash of any kind is what we supervise
                error = f"{type(e).__name__}: {e}"
                now = self._clock.monotonic()
            else:
                # A driver's run() returns only when told to stop; returning early is a bug
                # in the driver, treated as a crash so the device is not silently abandoned.
                error = "run() returned"
                now = self._clock.monotonic()
            if now - started >= p.stable_after:
                delay = p.backoff_min
            crashes.append(now)
            while crashes and now - crashes[0] > p.restart_window:
                crashes.popleft()
            h = self._health.driver(name)
            h.restarts += 1
            if len(crashes) > p.max_restarts:
                self._health.set_driver(name, DriverState.FAILED, error)
                log.error(
                    "%s failed %d times in %.0f s, giving up: %s",
                    name,
                    len(crashes),
                    p.restart_window,
                    error,
                )
                await self._emit(
                    Event(
                        "driver.failed",
                        name,
                        self._clock.time_ns(),
                        {"error": error, "crashes": len(crashes)},
                    )
                )
                return
            wait = self._rng.uniform(delay / 2, delay)
            self._health.set_driver(name, DriverState.BACKOFF, error)
            log.warning("%s crashed (%s); restart %d in %.1f s", name, error, h.restarts, wait)
            await self._emit(
                Event(
                    "driver.crashed",
                    name,
                    self._clock.time_ns(),
                    {"error": error, "restarts": h.restarts, "retry_in_s": round(wait, 3)},
                )
            )
            await self._clock.sleep(wait)
            delay = min(delay * 2, p.backoff_max)

    async def stop(self, timeout: float = 10.0) -> None:
        """Cancel every task and wait (up to ``timeout``) for them to finish."""
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                log.error("task %s did not stop within %.0f s", t.get_name(), timeout)
        self._tasks.clear()
