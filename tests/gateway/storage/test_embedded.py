"""Embedded time-series sink on real SQLite files under tmp_path."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gateway.clock import ManualClock
from gateway.config.storage import EmbeddedSinkConfig
from gateway.model import Quality, Reading
from gateway.storage.embedded import EmbeddedSink, EmbeddedSinkError
from gateway.storage.embedded_query import MINUTE_NS, bucket_minutes
from gateway.storage.sink import PointsRejected, Sink, SinkError, SinkUnavailable

S = 1_000_000_000
DAY = 86_400 * S


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "timeseries.db"


@pytest_asyncio.fixture(loop_scope="function")
async def sink(db: Path, clock: ManualClock) -> AsyncIterator[EmbeddedSink]:
    s = EmbeddedSink(EmbeddedSinkConfig(), db, clock)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


def _sql(db: Path, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the sink's file from outside, as another process would (WAL allows it)."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def _series(point: str, t0: int, n: int, step: int = S) -> list[Reading]:
    return [Reading(point, float(i % 100), t0 + i * step) for i in range(n)]


async def test_is_a_sink_and_constructor_does_no_io(db: Path) -> None:
    s: Sink = EmbeddedSink(EmbeddedSinkConfig(), db)
    assert s.name == "embedded"
    assert not db.parent.exists()
    with pytest.raises(SinkError, match="not started"):
        await s.write([Reading("a.b", 1.0, 1)])


async def test_file_is_wal_with_the_documented_schema(sink: EmbeddedSink, db: Path) -> None:
    assert _sql(db, "PRAGMA journal_mode") == [("wal",)]
    tables = {name for (name,) in _sql(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"points", "samples", "rollup_1m"}


VALUES: list[tuple[str, Any]] = [
    ("m.float", 0.1),
    ("m.tiny", 1e-300),
    ("m.huge", 1.7976931348623157e308),
    ("m.inf", math.inf),
    ("m.neg_inf", -math.inf),
    ("m.int", -42),
    ("m.big_int", 2**53 + 1),  # not exact as a REAL
    ("m.int64", -(2**63)),
    ("m.true", True),
    ("m.false", False),
    ("m.text", '3号楼 "东门" it\'s 打开'),
    ("m.empty", ""),
]


async def test_exact_round_trip_of_every_value_kind(sink: EmbeddedSink, clock: ManualClock) -> None:
    now = clock.time_ns()
    readings = [Reading(p, v, now + i, Quality.GOOD) for i, (p, v) in enumerate(VALUES)]
    readings.append(Reading("m.nan", math.nan, now, Quality.UNCERTAIN))
    readings.append(Reading("m.bad", 7, now, Quality.BAD))
    await sink.write(readings)
    got = await sink.latest([r.point for r in readings])
    for r in readings[:-2] + readings[-1:]:
        assert got[r.point] == r
        assert type(got[r.point].value) is type(r.value)
    nan = got["m.nan"]
    assert math.isnan(nan.value) and nan.quality is Quality.UNCERTAIN  # type: ignore[arg-type]


async def test_replayed_batch_does_not_duplicate(
    sink: EmbeddedSink, clock: ManualClock, db: Path
) -> None:
    t0 = clock.time_ns() // MINUTE_NS * MINUTE_NS
    batch = [*_series("tx1.temp", t0, 150), Reading("tx1.state", "ok", t0)]
    await sink.write(batch)
    samples = _sql(db, "SELECT * FROM samples ORDER BY point_id, ts")
    rollups = _sql(db, "SELECT * FROM rollup_1m ORDER BY point_id, minute")
    assert len(samples) == 151
    assert [r[5] for r in rollups] == [60, 60, 30]  # counts per minute, numeric only

    await sink.write(batch)  # the outbox re-sends it after a crash
    await sink.write(batch[100:120])  # and a partial overlap
    assert _sql(db, "SELECT * FROM samples ORDER BY point_id, ts") == samples
    assert _sql(db, "SELECT * FROM rollup_1m ORDER BY point_id, minute") == rollups


async def test_rollups_follow_replaced_values_and_split_batches(
    sink: EmbeddedSink, clock: ManualClock
) -> None:
    t0 = clock.time_ns() // MINUTE_NS * MINUTE_NS
    await sink.write([Reading("p.x", 1.0, t0), Reading("p.x", 5.0, t0 + 10 * S)])
    await sink.write([Reading("p.x", 3.0, t0 + 20 * S), Reading("p.x", 9.0, t0 + 10 * S)])
    await sink.write([Reading("p.x", True, t0 + 30 * S)])  # a bool counts as 1
    # A range reaching past raw retention is answered from the rollups.
    (row,) = await sink.history("p.x", t0 - 10 * DAY, t0 + MINUTE_NS, max_points=100_000)
    assert (row.ts, row.min, row.max, row.count, row.last) == (t0, 1.0, 9.0, 4, 1.0)
    assert row.value_or_mean == pytest.approx((1 + 9 + 3 + 1) / 4)


async def test_text_and_bad_samples_stay_out_of_history_and_rollups(
    sink: EmbeddedSink, clock: ManualClock
) -> None:
    t0 = clock.time_ns()
    await sink.write(
        [
            Reading("p.x", 1.0, t0),
            Reading("p.x", "fault", t0 + S),
            Reading("p.x", 1e9, t0 + 2 * S, Quality.BAD),
            Reading("p.x", 3.0, t0 + 3 * S, Quality.UNCERTAIN),
        ]
    )
    raw = await sink.history("p.x", t0, t0 + 10 * S)
    assert [(r.ts, r.value_or_mean, r.count) for r in raw] == [(t0, 1.0, 1), (t0 + 3 * S, 3.0, 1)]
    rolled = await sink.history("p.x", t0, t0 + 10 * S, max_points=1)
    assert sum(r.count for r in rolled) == 2 and max(r.max for r in rolled) == 3.0


async def test_retention_follows_the_clock(
    sink: EmbeddedSink, clock: ManualClock, db: Path
) -> None:
    now = clock.time_ns()
    await sink.write(
        [
            Reading("p.x", 1.0, now - 500 * DAY),  # past rollup retention (400 d)
            Reading("p.x", 2.0, now - 10 * DAY),  # past raw retention (7 d)
            Reading("p.x", 3.0, now - 1 * DAY),
            Reading("p.x", 4.0, now),
        ]
    )
    result = await sink.maintain()
    assert (result.samples_deleted, result.rollups_deleted) == (2, 1)
    assert [ts for (ts,) in _sql(db, "SELECT ts FROM samples")] == [now - DAY, now]
    assert len(_sql(db, "SELECT * FROM rollup_1m")) == 3

    await clock.advance(2 * 86_400)
    result = await sink.maintain()
    assert (result.samples_deleted, result.rollups_deleted) == (0, 0)
    await clock.advance(6 * 86_400)
    result = await sink.maintain()
    assert (result.samples_deleted, result.rollups_deleted) == (2, 0)
    # Old data is still there as rollups.
    rows = await sink.history("p.x", now - 20 * DAY, now + MINUTE_NS)
    assert [r.value_or_mean for r in rows] == [2.0, 3.0, 4.0]


async def test_a_write_an_hour_later_applies_retention(
    sink: EmbeddedSink, clock: ManualClock, db: Path
) -> None:
    now = clock.time_ns()
    await sink.write([Reading("p.x", 1.0, now - 8 * DAY)])  # just written, not yet pruned
    assert len(_sql(db, "SELECT * FROM samples")) == 1
    await clock.advance(3601)
    await sink.write([Reading("p.x", 2.0, now)])
    assert _sql(db, "SELECT ts FROM samples") == [(now,)]


async def test_history_switches_resolution(sink: EmbeddedSink, clock: ManualClock) -> None:
    t0 = clock.time_ns() // MINUTE_NS * MINUTE_NS - 2 * 3600 * S
    await sink.write(_series("m.kw", t0, 7200))  # two hours at 1 Hz
    end = t0 + 7200 * S

    raw = await sink.history("m.kw", t0, end, max_points=10_000)
    assert len(raw) == 7200 and all(r.count == 1 for r in raw)
    assert raw[1].ts == t0 + S and raw[1].value_or_mean == 1.0

    minutes = await sink.history("m.kw", t0, end, max_points=1000)
    assert len(minutes) == 120
    assert all(r.count == 60 for r in minutes)
    assert [r.ts for r in minutes[:2]] == [t0, t0 + MINUTE_NS]

    for max_points in (50, 7, 1):
        rows = await sink.history("m.kw", t0, end, max_points=max_points)
        assert 1 <= len(rows) <= max_points
        assert sum(r.count for r in rows) == 7200
        assert min(r.min for r in rows) == 0.0 and max(r.max for r in rows) == 99.0
        assert rows[-1].last == float(7199 % 100)

    # Once the range is older than raw retention, rollups answer even if raw would fit.
    await clock.advance(8 * 86_400)
    old = await sink.history("m.kw", t0, end, max_points=10_000)
    assert len(old) == 120


@pytest.mark.parametrize(
    ("start_min", "end_min", "max_points"),
    [(0, 120, 1000), (5, 11, 1), (29_000_000, 29_576_000, 1000), (7, 8, 3), (3, 1000, 7)],
)
def test_bucket_grid_never_exceeds_max_points(
    start_min: int, end_min: int, max_points: int
) -> None:
    n, origin = bucket_minutes(start_min * MINUTE_NS, end_min * MINUTE_NS, max_points)
    width = n * MINUTE_NS
    first = (start_min * MINUTE_NS - origin) // width
    last = (end_min * MINUTE_NS - 1 - origin) // width
    assert last - first + 1 <= max_points


async def test_history_edge_cases(sink: EmbeddedSink, clock: ManualClock) -> None:
    now = clock.time_ns()
    await sink.write([Reading("p.x", 1.0, now)])
    assert await sink.history("no.such", now - S, now + S) == []
    assert await sink.history("p.x", now, now) == []
    with pytest.raises(ValueError, match="max_points"):
        await sink.history("p.x", now, now + S, max_points=0)
    with pytest.raises(TypeError, match="start must be int"):
        await sink.history("p.x", 1.5, now)  # type: ignore[arg-type]


async def test_latest_picks_the_newest_sample(sink: EmbeddedSink, clock: ManualClock) -> None:
    now = clock.time_ns()
    await sink.write([Reading("a.x", 2.0, now + S), Reading("b.y", "开", now)])
    await sink.write([Reading("a.x", 1.0, now)])  # late, older sample
    got = await sink.latest(["a.x", "b.y", "c.never"])
    assert got == {"a.x": Reading("a.x", 2.0, now + S), "b.y": Reading("b.y", "开", now)}
    assert await sink.latest("a.x") == {"a.x": Reading("a.x", 2.0, now + S)}


BAD_READINGS: list[tuple[Any, str]] = [
    (Reading("p.x", None, 1), "value of type NoneType"),  # type: ignore[arg-type]
    (Reading("p.x", [1, 2], 1), "value of type list"),  # type: ignore[arg-type]
    (Reading("p.x", 1.0, 1.5), "ts must be an int"),  # type: ignore[arg-type]
    (Reading("p.x", 1.0, True), "ts must be an int"),
    (Reading("p.x", 1.0, 2**63), "ts must be an int"),
    (Reading("", 1.0, 1), "point must be a non-empty str"),
    (Reading(7, 1.0, 1), "point must be a non-empty str"),  # type: ignore[arg-type]
    (Reading(["p", "x"], 1.0, 1), "point must be a non-empty str"),  # type: ignore[arg-type]
    (Reading("p.\ud800", 1.0, 1), "not valid Unicode"),
    (Reading("p.x", "\ud800", 1), "not valid Unicode"),
    (Reading("p.x", 1.0, 1, "excellent"), "unknown quality"),  # type: ignore[arg-type]
    (Reading("p.x", 10**400, 1), "too large"),
    (("p.x", 1.0, 1), "expected Reading"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_READINGS)
async def test_bad_reading_is_named_and_nothing_is_written(
    sink: EmbeddedSink, db: Path, bad: Any, reason: str
) -> None:
    good = [Reading("ok.a", 1.0, 10), Reading("ok.new", 2.0, 20)]
    with pytest.raises(PointsRejected, match=reason) as info:
        await sink.write([good[0], bad, good[1], bad])
    assert info.value.bad == (1, 3)
    assert _sql(db, "SELECT count(*) FROM samples") == [(0,)]
    assert _sql(db, "SELECT count(*) FROM points") == [(0,)]
    await sink.write(good)  # the writer resends the rest
    assert len(await sink.latest(["ok.a", "ok.new"])) == 2


async def test_reopen_keeps_data_and_point_ids(db: Path, clock: ManualClock) -> None:
    first = EmbeddedSink(EmbeddedSinkConfig(), db, clock)
    await first.start()
    await first.write([Reading("p.x", 1.0, clock.time_ns())])
    await first.close()
    await first.close()  # idempotent
    again = EmbeddedSink(EmbeddedSinkConfig(), db, clock)
    await again.start()
    try:
        await again.write([Reading("p.x", 2.0, clock.time_ns() + S), Reading("q.y", 3, 1)])
        assert (await again.latest(["p.x"]))["p.x"].value == 2.0
        assert _sql(db, "SELECT name, id FROM points ORDER BY id") == [("p.x", 1), ("q.y", 2)]
    finally:
        await again.close()


async def test_newer_schema_version_is_refused(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    s = EmbeddedSink(EmbeddedSinkConfig(), db)
    with pytest.raises(EmbeddedSinkError, match="schema version 99"):
        await s.start()
    with pytest.raises(SinkError, match="not started"):  # start failed: nothing left open
        await s.write([Reading("a.b", 1.0, 1)])


async def test_unwritable_location_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    s = EmbeddedSink(EmbeddedSinkConfig(), tmp_path / "file" / "ts.db")
    with pytest.raises(SinkUnavailable, match="cannot create"):
        await s.start()


@pytest.fixture
def garbage_db(db: Path) -> Path:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not sqlite" * 100)
    return db


async def test_not_a_database_is_unavailable(garbage_db: Path) -> None:
    db = garbage_db
    with pytest.raises(SinkUnavailable, match="not a database"):
        await EmbeddedSink(EmbeddedSinkConfig(), db).start()
