"""Delivery of outbox items to a sink: in order, with retries, never losing one.

The sender takes the oldest outbox item, decodes it, writes it to the sink
and deletes it once the sink has it. What the sink says decides the rest:

* :class:`SinkUnavailable` (also from ``start()``): wait with jittered
  exponential backoff (:class:`RetryPolicy`, on the injected clock; the
  server's ``retry_after`` wins), then try the same item again. New batches
  keep queuing in the outbox meanwhile.
* :class:`BatchTooLarge`: replace the item by its two halves, in its place,
  and go on; a single point too large is quarantined.
* :class:`PointsRejected`: quarantine the points the sink named (``bad``) and
  send the rest; when it named none, bisect through the outbox until each
  culprit stands alone, then quarantine it.
* An undecodable payload is quarantined as it is.

A quarantined reading is stored as a one-reading payload with the error, so
a person (or the UI) can decode and inspect it. Any other exception from the
sink is a bug and ends :meth:`Sender.run` with it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.model import Reading
from gateway.storage import codec
from gateway.storage.outbox import Outbox, OutboxItem
from gateway.storage.sink import (
    BatchTooLarge,
    PointsRejected,
    Sink,
    SinkError,
    SinkUnavailable,
)

__all__ = ["RetryPolicy", "Sender"]

log = logging.getLogger("gateway.storage.sender")

# Batches this process just put are kept decoded for delivery, up to this many
# points; past it the newest are not kept (they are the furthest from delivery).
_CACHE_POINTS = 100_000
_PREFETCH = 8  # outbox items read ahead (their deletes overlap the next write)
_LOG_QUARANTINED = 5  # log this many quarantined readings of a batch one by one


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff while the sink is unavailable: ``initial_s`` doubling up to ``max_s``."""

    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.2  # +/- this fraction
    max_retry_after_s: float = 300.0  # cap on a server's Retry-After

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None and retry_after > 0:
            return min(retry_after, self.max_retry_after_s)
        base = min(self.max_s, self.initial_s * 2.0 ** min(attempt, 60))
        return base * (1 + random.uniform(-self.jitter, self.jitter))


