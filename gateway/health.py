"""Availability as state, not as log noise.

Drivers report each device up or down through :class:`Health`. The first
failure is logged loudly and announced as a ``device.offline`` event; repeats
are logged quietly until the device recovers (``device.online``, logged once).
Driver states (running, restarting, crashed, disabled) live here too, so the
API and ``/health`` read one place.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.clock import Clock
from gateway.model import Event

__all__ = ["DeviceHealth", "DriverHealth", "DriverState", "Health"]

log = logging.getLogger("gateway.health")


class DriverState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"  # crashed, waiting to restart
    FAILED = "failed"  # restart limit reached
    STOPPED = "stopped"
    DISABLED = "disabled"  # enabled: false, or its optional dependency is missing


@dataclass(slots=True)
class DriverHealth:
    state: DriverState = DriverState.STARTING
    restarts: int = 0
    last_error: str = ""
    since: int = 0


@dataclass(slots=True)
class DeviceHealth:
    online: bool = True
    reason: str = ""
    since: int = 0
    failures: int = 0  # consecutive failures while offline
    driver: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Health:
    def __init__(self, clock: Clock, emit: Callable[[Event], Awaitable[None]]) -> None:
        self._clock = clock
        self._emit = emit
        self.drivers: dict[str, DriverHealth] = {}
        self.devices: dict[str, DeviceHealth] = {}

    def driver(self, name: str) -> DriverHealth:
        return self.drivers.setdefault(name, DriverHealth(since=self._clock.time_ns()))

    def set_driver(self, name: str, state: DriverState, error: str = "") -> None:
        h = self.driver(name)
        if h.state != state:
            h.state = state
            h.since = self._clock.time_ns()
        if error:
            h.last_error = error

    async def device_offline(self, device: str, reason: str, driver: str = "") -> None:
        """Report a failed exchange with ``device``; idempotent while it stays down."""
        h = self.devices.get(device)
        now = self._clock.time_ns()
        if h is None:
            h = self.devices[device] = DeviceHealth(online=True, since=now, driver=driver)
        h.failures += 1
        if not h.online:
            log.debug("device %s still offline: %s", device, reason)
            return
        h.online, h.reason, h.since = False, reason, now
        log.warning("device %s offline: %s", device, reason)
        await self._emit(Event("device.offline", device, now, {"reason": reason, "driver": driver}))

    async def device_online(self, device: str, driver: str = "") -> None:
        """Report a good exchange with ``device``; announces only a recovery."""
        h = self.devices.get(device)
        now = self._clock.time_ns()
        if h is None:
            self.devices[device] = DeviceHealth(online=True, since=now, driver=driver)
            await self._emit(Event("device.online", device, now, {"driver": driver}))
            return
        if h.online:
            return
        down_s = (now - h.since) / 1e9
        h.online, h.reason, h.since, h.failures = True, "", now, 0
        log.info("device %s back online after %.0f s", device, down_s)
        await self._emit(
            Event("device.online", device, now, {"driver": driver, "offline_s": round(down_s, 3)})
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "drivers": {
                k: {"state": v.state.value, "restarts": v.restarts, "last_error": v.last_error}
                for k, v in self.drivers.items()
            },
            "devices": {
                k: {"online": v.online, "reason": v.reason, "since": v.since}
                for k, v in self.devices.items()
            },
        }
