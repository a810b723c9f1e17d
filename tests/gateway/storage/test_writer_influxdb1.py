"""The writer end to end into a real InfluxDB 1.x: exact data, outages, splits, quarantine."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.bus import Bus
from gateway.config.storage import InfluxDB1SinkConfig, TimeseriesConfig
from gateway.model import Reading
from gateway.storage import codec
from gateway.storage.influxdb1 import InfluxDB1Sink
from gateway.storage.outbox import Outbox
from gateway.storage.sink import SeriesCatalog
from gateway.storage.writer import RetryPolicy, TimeseriesWriter
from tests.fixtures.servers import Server, free_port
from tests.gateway.storage.tsutil import RecordingSink, eventually, influxql, unique

FAST = RetryPolicy(initial_s=0.02, max_s=0.2, jitter=0.0)
T0 = 1_767_225_600_000_000_000


@dataclass
class Rig:
    bus: Bus
    writer: TimeseriesWriter
    sink: RecordingSink
    outbox: Outbox
    kind: str
    db: str

    async def publish(self, readings: Sequence[Reading]) -> None:
        await self.bus.publish_many(readings)


def make_config(url: str, db: str, **kw: object) -> TimeseriesConfig:
    fields: dict[str, object] = {"flush_interval_s": 0.02, "default_heartbeat_s": None, **kw}
    sink = InfluxDB1SinkConfig(type="influxdb1", url=url, database=db)
    return TimeseriesConfig(sink=sink, **fields)  # type: ignore[arg-type]


@asynccontextmanager
async def rig(
    url: str, outbox_path: Path, *, db: str | None = None, kind: str | None = None, **kw: object
) -> AsyncIterator[Rig]:
    db = db or unique("db")
    kind = kind or unique("k")
    cfg = make_config(url, db, **kw)
    assert isinstance(cfg.sink, InfluxDB1SinkConfig)
    bus = Bus()
    sub = bus.subscribe("timeseries", (Reading,), maxsize=100_000)
    catalog = SeriesCatalog("estate", {f"d{i}": kind for i in range(10)})
    sink = RecordingSink(InfluxDB1Sink(cfg.sink, catalog))
    outbox = Outbox(outbox_path)
    writer = TimeseriesWriter(sub, sink, outbox, cfg, retry=FAST)
    task = asyncio.create_task(writer.run())
    try:
        yield Rig(bus, writer, sink, outbox, kind, db)
    finally:
        await writer.stop(timeout=30)
        await task
        await outbox.close()


def stream(n: int, start: int = 0) -> list[Reading]:
    """Distinct values (ints and floats) on 10 points, odd ns timestamps."""
    return [
        Reading(f"d{i % 10}.p{i % 3}", (i * 1.25 + 0.1) if i % 4 else i, T0 + i * 1_000_003 + 7)
        for i in range(start, start + n)
    ]


async def stored(url: str, db: str, kind: str) -> dict[tuple[str, str, int], object]:
    """Everything in the measurement, by (device, field, ts)."""
    out: dict[tuple[str, str, int], object] = {}
    for s in await influxql(url, db, f'SELECT * FROM "{kind}" GROUP BY "device"'):
        cols = s["columns"]
        for row in s["values"]:
            for col, v in zip(cols[1:], row[1:], strict=True):
                if v is not None and col not in ("kind", "site"):
                    out[(s["tags"]["device"], col, row[0])] = v
    return out


def expected(readings: Sequence[Reading]) -> dict[tuple[str, str, int], object]:
    def value(v: object) -> object:
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    return {(*r.point.split("."), r.ts): value(r.value) for r in readings}  # type: ignore[misc]


async def test_ten_thousand_readings_arrive_exactly(influxdb1: Server, tmp_path: Path) -> None:
    readings = stream(10_000)
    async with rig(influxdb1.url, tmp_path / "o.db", batch_size=1000) as r:
        await r.publish(readings)
        await eventually(lambda: r.writer.stats().written == 10_000, what="10k written")
        stats = r.writer.stats()
    assert stats.received == 10_000 and stats.filtered_by_deadband == 0
    assert stats.pending_points == 0 and stats.quarantined == 0 and stats.sink_up
    assert await stored(influxdb1.url, r.db, r.kind) == expected(readings)


async def test_historian_outage_every_point_once_in_order(
    influxdb1: Server, tmp_path: Path
) -> None:
    readings = stream(6000)
    # Small batches: the outage leaves more items than the sender reads ahead.
    async with rig(influxdb1.url, tmp_path / "o.db", batch_size=100) as r:
        await r.publish(readings[:2000])
        await eventually(lambda: r.writer.stats().written == 2000, what="first part")
        influxdb1.stop()
        try:
            await r.publish(readings[2000:4000])
            await eventually(lambda: not r.writer.stats().sink_up, what="sink seen down")
            await eventually(lambda: r.writer.stats().pending_points == 2000, what="outbox")
        finally:
            influxdb1.start()
        await r.publish(readings[4000:])
        await eventually(lambda: r.writer.stats().written == 6000, what="all written")
        stats = r.writer.stats()
    assert stats.retries > 0 and stats.sink_up
    assert r.sink.accepted == readings  # each once, in order, original timestamps
    assert await stored(influxdb1.url, r.db, r.kind) == expected(readings)


async def test_a_new_writer_delivers_what_a_stopped_one_left(
    influxdb1: Server, tmp_path: Path
) -> None:
    readings = stream(3000)
    path = tmp_path / "o.db"
    dead = f"http://127.0.0.1:{free_port()}"
    db, kind = unique("db"), unique("k")
    async with rig(dead, path, db=db, kind=kind, batch_size=1000) as r:
        await r.publish(readings[:2500])
        await eventually(lambda: r.writer.stats().retries > 0, what="a failed try")
        # The context stops the writer (timeout 30 s would wait: stop it sooner).
        await r.writer.stop(timeout=0.05)
    left = Outbox(path)
    await left.open()
    assert left.pending_count == 2500  # the partial batch was committed too
    await left.close()
    async with rig(influxdb1.url, path, db=db, kind=kind, batch_size=1000) as r2:
        await r2.publish(readings[2500:])
        await eventually(lambda: r2.writer.stats().written == 3000, what="replay")
    assert r2.sink.accepted == readings  # the old outbox first, then the new points
    assert await stored(influxdb1.url, db, kind) == expected(readings)


async def test_a_field_type_conflict_is_quarantined_and_the_rest_arrives(
    influxdb1: Server, tmp_path: Path
) -> None:
    good = stream(2000)
    bad = Reading("d1.p1", "not a number", T0 + 5)  # d1.p1 is a float field
    readings = [*good[:1000], bad, *good[1000:]]
    async with rig(influxdb1.url, tmp_path / "o.db", batch_size=2000) as r:
        await r.publish(readings[:10])
        await eventually(lambda: r.writer.stats().written == 10, what="first points")
        await r.publish(readings[10:])
        await eventually(lambda: r.writer.stats().quarantined == 1, what="quarantine")
        await eventually(lambda: r.writer.stats().pending_points == 0, what="the rest")
        (q,) = await r.outbox.quarantined(10)
    assert "field type conflict" in q.error
    assert codec.decode(q.payload) == [bad]
    assert await stored(influxdb1.url, r.db, r.kind) == expected(good)


async def test_too_large_batches_are_split_and_everything_arrives(
    influxdb1: Server, tmp_path: Path
) -> None:
    readings = stream(60_000)
    async with rig(influxdb1.url, tmp_path / "o.db", batch_size=60_000, flush_interval_s=5) as r:
        await r.publish(readings)
        await eventually(lambda: r.writer.stats().written == 60_000, what="60k written")
        stats = r.writer.stats()
    assert stats.split >= 1 and stats.quarantined == 0
    assert r.sink.accepted == readings
    assert len(await stored(influxdb1.url, r.db, r.kind)) == 60_000


async def test_nan_and_infinity_are_quarantined(influxdb1: Server, tmp_path: Path) -> None:
    good = stream(100)
    readings = [
        *good[:50],
        Reading("d0.p0", math.nan, 1),
        *good[50:],
        Reading("d2.p0", math.inf, 2),
    ]
    async with rig(influxdb1.url, tmp_path / "o.db") as r:
        await r.publish(readings)
        await eventually(lambda: r.writer.stats().written == 100, what="good points")
        await eventually(lambda: r.writer.stats().quarantined == 2, what="quarantine")
        q = await r.outbox.quarantined(10)
    assert [codec.decode(x.payload)[0].ts for x in q] == [1, 2]
    assert all("cannot be stored" in x.error for x in q)
    assert await stored(influxdb1.url, r.db, r.kind) == expected(good)


async def test_points_the_server_drops_without_naming_them_are_bisected(
    influxdb1: Server, tmp_path: Path
) -> None:
    db = unique("rp")
    await influxql(influxdb1.url, "", f'CREATE DATABASE "{db}" WITH DURATION 1h')
    now = time.time_ns()  # the retention policy judges by the server's clock
    fresh = [Reading(f"d{i % 10}.p", float(i), now - i) for i in range(64)]
    old = [Reading("d3.p", 1.5, now - 7200 * 10**9), Reading("d4.p", 2.5, now - 7300 * 10**9)]
    readings = [*fresh[:20], old[0], *fresh[20:50], old[1], *fresh[50:]]
    async with rig(influxdb1.url, tmp_path / "o.db", db=db, batch_size=1000) as r:
        await r.publish(readings)
        await eventually(lambda: r.writer.stats().quarantined == 2, what="bisection")
        await eventually(lambda: r.writer.stats().pending_points == 0, what="the rest")
        stats = r.writer.stats()
        q = await r.outbox.quarantined(10)
    assert stats.split > 0
    assert sorted(codec.decode(x.payload)[0].ts for x in q) == sorted(o.ts for o in old)
    assert all("retention policy" in x.error for x in q)
    assert len(await stored(influxdb1.url, db, r.kind)) == 64


async def test_a_single_point_too_large_for_the_server_is_quarantined(
    influxdb1: Server, tmp_path: Path
) -> None:
    good = stream(4)
    huge = Reading("d5.note", "x" * 4_500_000, T0 + 1)  # alone over the 4 MB body limit
    async with rig(influxdb1.url, tmp_path / "o.db", batch_size=5) as r:
        await r.publish([good[0], good[1], huge, good[2], good[3]])
        await eventually(lambda: r.writer.stats().quarantined == 1, what="quarantine")
        await eventually(lambda: r.writer.stats().pending_points == 0, what="the rest")
        (q,) = await r.outbox.quarantined(10)
    assert "too large" in q.error
    assert codec.decode(q.payload) == [huge]
    assert r.sink.accepted == good
