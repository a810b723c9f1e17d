"""The live hub: one bus subscription shared by every WebSocket client.

Alarm transitions and events get a sequence number and go into a ring of
the last ``buffer`` messages; readings only update :attr:`latest` (the
newest reading per point, which the REST API serves too).
(Helper B extends this with the per-client cursors.)
"""

from __future__ import annotations

import secrets
from collections import deque

from gateway.bus import Bus, BusClosed
from gateway.clock import Clock
from gateway.model import Alarm, Event, Reading

__all__ = ["LiveHub"]


class LiveHub:
    def __init__(self, bus: Bus, clock: Clock, *, buffer: int = 10_000) -> None:
        self.bus = bus
        self.clock = clock
        self.epoch = secrets.token_hex(8)
        self.seq = 0
        self.ring: deque[tuple[int, Alarm | Event]] = deque(maxlen=buffer)
        self.latest: dict[str, Reading] = {}
        self._sub = bus.subscribe(
            "live", (Reading, Event, Alarm), maxsize=100_000, coalesce_readings=True
        )

    async def run(self) -> None:
        while True:
            try:
                batch = await self._sub.get_batch(2_000)
            except BusClosed:
                return
            for msg in batch:
                if isinstance(msg, Reading):
                    self.latest[msg.point] = msg
                elif isinstance(msg, (Alarm, Event)):
                    self.seq += 1
                    self.ring.append((self.seq, msg))
