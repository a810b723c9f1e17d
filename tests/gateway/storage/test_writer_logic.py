"""Writer behaviour on an injected clock: flushing, backoff, Retry-After, stop/cancel, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.bus import Bus
from gateway.clock import Clock, ManualClock, SystemClock
from gateway.config.storage import InfluxDB1SinkConfig, TimeseriesConfig
from gateway.driver import PointSpec
from gateway.model import Reading
from gateway.storage import codec
from gateway.storage.influxdb1 import InfluxDB1Sink
from gateway.storage.outbox import Outbox
from gateway.storage.sink import SeriesCatalog
from gateway.storage.writer import RetryPolicy, TimeseriesWriter
from tests.fixtures.servers import Server, free_port
from tests.gateway.storage.tsutil import eventually, influxql, scripted_server, unique

T0 = 1_767_225_600_000_000_000
NO_JITTER = RetryPolicy(initial_s=0.5, max_s=2.0, jitter=0.0)


@asynccontextmanager
async def writer_on(
    url: str,
    outbox: Outbox,
    clock: Clock,
    *,
    db: str = "db",
    points: tuple[PointSpec, ...] = (),
    retry: RetryPolicy = NO_JITTER,
    create_database: bool = True,
    **cfg: object,
) -> AsyncIterator[tuple[Bus, TimeseriesWriter, asyncio.Task[None]]]:
    sink_cfg = InfluxDB1SinkConfig(
        type="influxdb1", url=url, database=db, create_database=create_database
    )
    fields: dict[str, object] = {"flush_interval_s": 1.0, "default_heartbeat_s": None, **cfg}
    config = TimeseriesConfig(sink=sink_cfg, **fields)  # type: ignore[arg-type]
    bus = Bus()
    sub = bus.subscribe("timeseries", (Reading,), maxsize=100_000)
    sink = InfluxDB1Sink(sink_cfg, SeriesCatalog("estate", {"d": unique("k")}))
    writer = TimeseriesWriter(sub, sink, outbox, config, points, clock, retry=retry)
    task = asyncio.create_task(writer.run())
    try:
        yield bus, writer, task
    finally:
        if not task.done():
            stopping = asyncio.create_task(writer.stop(timeout=0.0))
            if isinstance(clock, ManualClock):
                await clock.advance(0)
            await stopping
        await asyncio.gather(task, return_exceptions=True)


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def readings(n: int, start: int = 0) -> list[Reading]:
    return [Reading("d.v", float(i), T0 + i) for i in range(start, start + n)]


async def test_a_partial_batch_waits_for_the_flush_interval(tmp_path: Path) -> None:
    clock = ManualClock()
    box = Outbox(tmp_path / "o.db")
    async with writer_on(dead_url(), box, clock, batch_size=100) as (bus, writer, _):
        await bus.publish_many(readings(3))
        await eventually(lambda: writer.stats().buffered_points == 3, what="buffered")
        await clock.advance(0.9)
        await asyncio.sleep(0.05)
        assert writer.stats().pending_points == 0  # not yet due
        await clock.advance(0.1)
        await eventually(lambda: writer.stats().pending_points == 3, what="flushed")
        assert writer.stats().buffered_points == 0
        # A full batch goes at once, without any time passing.
        await bus.publish_many(readings(100, 3))
        await eventually(lambda: writer.stats().pending_points == 103, what="full batch")
    await box.close()


async def test_backoff_doubles_on_the_clock_up_to_the_maximum(tmp_path: Path) -> None:
    clock = ManualClock()
    box = Outbox(tmp_path / "o.db")
    async with writer_on(dead_url(), box, clock) as (_, writer, _):
        await eventually(lambda: writer.stats().retries == 1, what="first failure")
        assert not writer.stats().sink_up and "unreachable" in writer.stats().last_error
        for wait, retries in [(0.5, 2), (1.0, 3), (2.0, 4), (2.0, 5)]:
            await clock.advance(wait * 0.9)
            await asyncio.sleep(0.05)
            assert writer.stats().retries == retries - 1  # still waiting
            await clock.advance(wait * 0.1)
            await eventually(lambda r=retries: writer.stats().retries == r, what="retry")  # type: ignore[misc]
    await box.close()


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    clock = ManualClock()
    box = Outbox(tmp_path / "o.db")
    async with scripted_server() as srv:
        srv.answer(429, '{"error":"slow down"}', {"Retry-After": "5"})
        async with writer_on(srv.url, box, clock, batch_size=1, create_database=False) as (
            bus,
            writer,
            _,
        ):
            await bus.publish(Reading("d.v", 1.0, T0))
            await eventually(lambda: writer.stats().retries == 1, what="throttled")
            await clock.advance(4.9)
            await asyncio.sleep(0.05)
            assert len(srv.requests) == 1
            await clock.advance(0.1)
            await eventually(lambda: writer.stats().written == 1, what="second try")
    assert len(srv.requests) == 2
    await box.close()


async def test_cancelling_run_commits_the_open_batch(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "o.db"
    box = Outbox(path)
    async with writer_on(dead_url(), box, clock, batch_size=1000) as (bus, writer, task):
        await bus.publish_many(readings(5))
        await eventually(lambda: writer.stats().buffered_points == 5, what="buffered")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await box.close()
    again = Outbox(path)
    (item,) = await again.peek(5)
    assert codec.decode(item.payload) == readings(5)
    await again.close()


async def test_deadband_filters_before_batching(tmp_path: Path) -> None:
    clock = ManualClock()
    box = Outbox(tmp_path / "o.db")
    points = (PointSpec("d", "v", deadband=1.0),)
    async with writer_on(dead_url(), box, clock, points=points, batch_size=3) as (bus, writer, _):
        values = [10.0, 10.5, 10.9, 11.5, 11.6, 12.6, 12.0]  # kept: 10.0, 11.5, 12.6
        await bus.publish_many([Reading("d.v", v, T0 + i) for i, v in enumerate(values)])
        # The batch is full after the sixth reading; wait for the seventh too
        # (it is filtered, so nothing else shows that it was taken).
        await eventually(
            lambda: writer.stats().pending_points == 3 and writer.stats().received == 7,
            what="one batch and every reading taken",
        )
        stats = writer.stats()
        assert (stats.received, stats.filtered_by_deadband) == (7, 4)
        (item,) = await box.peek(2)
        assert [r.value for r in codec.decode(item.payload)] == [10.0, 11.5, 12.6]
    await box.close()


async def test_the_outbox_limit_drops_the_oldest_and_the_writer_reports_it(tmp_path: Path) -> None:
    clock = ManualClock()
    box = Outbox(tmp_path / "o.db", max_count=30)
    async with writer_on(dead_url(), box, clock, batch_size=10) as (bus, writer, _):
        await bus.publish_many(readings(50))
        await eventually(lambda: writer.stats().dropped == 20, what="drops")
        assert writer.stats().pending_points == 30
        first = (await box.peek(1))[0]
        assert codec.decode(first.payload)[0].ts == T0 + 20  # the oldest went first
    await box.close()


async def test_an_undecodable_outbox_item_is_quarantined_and_the_rest_delivered(
    influxdb1: Server, tmp_path: Path
) -> None:
    box = Outbox(tmp_path / "o.db")
    await box.put(b"\x01[not json", 3)
    await box.put(codec.encode(readings(4)), 4)
    db = unique("db")
    async with writer_on(influxdb1.url, box, ManualClock(), db=db) as (_, writer, _):
        await eventually(lambda: writer.stats().written == 4, what="delivery")
        assert writer.stats().quarantined == 3
        (q,) = await box.quarantined()
    assert q.payload == b"\x01[not json" and q.error.startswith("undecodable")
    (series,) = await influxql(influxdb1.url, db, "SELECT count(v) FROM /.*/")
    assert series["values"][0][1] == 4
    await box.close()


async def test_a_server_down_at_boot_is_retried_until_it_is_up(
    influxdb1: Server, tmp_path: Path
) -> None:
    box = Outbox(tmp_path / "o.db")
    db = unique("db")
    fast = RetryPolicy(initial_s=0.02, max_s=0.1, jitter=0.0)
    influxdb1.stop()
    try:
        async with writer_on(
            influxdb1.url, box, SystemClock(), db=db, retry=fast, flush_interval_s=0.02
        ) as (bus, writer, _):
            await bus.publish_many(readings(4))
            await eventually(lambda: writer.stats().pending_points == 4, what="queued")
            await eventually(lambda: writer.stats().retries >= 2, what="retries")
            influxdb1.start()
            await eventually(lambda: writer.stats().written == 4, what="delivered")
            assert writer.stats().sink_up
    finally:
        if influxdb1.proc is None:
            influxdb1.start()
    (series,) = await influxql(influxdb1.url, db, "SELECT count(v) FROM /.*/")
    assert series["values"][0][1] == 4
    await box.close()


async def test_a_value_the_codec_cannot_hold_is_quarantined_as_text(tmp_path: Path) -> None:
    clock = ManualClock()
    box = Outbox(tmp_path / "o.db")
    odd = Reading("d.v", {"not": "a value"}, T0 + 1)  # type: ignore[arg-type]
    async with writer_on(dead_url(), box, clock, batch_size=3) as (bus, writer, _):
        await bus.publish_many([Reading("d.v", 1.0, T0), odd, Reading("d.v", 2.0, T0 + 2)])
        await eventually(lambda: writer.stats().pending_points == 2, what="the good ones")
        assert writer.stats().quarantined == 1
        (q,) = await box.quarantined()
    assert q.error.startswith("unencodable") and b"not" in q.payload
    await box.close()


async def test_the_same_writer_can_run_again_after_a_stop(
    influxdb1: Server, tmp_path: Path
) -> None:
    box = Outbox(tmp_path / "o.db")
    db = unique("db")
    async with writer_on(influxdb1.url, box, SystemClock(), db=db, flush_interval_s=0.02) as (
        bus,
        writer,
        task,
    ):
        await bus.publish_many(readings(3))
        await eventually(lambda: writer.stats().written == 3, what="first run")
        await writer.stop(timeout=5)
        await task
        again = asyncio.create_task(writer.run())  # the sink was closed: it is started again
        await bus.publish_many(readings(2, 3))
        await eventually(lambda: writer.stats().written == 5, what="second run")
        await writer.stop(timeout=5)
        await again
    (series,) = await influxql(influxdb1.url, db, "SELECT count(v) FROM /.*/")
    assert series["values"][0][1] == 5
    await box.close()
