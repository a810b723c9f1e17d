"""The runtime's implementation of :class:`gateway.driver.DriverContext`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from gateway.bus import Bus, Subscription
from gateway.clock import Clock
from gateway.health import Health
from gateway.model import Command, Event, Reading
from gateway.storage.outbox import Outbox

__all__ = ["RuntimeContext"]


class RuntimeContext:
    def __init__(
        self,
        *,
        driver_id: str,
        site: str,
        bus: Bus,
        clock: Clock,
        health: Health,
        data_dir: Path,
        device_kinds: dict[str, str],
        owned_devices: Iterable[str] = (),
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.driver_id = driver_id
        self.site = site
        self.timezone = timezone
        self.bus = bus
        self.clock = clock
        self.health = health
        self.data_dir = data_dir
        self.log = logging.getLogger(f"gateway.driver.{driver_id}")
        self._kinds = device_kinds
        self._owned = frozenset(owned_devices)
        self._outboxes: dict[str, Outbox] = {}
        self._commands: Subscription | None = None
        self._subs: dict[str, Subscription] = {}

    async def emit(self, msg: Reading | Event) -> None:
        await self.bus.publish(msg)

    async def request(self, cmd: Command) -> None:
        await self.bus.publish(cmd)

    async def commands(self) -> AsyncIterator[Command]:
        if self._commands is None:
            owned = self._owned
            self._commands = self.bus.subscribe(
                f"{self.driver_id}.commands",
                (Command,),
                accept=lambda m: isinstance(m, Command) and m.target in owned,
            )
        async for msg in self._commands:
            assert isinstance(msg, Command)
            yield msg

    def subscribe(
        self, name: str, kinds: Iterable[type], *, coalesce_readings: bool = False
    ) -> Subscription:
        """A named subscription; a restarted driver asking again for the same
        name gets the same one back, with what queued up meanwhile."""
        kinds = tuple(kinds)
        old = self._subs.get(name)
        if old is not None and old.kinds == kinds and old.coalesce_readings == coalesce_readings:
            return old
        if old is not None:
            self.bus.unsubscribe(old)
        sub = self._subs[name] = self.bus.subscribe(
            f"{self.driver_id}.{name}", kinds, coalesce_readings=coalesce_readings
        )
        return sub

    def outbox(self, name: str) -> Outbox:
        box = self._outboxes.get(name)
        if box is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            box = self._outboxes[name] = Outbox(
                self.data_dir / f"outbox-{self.driver_id}-{name}.db"
            )
        return box

    def device_kind(self, device: str) -> str:
        return self._kinds.get(device, "")

    async def aclose(self) -> None:
        """Release what the driver left open (subscriptions, outboxes)."""
        if self._commands is not None:
            self.bus.unsubscribe(self._commands)
            self._commands = None
        for sub in self._subs.values():
            self.bus.unsubscribe(sub)
        self._subs.clear()
        for box in self._outboxes.values():
            await box.close()
        self._outboxes.clear()
