"""In-process publish/subscribe with bounded queues.

Delivery rules (ARCHITECTURE.md, "Bus"):

* Events, alarms and commands are never dropped. When a subscriber's queue
  is full, :meth:`Bus.publish` waits (back-pressure) and counts the wait.
* Readings are never dropped either for a subscriber that asks for every
  sample (the time-series writer). A subscriber created with
  ``coalesce_readings=True`` (a screen, the uplink) keeps only the latest
  reading per point while it is behind; each replaced reading is counted.

Every subscription exposes its depth, high-water mark and counters through
:meth:`Bus.stats`, which the runtime publishes as gateway metrics.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.model import Alarm, Command, Event, Message, Reading

__all__ = ["Bus", "BusClosed", "Subscription", "SubscriptionStats"]


class BusClosed(Exception):
    """The subscription was closed while a consumer waited on it."""


@dataclass(slots=True)
class SubscriptionStats:
    name: str
    depth: int
    high_water: int
    maxsize: int
    delivered: int
    coalesced: int
    blocked_publishes: int


class Subscription:
    """One consumer's view of the bus. Create with :meth:`Bus.subscribe`."""

    def __init__(
        self,
        name: str,
        kinds: tuple[type, ...],
        maxsize: int,
        coalesce_readings: bool,
        accept: Callable[[Message], bool] | None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.name = name
        self.kinds = kinds
        self.maxsize = maxsize
        self.coalesce_readings = coalesce_readings
        self.accept = accept
        self._queue: deque[Message] = deque()
        self._latest: dict[str, Reading] = {}  # coalesced readings, by point
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False
        self.high_water = 0
        self.delivered = 0
        self.coalesced = 0
        self.blocked_publishes = 0

    # -- producer side (called by the bus) ---------------------------------
    def wants(self, msg: Message) -> bool:
        return isinstance(msg, self.kinds) and (self.accept is None or self.accept(msg))

    def _offer(self, msg: Message) -> bool:
        """Enqueue ``msg`` if there is room; False means 'wait and retry'."""
        if self.coalesce_readings and type(msg) is Reading:
            if msg.point in self._latest:
                self.coalesced += 1
            self._latest[msg.point] = msg
        elif len(self._queue) >= self.maxsize:
            self._writable.clear()
            return False
        else:
            self._queue.append(msg)
        depth = len(self._queue) + len(self._latest)
        if depth > self.high_water:
            self.high_water = depth
        self._readable.set()
        return True

    async def _wait_put(self, msg: Message) -> None:
        """Called after ``_offer`` refused ``msg``: wait for room (back-pressure)."""
        self.blocked_publishes += 1
        while not self._offer(msg):
            if self._closed:
                raise BusClosed(self.name)
            await self._writable.wait()

    # -- consumer side ------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self._queue) + len(self._latest)

    def get_nowait(self, max_items: int = 1_000) -> list[Message]:
        """Everything queued (up to ``max_items``), oldest first; may be empty."""
        q = self._queue
        n = min(len(q), max_items)
        if n == len(q):
            out: list[Message] = list(q)
            q.clear()
        else:
            out = [q.popleft() for _ in range(n)]
        if self._latest and len(out) < max_items:
            out.extend(self._latest.values())
            self._latest.clear()
        if not q and not self._latest:
            self._readable.clear()
        if out:
            self.delivered += len(out)
            self._writable.set()
        return out

    async def get_batch(self, max_items: int = 1_000) -> list[Message]:
        """Wait for at least one message, then return up to ``max_items``."""
        while True:
            batch = self.get_nowait(max_items)
            if batch:
                return batch
            if self._closed:
                raise BusClosed(self.name)
            await self._readable.wait()

    async def get(self) -> Message:
        return (await self.get_batch(1))[0]

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.get()
        except BusClosed:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Wake every waiter; consumers drain what is left, then stop."""
        self._closed = True
        self._readable.set()
        self._writable.set()

    def stats(self) -> SubscriptionStats:
        return SubscriptionStats(
            self.name,
            self.depth,
            self.high_water,
            self.maxsize,
            self.delivered,
            self.coalesced,
            self.blocked_publishes,
        )


_ALL_KINDS: tuple[type, ...] = (Reading, Event, Alarm, Command)


class Bus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self.published = 0

    def subscribe(
        self,
        name: str,
        kinds: Iterable[type] = _ALL_KINDS,
        *,
        maxsize: int = 10_000,
        coalesce_readings: bool = False,
        accept: Callable[[Message], bool] | None = None,
    ) -> Subscription:
        kinds = tuple(kinds)
        unknown = [k for k in kinds if k not in _ALL_KINDS]
        if unknown:
            raise TypeError(f"not a bus message type: {unknown}")
        sub = Subscription(name, kinds, maxsize, coalesce_readings, accept)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        if sub in self._subs:
            self._subs.remove(sub)

    async def publish(self, msg: Message) -> None:
        """Deliver ``msg`` to every interested subscriber, waiting for room."""
        self.published += 1
        for sub in self._subs:
            if sub.wants(msg) and not sub._offer(msg):
                await sub._wait_put(msg)

    async def publish_many(self, msgs: Iterable[Message]) -> None:
        for msg in msgs:
            await self.publish(msg)

    def stats(self) -> list[SubscriptionStats]:
        return [s.stats() for s in self._subs]

    def close(self) -> None:
        for sub in self._subs:
            sub.close()
