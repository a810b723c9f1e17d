"""Embedded time-series sink on real SQLite files under tmp_path."""

from __future__ import annotations

import math
import random
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


ROLLUP = "SELECT minute, min, max, sum, count, last, last_ts FROM rollup_1m ORDER BY minute"


def _expected_rollups(samples: dict[int, float]) -> list[tuple[Any, ...]]:
    """What rollup_1m must hold for one point's numeric samples (ts -> value)."""
    minutes: dict[int, list[tuple[int, float]]] = {}
    for ts, v in sorted(samples.items()):
        minutes.setdefault(ts // MINUTE_NS * MINUTE_NS, []).append((ts, v))
    out = []
    for minute, rows in sorted(minutes.items()):
        values = [v for _, v in rows]
        last_ts, last = rows[-1]
        out.append((minute, min(values), max(values), sum(values), len(values), last, last_ts))
    return out


async def test_replay_and_correction_keep_rollups_exact(
    sink: EmbeddedSink, clock: ManualClock, db: Path
) -> None:
    t0 = clock.time_ns() // MINUTE_NS * MINUTE_NS
    # Quarter steps: every sum is exact whatever the order of addition.
    batch = [Reading("p.x", (i % 17) / 4, t0 + i * 500_000_000) for i in range(200)]
    await sink.write(batch)
    await sink.write(batch)  # replayed after a crash: nothing counted twice
    expected = {r.ts: float(r.value) for r in batch}
    assert _sql(db, ROLLUP) == _expected_rollups(expected)

    # The device corrects two samples (one of them its minute's last) and
    # a BAD quality and a text value take two more out of the rollups.
    corrected = [
        Reading("p.x", 100.0, t0 + 3 * 500_000_000),
        Reading("p.x", -7.5, t0 + 119 * 500_000_000),
        Reading("p.x", 2.0, t0 + 10 * 500_000_000, Quality.BAD),
        Reading("p.x", "fault", t0 + 11 * 500_000_000),
    ]
    await sink.write([*batch[:50], *corrected])  # a replay around the corrections
    expected[t0 + 3 * 500_000_000] = 100.0
    expected[t0 + 119 * 500_000_000] = -7.5
    del expected[t0 + 10 * 500_000_000], expected[t0 + 11 * 500_000_000]
    assert _sql(db, ROLLUP) == _expected_rollups(expected)
    await sink.write(corrected)  # a replayed correction changes nothing
    assert _sql(db, ROLLUP) == _expected_rollups(expected)
    assert _sql(db, "SELECT count(*) FROM samples") == [(200,)]


async def test_many_small_batches_into_one_minute(
    sink: EmbeddedSink, clock: ManualClock, db: Path
) -> None:
    rng = random.Random(7)
    t0 = clock.time_ns() // MINUTE_NS * MINUTE_NS
    points = ["a.t", "a.h", "b.t"]
    written: dict[str, dict[int, float]] = {p: {} for p in points}
    for _ in range(60):
        batch = []
        for _ in range(rng.randrange(1, 40)):
            point = rng.choice(points)
            # Out of order within the minute, with late older samples and
            # duplicates of stored (point, ts) pairs carrying the same value.
            ts = t0 + rng.randrange(0, 2 * MINUTE_NS, 1_000_000)
            value = written[point].get(ts, rng.randrange(-400, 400) / 8)
            written[point][ts] = value
            batch.append(Reading(point, value, ts))
        await sink.write(batch)
    ids = dict(_sql(db, "SELECT name, id FROM points"))
    for point in points:
        got = _sql(db, ROLLUP.replace("ORDER", f"WHERE point_id = {ids[point]} ORDER"))
        assert got == _expected_rollups(written[point])
    # history() reads the same rollups (the range reaches past raw retention).
    (row, _) = await sink.history("a.t", t0 - 8 * DAY, t0 + 2 * MINUTE_NS, max_points=10**6)
    first = _expected_rollups(written["a.t"])[0]
    assert (row.ts, row.min, row.max, row.count, row.last) == (t0, *first[1:3], *first[4:6])


async def test_duplicates_inside_one_batch_count_once_and_the_later_wins(
    sink: EmbeddedSink, clock: ManualClock, db: Path
) -> None:
    t0 = clock.time_ns() // MINUTE_NS * MINUTE_NS
    await sink.write([Reading("p.x", 1.0, t0), Reading("p.x", 2.0, t0), Reading("p.x", 2.0, t0)])
    assert _sql(db, ROLLUP) == [(t0, 2.0, 2.0, 2.0, 1, 2.0, t0)]
    assert (await sink.latest(["p.x"]))["p.x"].value == 2.0


async def test_a_late_older_sample_does_not_become_last(
    sink: EmbeddedSink, clock: ManualClock, db: Path
) -> None:
    t0 = clock.time_ns() // MINUTE_NS * MINUTE_NS
    await sink.write([Reading("p.x", 5.0, t0 + 30 * S)])
    await sink.write([Reading("p.x", 1.0, t0 + 10 * S)])
    assert _sql(db, ROLLUP) == [(t0, 1.0, 5.0, 6.0, 2, 5.0, t0 + 30 * S)]


async def test_correcting_the_only_numeric_sample_to_text_drops_its_rollup(
    sink: EmbeddedSink, clock: ManualClock, db: Path
) -> None:
    t0 = clock.time_ns() // MINUTE_NS * MINUTE_NS
    await sink.write([Reading("p.x", 5.0, t0), Reading("p.x", 6.0, t0 + MINUTE_NS)])
    await sink.write([Reading("p.x", "open", t0)])
    assert _sql(db, ROLLUP) == [(t0 + MINUTE_NS, 6.0, 6.0, 6.0, 1, 6.0, t0 + MINUTE_NS)]


async def test_late_data_and_replays_after_retention(
    sink: EmbeddedSink, clock: ManualClock, db: Path
) -> None:
    """Documented in gateway.storage.embedded: late data extends a minute while
    its raw samples are all there; once retention has cut a point, older
    samples are stored but kept out of its rollups (they could be replays)."""
    now = clock.time_ns() // MINUTE_NS * MINUTE_NS
    old = now - 10 * DAY
    await sink.write([Reading("p.x", 1.0, old), Reading("q.y", 1.0, now)])
    await sink.write([Reading("p.x", 2.0, old + S)])  # late, never pruned: extends
    assert _sql(db, ROLLUP)[0] == (old, 1.0, 2.0, 3.0, 2, 2.0, old + S)

    assert (await sink.maintain()).samples_deleted == 2
    await sink.write([Reading("p.x", 1.0, old), Reading("p.x", 2.0, old + S)])  # replay
    await sink.write([Reading("p.x", 9.0, old + 2 * S)])  # late for a pruned minute
    await sink.write([Reading("q.y", 3.0, old)])  # q.y was never cut: counted
    rollups = _sql(db, "SELECT point_id, minute, sum, count FROM rollup_1m ORDER BY 1, 2")
    assert rollups == [(1, old, 3.0, 2), (2, old, 3.0, 1), (2, now, 1.0, 1)]
    assert (await sink.maintain()).samples_deleted == 4  # stored until the next pass


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
    (Reading("p.x", 1.0, -(2**63)), "ts must be an int"),  # its minute is not 64-bit
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


async def test_replay_after_reopen_counts_nothing_twice(db: Path, clock: ManualClock) -> None:
    """The outbox replays right after a restart, into a freshly opened sink."""
    t0 = clock.time_ns() // MINUTE_NS * MINUTE_NS
    batch = _series("p.x", t0, 90)
    first = EmbeddedSink(EmbeddedSinkConfig(), db, clock)
    await first.start()
    await first.write(batch)
    await first.close()
    rollups = _sql(db, ROLLUP)
    again = EmbeddedSink(EmbeddedSinkConfig(), db, clock)
    await again.start()
    try:
        await again.write(batch)
        await again.write([*batch[-5:], Reading("p.x", 1.0, t0 + 90 * S)])
        assert _sql(db, ROLLUP) == [
            rollups[0],
            (t0 + MINUTE_NS, 1.0, 89.0, sum(range(60, 90)) + 1.0, 31, 1.0, t0 + 90 * S),
        ]
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


async def test_file_of_an_older_schema_is_refused(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE samples (point_id INTEGER, ts INTEGER)")
        conn.execute("PRAGMA user_version = 1")
    with pytest.raises(EmbeddedSinkError, match=r"schema version 1; .* development build"):
        await EmbeddedSink(EmbeddedSinkConfig(), db).start()


async def test_infinities_of_both_signs_in_one_minute(
    sink: EmbeddedSink, clock: ManualClock
) -> None:
    """Their sum is undefined: stored as NULL, read back as a NaN mean."""
    t0 = clock.time_ns() // MINUTE_NS * MINUTE_NS
    await sink.write([Reading("p.x", math.inf, t0), Reading("p.x", 1.0, t0 + S)])
    await sink.write([Reading("p.x", -math.inf, t0 + 2 * S)])
    await sink.write([Reading("p.x", 4.0, t0 + MINUTE_NS)])
    rows = await sink.history("p.x", t0 - 8 * DAY, t0 + 2 * MINUTE_NS, max_points=10**6)
    assert [(r.min, r.max, r.count, r.last) for r in rows] == [
        (-math.inf, math.inf, 3, -math.inf),
        (4.0, 4.0, 1, 4.0),
    ]
    assert math.isnan(rows[0].value_or_mean) and rows[1].value_or_mean == 4.0
    (merged,) = await sink.history("p.x", t0 - 8 * DAY, t0 + 2 * MINUTE_NS, max_points=1)
    assert math.isnan(merged.value_or_mean) and merged.count == 4


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
