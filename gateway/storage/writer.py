"""The time-series writer: bus -> deadband -> batches -> outbox -> sink.

Readings arrive from a bus subscription, pass the per-point deadband filter
(:mod:`gateway.storage.deadband`) and accumulate. A batch is closed when it
holds ``batch_size`` points or ``flush_interval_s`` has passed since its first
point; it is then encoded (:mod:`gateway.storage.codec`) and committed to the
outbox *before* anything is sent. A :class:`~gateway.storage.sender.Sender`
task delivers outbox items to the sink oldest first, so a sink outage (or a
restart of the process) never loses or reorders a point: whatever waits in
the outbox goes out first, with its original timestamps.

:meth:`TimeseriesWriter.stop` puts the partial batch into the outbox and then
gives the sender up to ``timeout`` seconds to deliver; what is left stays in
the outbox for the next start. Cancelling :meth:`TimeseriesWriter.run` also
commits the partial batch before it ends. The writer starts and closes the
sink; the outbox is opened (lazily) but closed by its owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

from gateway.bus import BusClosed, Subscription
from gateway.clock import Clock, SystemClock
from gateway.config.storage import TimeseriesConfig
from gateway.driver import PointSpec
from gateway.model import Message, Reading
from gateway.storage import codec
from gateway.storage.deadband import Deadband
from gateway.storage.outbox import Outbox
from gateway.storage.sender import RetryPolicy, Sender
from gateway.storage.sink import Sink

__all__ = ["RetryPolicy", "TimeseriesWriter", "WriterStats"]

log = logging.getLogger("gateway.storage.writer")


@dataclass(frozen=True, slots=True)
class WriterStats:
    received: int  # readings taken from the bus
    filtered_by_deadband: int
    written: int  # points the sink accepted
    batches: int  # successful sink writes
    pending_points: int  # points waiting in the outbox
    buffered_points: int  # points in the open batch (not yet in the outbox)
    retries: int  # waits after SinkUnavailable
    split: int  # items split in two (too large, or bisecting a rejection)
    quarantined: int  # points set aside (rejected by the sink, undecodable)
    dropped: int  # points dropped by the outbox's size limit
    sink_up: bool
    last_error: str


async def _until(aw: Awaitable[object], clock: Clock, seconds: float) -> bool:
    """Wait for ``aw`` at most ``seconds`` of ``clock`` time; True if it finished."""
    task = asyncio.ensure_future(aw)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not task.done():
            task.cancel()
    if task in done:
        task.result()  # raises what ended it
        return True
    return False


class TimeseriesWriter:
    def __init__(
        self,
        sub: Subscription,
        sink: Sink,
        outbox: Outbox,
        config: TimeseriesConfig,
        points: Iterable[PointSpec] = (),
        clock: Clock | None = None,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.sub = sub
        self.sink = sink
        self.outbox = outbox
        self.config = config
        self.clock = clock or SystemClock()
        self.deadband = Deadband(
            points,
            default_deadband=config.default_deadband,
            default_heartbeat_s=config.default_heartbeat_s,
        )
        self.sender = Sender(sink, outbox, self.clock, retry or RetryPolicy())
        self.received = 0
        self._batch: list[Reading] = []
        self._timer: asyncio.Future[None] | None = None  # fires at the open batch's deadline
        self._stop_requested = asyncio.Event()
        self._stop_timeout = 5.0
        self._running = False
        self._done = asyncio.Event()

    # -- public ----------------------------------------------------------------
    def stats(self) -> WriterStats:
        s = self.sender
        return WriterStats(
            received=self.received,
            filtered_by_deadband=self.deadband.filtered,
            written=s.written,
            batches=s.batches,
            pending_points=self.outbox.pending_count,
            buffered_points=len(self._batch),
            retries=s.retries,
            split=s.split,
            quarantined=s.quarantined,
            dropped=self.outbox.dropped_count,
            sink_up=s.sink_up,
            last_error=s.last_error,
        )

    async def run(self) -> None:
        """Write until :meth:`stop` is called or the task is cancelled."""
        if self._running:
            raise RuntimeError("this writer is already running")
        self._running = True
        self._done.clear()
        sender: asyncio.Task[None] | None = None
        try:
            await self.outbox.open()
            sender = asyncio.create_task(self.sender.run(), name="timeseries-sender")
            if not await self._receive(sender):  # the bus closed: deliver until stopped
                await self._flush_all()
                await self._wait_stop(sender)
            self._take(self.sub.get_nowait(2**62))  # what the bus already holds
            await self._flush_all()
            if not await _until(self._drained(sender), self.clock, self._stop_timeout):
                log.warning(
                    "writer stopped with %d points in the outbox; they go out on the next start",
                    self.outbox.pending_count,
                )
        finally:
            try:
                await self._flush_all()  # cancelled: commit the open batch before going down
            finally:
                try:
                    if sender is not None:
                        sender.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await sender
                    await self.sink.close()
                finally:
                    self._running = False
                    self._stop_requested.clear()
                    self._done.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """Commit the open batch, deliver for up to ``timeout`` s, then end :meth:`run`.

        Called before :meth:`run` has started, the request waits for it: that
        ``run`` delivers what it can and returns at once.
        """
        self._stop_timeout = timeout
        self._stop_requested.set()
        if self._running:
            await self._done.wait()

    # -- receiving and batching ----------------------------------------------------
    async def _receive(self, sender: asyncio.Task[None]) -> bool:
        """Batch readings until a stop request (True) or the bus closing (False)."""
        stop = asyncio.ensure_future(self._stop_requested.wait())
        get: asyncio.Task[list[Message]] | None = None
        try:
            while True:
                if get is None:
                    get = asyncio.create_task(self.sub.get_batch(self.config.batch_size))
                waits: set[asyncio.Future[Any]] = {get, stop, sender}
                if self._timer is not None:
                    waits.add(self._timer)
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if sender in done:
                    sender.result()  # raises what ended it
                    raise RuntimeError("the sender ended unexpectedly")
                if get in done:
                    task, get = get, None
                    try:
                        self._take(task.result())
                    except BusClosed:
                        return False
                    await self._flush_full()
                if self._timer is not None and self._timer.done():
                    await self._flush_all()
                if stop in done:
                    return True
        finally:
            stop.cancel()
            if get is not None:
                if get.done() and not get.cancelled() and get.exception() is None:
                    self._take(get.result())  # taken from the bus just before a cancel
                get.cancel()  # a waiting get_batch has taken nothing

    def _take(self, msgs: list[Message]) -> None:
        readings = [m for m in msgs if type(m) is Reading]
        self.received += len(readings)
        kept = self.deadband.filter(readings)
        if kept:
            self._batch.extend(kept)
            if self._timer is None:
                self._timer = asyncio.ensure_future(self.clock.sleep(self.config.flush_interval_s))

    async def _flush_full(self) -> None:
        while len(self._batch) >= self.config.batch_size:
            await self._flush()

    async def _flush_all(self) -> None:
        while self._batch:
            await self._flush()

    async def _flush(self) -> None:
        """Commit up to ``batch_size`` of the oldest buffered readings to the outbox."""
        n = self.config.batch_size
        chunk, self._batch = self._batch[:n], self._batch[n:]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._batch:  # the rest starts a new batch
            self._timer = asyncio.ensure_future(self.clock.sleep(self.config.flush_interval_s))
        try:
            payload = codec.encode(chunk)
        except codec.CodecError:
            chunk = await self._drop_unencodable(chunk)
            if not chunk:
                return
            payload = codec.encode(chunk)
        put = asyncio.ensure_future(self.outbox.put(payload, len(chunk)))
        try:
            item_id = await asyncio.shield(put)
        except asyncio.CancelledError:
            # The put goes on in the outbox's thread: wait for it, so the chunk is
            # either committed or back in memory before this task ends.
            await asyncio.wait({put})
            if put.exception() is not None:
                self._batch[:0] = chunk
            raise
        except BaseException:
            self._batch[:0] = chunk  # keep it for the next try
            raise
        self.sender.notify(item_id, chunk)

    async def _drop_unencodable(self, chunk: list[Reading]) -> list[Reading]:
        """``chunk`` without the readings the codec cannot hold (quarantined as text)."""
        good: list[Reading] = []
        for r in chunk:
            try:
                codec.encode([r])
            except codec.CodecError as e:
                log.error("reading %r cannot be stored: %s", r, e)
                await self.outbox.quarantine(repr(r).encode(), f"unencodable: {e}")
                self.sender.quarantined += 1
            else:
                good.append(r)
        return good

    # -- stopping ----------------------------------------------------------------------
    async def _wait_stop(self, sender: asyncio.Task[None]) -> None:
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({stop, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if sender.done():
            sender.result()

    async def _drained(self, sender: asyncio.Task[None]) -> None:
        while not self.sender.idle:
            if sender.done():
                sender.result()
                return
            await self.sender.delivered.wait()
            self.sender.delivered.clear()
