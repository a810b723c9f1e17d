"""The live hub: one bus subscription shared by every WebSocket client.

Alarm transitions and events get a sequence number and go into a ring of
the last ``buffer`` messages; every client keeps a cursor into it (see
:mod:`gateway.api.live.client`), so nothing seq'd is ever dropped for a slow
client, and a client that falls off the ring is told so by a fresh snapshot.
Readings update :attr:`LiveHub.latest` (the newest reading per point, which
the REST API serves too) and the batch of the current reading interval
(latest per point): two dict writes, whatever the number of clients. Every
``reading_interval`` seconds the hub hands the batch out, then wakes the
clients with readings pending in slices across the interval (see
:meth:`LiveHub._tick`), so each gets at most one ``readings`` message per
interval. Clients of every point (``"*"``, the page's default) share the
batch itself (and so one rendering of it); for the others, which clients
want a point is worked out once per point and kept up to date on
(un)subscribe, so handing out a point costs O(its subscribers).

The hub never awaits a client. It only changes the client's fields and sets
its ``wake`` event; each client's send task does the sending, so a client
that stops reading stalls nobody but itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.api.live.client import LiveClient, PointFilter
from gateway.api.live.ring import Ring
from gateway.api.masking import PRIVATE_EVENT_TYPES
from gateway.bus import Bus, BusClosed
from gateway.clock import Clock
from gateway.model import Alarm, Event, Message, Reading

__all__ = ["GOING_AWAY", "PHASES", "LiveHub", "Pull", "SeqMessage"]

log = logging.getLogger("gateway.api.live")

GOING_AWAY = 1001  # the WebSocket close code of a server that stops
SeqMessage = Alarm | Event
_BATCH = 2_000  # bus messages taken per wake-up
PHASES = 10  # clients get their readings in this many slices of each interval


@dataclass(frozen=True, slots=True)
class Pull:
    """What a client's send task takes from the hub in one go.

    ``snapshot``: the client must be sent a fresh snapshot with seq ``head``
    (built right away, before the next await) instead of ``items``.
    """

    head: int
    snapshot: bool
    items: list[tuple[int, SeqMessage]]


class LiveHub:
    def __init__(
        self, bus: Bus, clock: Clock, *, buffer: int = 10_000, reading_interval: float = 0.25
    ) -> None:
        if reading_interval <= 0:
            raise ValueError("reading_interval must be positive")
        self.bus = bus
        self.clock = clock
        self.epoch = secrets.token_hex(8)  # a new one per process: seqs restart with it
        self.ring: Ring[SeqMessage] = Ring(buffer)
        self.latest: dict[str, Reading] = {}
        self.reading_interval = reading_interval
        self.tick_ns = clock.time_ns()  # when readings were last flushed (their age_s base)
        self.closing = False
        self.fell_behind = 0  # clients sent a snapshot because the ring had moved past them
        self._clients: set[LiveClient] = set()
        self._index: dict[str, set[LiveClient]] = {}  # point -> clients with a filter
        self._everyone: set[LiveClient] = set()  # clients of every point ("*")
        self._changed: dict[str, Reading] = {}  # this interval's readings, latest per point
        self._next_phase = 0
        self._empty = asyncio.Event()
        self._empty.set()
        self._sub = bus.subscribe(
            "live", (Reading, Event, Alarm), maxsize=100_000, coalesce_readings=True
        )

    # -- state ----------------------------------------------------------------
    @property
    def seq(self) -> int:
        """The seq of the newest message (0 before the first)."""
        return self.ring.head

    @property
    def clients(self) -> frozenset[LiveClient]:
        return frozenset(self._clients)

    def subscribers(self, point: str) -> frozenset[LiveClient]:
        return frozenset(self._index.get(point, ())) | self._everyone

    # -- clients ----------------------------------------------------------------
    def connect(
        self,
        name: str,
        role: str,
        points: Iterable[str] = (),
        resume: tuple[str, int] | None = None,
    ) -> LiveClient:
        """Register a client. It resumes after seq ``resume[1]`` when the epoch
        is this process's and that seq is still in the ring (or is the head);
        otherwise its first pull is a snapshot."""
        client = LiveClient(name, role, PointFilter(points))
        client.phase = self._next_phase
        self._next_phase = (self._next_phase + 1) % PHASES
        if resume is not None and self._resumable(*resume):
            client.cursor = resume[1] + 1
            client.resumed = True
        else:
            client.snapshot_due = True
        self._clients.add(client)
        self._empty.clear()
        self._attach(client)
        client.wake.set()
        if self.closing:
            client.close(GOING_AWAY, "the gateway is stopping")
        return client

    def _resumable(self, epoch: str, seq: int) -> bool:
        return epoch == self.epoch and self.ring.first - 1 <= seq <= self.ring.head

    def subscribe(self, client: LiveClient, points: Iterable[str]) -> None:
        """Replace the client's point patterns; newly matched points get their
        latest reading at the next flush, dropped ones no more."""
        previous = client.filter
        client.filter = new = PointFilter(points)
        self._everyone.discard(client)
        for point in list(client.indexed):
            if new.everything or not new(point):
                self._index[point].discard(client)
                client.indexed.discard(point)
        client.keep_pending(new)
        self._attach(client, previous)

    def _attach(self, client: LiveClient, previous: PointFilter | None = None) -> None:
        """Enter the client where its filter says, and give it the latest
        reading of every point it did not match before."""
        f = client.filter
        if not f:
            return
        if f.everything:
            self._everyone.add(client)
        index = self._index
        for point, reading in self.latest.items():
            if not f(point):
                continue
            if previous is None or not previous(point):
                client.offer(reading)
            if not f.everything and point not in client.indexed:
                subs = index.get(point)
                if subs is not None:  # else indexed when the point is next handed out
                    subs.add(client)
                    client.indexed.add(point)

    def disconnect(self, client: LiveClient) -> None:
        for point in client.indexed:
            subs = self._index.get(point)
            if subs is not None:
                subs.discard(client)
        client.indexed.clear()
        client.take_readings()
        self._everyone.discard(client)
        self._clients.discard(client)
        if not self._clients:
            self._empty.set()

    def pull(self, client: LiveClient, limit: int = 256) -> Pull:
        """The next seq'd messages for ``client`` (up to ``limit``), moving its
        cursor; or a snapshot when it is due or the ring has moved past it."""
        ring = self.ring
        if client.snapshot_due or client.cursor < ring.first:
            if not client.snapshot_due:
                self.fell_behind += 1
                log.info(
                    "live client %s fell %d messages behind (ring %d): sending a snapshot",
                    client.name,
                    ring.head - client.cursor + 1,
                    ring.size,
                )
            client.snapshot_due = False
            client.snapshots += 1
            client.cursor = ring.head + 1
            return Pull(ring.head, True, [])
        items = ring.since(client.cursor, limit)
        client.cursor += len(items)
        return Pull(ring.head, False, items)

    def behind(self, client: LiveClient) -> bool:
        """The client has seq'd messages (or a snapshot) still to take."""
        return client.snapshot_due or client.cursor <= self.ring.head

    # -- the bus side ---------------------------------------------------------
    def ingest(self, batch: Iterable[Message]) -> None:
        """Take a batch of bus messages (what :meth:`run` does with each one)."""
        grew = False
        latest, changed = self.latest, self._changed
        for msg in batch:
            if type(msg) is Reading:
                latest[msg.point] = msg
                changed[msg.point] = msg
            elif isinstance(msg, Alarm) or (
                isinstance(msg, Event) and msg.type not in PRIVATE_EVENT_TYPES
            ):
                self.ring.append(msg)
                grew = True
        if grew:
            for client in self._clients:
                client.wake.set()

    def _index_point(self, point: str) -> set[LiveClient]:
        subs = {
            c for c in self._clients if c.filter and not c.filter.everything and c.filter(point)
        }
        self._index[point] = subs
        for c in subs:
            c.indexed.add(point)
        return subs

    def hand_out(self) -> None:
        """The reading interval has passed: give its readings to their clients."""
        self.tick_ns = self.clock.time_ns()
        batch, self._changed = self._changed, {}
        if not batch:
            return
        index = self._index
        for point, reading in batch.items():
            subs = index.get(point)
            if subs is None:
                subs = self._index_point(point)
            for client in subs:
                client.offer(reading)
        for client in self._everyone:
            client.offer_batch(batch)  # the same dict for all: never changed after this

    def wake_readers(self, phase: int | None = None) -> None:
        """Wake the clients of ``phase`` (None: every client) that have readings."""
        for client in self._clients:
            if client.pending and (phase is None or client.phase == phase):
                client.flush_due = True
                client.wake.set()

    def flush(self) -> None:
        """Hand out the interval's readings and wake every client that has some."""
        self.hand_out()
        self.wake_readers()

    async def run(self) -> None:
        """Consume the bus until it closes; flush readings every interval."""
        ticker = asyncio.create_task(self._tick(), name="live:readings")
        try:
            while True:
                try:
                    batch = await self._sub.get_batch(_BATCH)
                except BusClosed:
                    return
                self.ingest(batch)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            self._close_all(GOING_AWAY, "the gateway is stopping")

    async def _tick(self) -> None:
        """Each interval: hand out the readings, then wake the clients phase by
        phase across the interval. Sending a large ``readings`` message to every
        client at the same instant would hold the event loop (and the alarm
        messages queued behind it) for the whole burst; in slices it holds it
        for a tenth of it."""
        slot = 0
        while True:
            await self.clock.sleep(self.reading_interval / PHASES)
            if slot == 0:
                self.hand_out()
            self.wake_readers(slot)
            slot = (slot + 1) % PHASES

    # -- stopping -------------------------------------------------------------
    def _close_all(self, code: int, reason: str) -> None:
        self.closing = True
        for client in self._clients:
            client.close(code, reason)

    async def close(self, grace: float = 2.0, reason: str = "the gateway is stopping") -> None:
        """Close every client with 1001 (going away) and wait up to ``grace``
        seconds for them to go. Call before the HTTP server stops, which would
        otherwise cut them off with 1012."""
        self._close_all(GOING_AWAY, reason)
        if self._empty.is_set():
            return
        gone = asyncio.ensure_future(self._empty.wait())
        timer = asyncio.ensure_future(self.clock.sleep(grace))
        try:
            await asyncio.wait({gone, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (gone, timer):
                t.cancel()
        if self._clients:
            log.warning("%d live clients did not close within %.1f s", len(self._clients), grace)