class Sender:
    """Drains an outbox into a sink; one item in flight, oldest first."""

    def __init__(self, sink: Sink, outbox: Outbox, clock: Clock, retry: RetryPolicy) -> None:
        self.sink = sink
        self.outbox = outbox
        self.clock = clock
        self.retry = retry
        self._wake = asyncio.Event()
        self.delivered = asyncio.Event()  # set after each item is dealt with, and when idle
        self._started = False
        self._attempt = 0
        # Decoded batches by outbox id, oldest first: saves decoding them again.
        self._cache: OrderedDict[int, list[Reading]] = OrderedDict()
        self._cached = 0  # points in _cache
        self._queue: deque[OutboxItem] = deque()  # prefetched outbox items, oldest first
        self._deleting: asyncio.Future[None] | None = None
        self.written = 0
        self.batches = 0
        self.retries = 0
        self.split = 0
        self.quarantined = 0
        self.sink_up = False
        self.last_error = ""

    def notify(self, item_id: int | None = None, readings: list[Reading] | None = None) -> None:
        """Tell the sender an item was put (optionally with its decoded readings)."""
        if item_id is not None and readings is not None:
            self._cache[item_id] = readings
            self._cached += len(readings)
            while self._cached > _CACHE_POINTS:
                self._cached -= len(self._cache.popitem(last=True)[1])
        self._wake.set()

    @property
    def idle(self) -> bool:
        """True when the outbox is empty (everything delivered)."""
        return self.outbox.pending_items == 0

    async def run(self) -> None:
        """Deliver until cancelled (each run starts the sink again: the last one closed it)."""
        self._started = False
        self._queue.clear()
        try:
            while True:
                if not self._started and not await self._start():
                    continue
                self._wake.clear()
                if not self._queue:
                    if self._deleting is not None:
                        await self._deleting  # the peek must not see a delivered item
                    self._queue.extend(await self.outbox.peek(_PREFETCH))
                if not self._queue:
                    self.delivered.set()
                    await self._wake.wait()
                    continue
                item = self._queue.popleft()
                if not await self._deliver(item):
                    self._queue.clear()  # the order changed (split, quarantine): peek again
                self.delivered.set()
        finally:
            if self._deleting is not None and not self._deleting.done():
                await asyncio.wait({self._deleting})  # let the last delete commit

    async def _delete_in_background(self, item_id: int) -> None:
        """Delete a delivered item while the next one is sent (one delete at a time)."""
        if self._deleting is not None:
            await self._deleting  # raises if the previous delete failed
        self._deleting = asyncio.ensure_future(self.outbox.delete([item_id]))
        self._deleting.add_done_callback(lambda _: self.delivered.set())

    async def _start(self) -> bool:
        try:
            await self.sink.start()
        except SinkUnavailable as e:
            await self._backoff(e, "start")
            return False
        self._started = True
        return True

    async def _deliver(self, item: OutboxItem) -> bool:
        """Send one item; False when the outbox order changed under the prefetch queue."""
        readings = self._cache.pop(item.id, None)
        if readings is not None:
            self._cached -= len(readings)
        else:
            try:
                readings = codec.decode(item.payload)
            except codec.CodecError as e:
                log.error("outbox item %d cannot be decoded; quarantined: %s", item.id, e)
                await self.outbox.quarantine(item.payload, f"undecodable: {e}")
                await self.outbox.delete([item.id])
                self.quarantined += item.count
                return False
        if not readings:
            await self.outbox.delete([item.id])
            return False
        try:
            await self._write(readings)
        except SinkUnavailable as e:
            self._keep(item, readings)
            await self._backoff(e, "write")
            return True
        except BatchTooLarge as e:
            await self._split(item, readings, str(e))
            return False
        except PointsRejected as e:
            await self._rejected(item, readings, e)
            return False
        except SinkError as e:  # a sink raised the base class: treat as retryable
            self._keep(item, readings)
            await self._backoff(SinkUnavailable(str(e)), "write")
            return True
        else:
            await self._delete_in_background(item.id)
            self.written += len(readings)
            self.batches += 1
            self._attempt = 0
            if not self.sink_up:
                log.info("sink %s is up; delivering", self.sink.name)
            self.sink_up = True
            return True

    async def _write(self, readings: list[Reading]) -> None:
        """``sink.write``, using its wait on the server to get the next item ready."""
        task = asyncio.ensure_future(self.sink.write(readings))
        try:
            # Two loop turns: the write formats and sends its request, and the
            # transport takes the body, before the CPU work below.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if not task.done():
                self._get_next_ready()
            await task
        except asyncio.CancelledError:
            task.cancel()
            raise

    def _get_next_ready(self) -> None:
        """Decode the next queued item and let the sink prepare it (optional hook)."""
        if not self._queue:
            return
        item = self._queue[0]
        readings = self._cache.get(item.id)
        if readings is None:
            try:
                readings = codec.decode(item.payload)
            except codec.CodecError:
                return  # quarantined when its turn comes
            self._cache[item.id] = readings
            self._cache.move_to_end(item.id, last=False)
            self._cached += len(readings)
        prepare = getattr(self.sink, "prepare", None)
        if prepare is not None:
            prepare(readings)

    def _keep(self, item: OutboxItem, readings: list[Reading]) -> None:
        """Put an item back at the head of the queue, decoded (it is retried next)."""
        self._queue.appendleft(item)
        self._cache[item.id] = readings
        self._cache.move_to_end(item.id, last=False)
        self._cached += len(readings)

    async def _backoff(self, e: SinkUnavailable, what: str) -> None:
        delay = self.retry.delay(self._attempt, e.retry_after)
        if self.sink_up or self._attempt == 0:
            log.warning(
                "sink %s unavailable (%s): %s; %d points wait in the outbox; retrying in %.1fs",
                self.sink.name,
                what,
                e,
                self.outbox.pending_count,
                delay,
            )
        else:
            log.debug("sink %s still unavailable: %s", self.sink.name, e)
        self.sink_up = False
        self.last_error = str(e)
        self._attempt += 1
        self.retries += 1
        await self.clock.sleep(delay)

    async def _split(self, item: OutboxItem, readings: list[Reading], error: str) -> None:
        if len(readings) == 1:
            await self._quarantine(readings, f"too large for the sink: {error}")
            await self.outbox.delete([item.id])
            return
        half = len(readings) // 2
        await self._replace(item, [readings[:half], readings[half:]])
        self.split += 1

    async def _rejected(self, item: OutboxItem, readings: list[Reading], e: PointsRejected) -> None:
        self.last_error = str(e)
        bad = sorted({i for i in e.bad if 0 <= i < len(readings)})
        if not bad:
            if len(readings) > 1:  # find the culprits by bisection
                await self._split(item, readings, str(e))
                return
            bad = [0]
        await self._quarantine([readings[i] for i in bad], str(e))
        bad_set = set(bad)
        rest = [r for i, r in enumerate(readings) if i not in bad_set]
        if rest:
            await self._replace(item, [rest])
        else:
            await self.outbox.delete([item.id])

    async def _replace(self, item: OutboxItem, parts: Sequence[list[Reading]]) -> None:
        try:
            await self.outbox.replace(item.id, [(codec.encode(p), len(p)) for p in parts])
        except KeyError:  # the outbox dropped it meanwhile (its size limit)
            log.warning("outbox item %d was dropped before it could be split", item.id)

    async def _quarantine(self, readings: Sequence[Reading], error: str) -> None:
        for r in readings[:_LOG_QUARANTINED]:
            log.error("quarantined %s=%r at %d: %s", r.point, r.value, r.ts, error)
        if len(readings) > _LOG_QUARANTINED:
            log.error("... and %d more readings quarantined", len(readings) - _LOG_QUARANTINED)
        await self.outbox.quarantine_many([(codec.encode([r]), error) for r in readings])
        self.quarantined += len(readings)
