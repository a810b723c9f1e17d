"""The rule engine on the bus: drain readings and events in batches, tick the
engine's timers on the injectable clock, hand the changes on.

    sub = bus.subscribe("rules", (Reading, Event))
    service = RuleService(engine, sub, clock, alarm_manager.apply_changes)
    await service.run()

``on_changes`` is awaited once per batch with every change of the batch, in
order (timer changes due before the batch come first). ``run`` returns when
the subscription is closed and drained.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.bus import BusClosed, Subscription
from gateway.clock import Clock
from gateway.model import Event, Message, Reading
from gateway.rules.condition import ConditionChange
from gateway.rules.engine import RuleEngine

__all__ = ["RuleService"]

OnChanges = Callable[[list[ConditionChange]], Awaitable[None]]


class RuleService:
    def __init__(
        self,
        engine: RuleEngine,
        sub: Subscription,
        clock: Clock,
        on_changes: OnChanges,
        *,
        batch_size: int = 1_000,
    ) -> None:
        self.engine = engine
        self.sub = sub
        self.clock = clock
        self.on_changes = on_changes
        self.batch_size = batch_size
        self.messages = 0  # readings and events evaluated
        self.changes = 0  # condition changes handed on
        self.ticks = 0  # timer runs

    async def run(self) -> None:
        getter: asyncio.Task[list[Message]] | None = None
        sleeper: asyncio.Task[None] | None = None
        sleeping_until: int | None = None
        try:
            while True:
                batch: list[Message] = []
                if getter is not None and getter.done():
                    try:
                        batch = getter.result()
                    except BusClosed:
                        return
                    finally:
                        getter = None
                if not batch:
                    batch = self.sub.get_nowait(self.batch_size)
                if batch:
                    await self._handle(batch, self.clock.time_ns())
                    continue
                due = self.engine.next_deadline()
                now = self.clock.time_ns()
                if due is not None and due <= now:
                    await self._handle([], now)
                    continue
                # Idle: wait for the next message or the next deadline.
                if getter is None:
                    getter = asyncio.ensure_future(self.sub.get_batch(self.batch_size))
                if due != sleeping_until:
                    if sleeper is not None:
                        sleeper.cancel()
                    sleeper, sleeping_until = None, due
                    if due is not None:
                        sleeper = asyncio.ensure_future(self.clock.sleep((due - now) / 1e9))
                waits: set[asyncio.Task[Any]] = {getter}
                if sleeper is not None:
                    waits.add(sleeper)
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if sleeper is not None and sleeper in done and due is not None:
                    sleeper, sleeping_until = None, None
                    # The clock says the deadline has come (a manual clock's float
                    # time may read a few ns short of it).
                    await self._handle([], max(self.clock.time_ns(), due))
        finally:
            for task in (getter, sleeper):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, BusClosed):
                        await task

    async def _handle(self, batch: list[Message], now: int) -> None:
        engine = self.engine
        changes: list[ConditionChange] = []
        due = engine.next_deadline()
        if due is not None and due <= now:
            self.ticks += 1
            changes.extend(engine.tick(now))
        for msg in batch:
            if type(msg) is Reading:
                found = engine.on_reading(msg)
            elif isinstance(msg, Event):
                found = engine.on_event(msg)
            else:
                continue
            if found:
                changes.extend(found)
        self.messages += len(batch)
        if changes:
            self.changes += len(changes)
            await self.on_changes(changes)
