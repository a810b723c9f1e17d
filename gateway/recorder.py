"""Writes every event and alarm transition on the bus to the event store."""

from __future__ import annotations

import logging

from gateway.bus import BusClosed, Subscription
from gateway.model import Alarm, Event
from gateway.storage.eventstore import EventStore

__all__ = ["EventRecorder"]

log = logging.getLogger("gateway.recorder")


class EventRecorder:
    """Consumes a subscription of events (and alarms, stored as ``alarm.<state>``
    events) and appends them to the store in batches, in order."""

    def __init__(self, sub: Subscription, store: EventStore) -> None:
        self._sub = sub
        self._store = store
        self.recorded = 0

    async def run(self) -> None:
        while True:
            try:
                batch = await self._sub.get_batch(500)
            except BusClosed:
                return
            await self._store.append_many([self._as_event(m) for m in batch])
            self.recorded += len(batch)

    async def drain(self) -> None:
        """Store whatever is still queued (at shutdown)."""
        while batch := self._sub.get_nowait(500):
            await self._store.append_many([self._as_event(m) for m in batch])
            self.recorded += len(batch)

    @staticmethod
    def _as_event(msg: object) -> Event:
        if isinstance(msg, Event):
            return msg
        if isinstance(msg, Alarm):
            return Event(
                f"alarm.{msg.state.value}",
                msg.source,
                msg.ts,
                {
                    "id": msg.id,
                    "rule": msg.rule,
                    "priority": msg.priority.value,
                    "message": msg.message,
                    **msg.data,
                },
            )
        raise TypeError(f"the recorder does not store {type(msg).__name__}")
