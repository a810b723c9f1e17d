"""Writes every event on the bus to the event store (alarm transitions are
stored by the alarm manager, in the transaction of the transition)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from gateway.bus import BusClosed, Subscription
from gateway.model import Event, Message
from gateway.storage.eventstore import EventStore, InvalidEvent

__all__ = ["EventRecorder"]

log = logging.getLogger("gateway.recorder")


class EventRecorder:
    """Consumes a subscription of events and appends them to the store in
    batches, in order."""

    def __init__(self, sub: Subscription, store: EventStore) -> None:
        self._sub = sub
        self._store = store
        self.recorded = 0
        self.sanitized = 0  # events whose data the store refused, kept as text
        self.dropped = 0  # events the store refuses outright (counted, logged, reported)
        self._storing = False
        self._stopping = False

    async def run(self) -> None:
        while True:
            try:
                batch = await self._sub.get_batch(500)
            except BusClosed:
                return
            # Taken off the bus: from here on, cancelling would lose the batch,
            # so stop() waits for it instead (see stop()).
            self._storing = True
            try:
                await self._store_batch(batch)
            finally:
                self._storing = False
            if self._stopping:
                return

    async def stop(self, task: asyncio.Task[None]) -> None:
        """End ``task`` (running :meth:`run`) without losing a batch in flight."""
        self._stopping = True
        if not self._storing:
            task.cancel()  # waiting for the bus: nothing has been taken yet
        await asyncio.gather(task, return_exceptions=True)

    async def drain(self) -> None:
        """Store whatever is still queued (at shutdown)."""
        while batch := self._sub.get_nowait(500):
            await self._store_batch(batch)

    async def _store_batch(self, batch: Sequence[Message]) -> None:
        events = [self._as_event(m) for m in batch]
        while True:
            try:
                await self._store.append_many(events)
                break
            except InvalidEvent as e:
                bad = events[e.index]
                if "store_error" in bad.data or not e.reason.startswith("data"):
                    # Its type, source or time is unusable: nothing to salvage.
                    log.error("event dropped, the store refuses it: %s (%r)", e.reason, bad)
                    del events[e.index]
                    self.dropped += 1
                    continue
                # A driver put something unstorable in the data (NaN, bytes, a NUL).
                # Keep the event with its data as text rather than lose it or crash.
                log.warning(
                    "event %s from %s stored with data as text: %s", bad.type, bad.source, e.reason
                )
                events[e.index] = Event(
                    bad.type,
                    bad.source,
                    bad.ts,
                    {"unstorable_data": repr(dict(bad.data))[:4000], "store_error": e.reason},
                )
                self.sanitized += 1
        self.recorded += len(events)

    @staticmethod
    def _as_event(msg: object) -> Event:
        if isinstance(msg, Event):
            return msg
        raise TypeError(f"the recorder stores events, not {type(msg).__name__}")
