"""The embedded time-series store's tables and the SQL on them.

The embedded sink (:mod:`gateway.storage.embedded`) validates readings,
owns the connection, its transactions and retention; this module holds the
schema, :func:`store` (samples and incremental rollups, replay-safe) and
the queries. Three tables::

    points(id, name, pruned_before)                    one row per point name
    samples(point_id, ts, value, text, quality, kind)  raw samples, WITHOUT ROWID
    rollup_1m(point_id, minute, min, max, sum, count, last, last_ts)
                                                       1-minute rollups, WITHOUT ROWID

``value`` is REAL (bools as 0/1, NULL for text and NaN); ``text`` holds str
values, and the exact decimal of ints beyond +/-2**53 that a REAL cannot
hold; ``quality`` and ``kind`` are small ints (:data:`QUALITY_CODES`,
:data:`KIND_*`). Rollups and history cover numeric samples (bools count as
0/1) whose quality is not BAD. ``last`` is the value of the newest sample
(``last_ts``) of the minute; ``sum`` is NULL when it is undefined (the
minute holds both +inf and -inf), and the mean then reads as NaN.

``points.pruned_before`` is where retention last cut the point's raw
samples (a minute boundary); rollups before it are final.

The functions here take the sink's ``sqlite3.Connection`` and must run on
the thread that owns it, inside its transaction for :func:`store`.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from gateway.model import Quality, Reading, Value

__all__ = [
    "KIND_BOOL",
    "KIND_FLOAT",
    "KIND_INT",
    "KIND_STR",
    "MAX_TS",
    "MINUTE_NS",
    "MIN_TS",
    "NUMERIC",
    "QUALITY_BAD",
    "QUALITY_CODES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "HistoryRow",
    "SampleRow",
    "bucket_minutes",
    "decode",
    "history",
    "latest",
    "store",
]

MINUTE_NS = 60_000_000_000

KIND_FLOAT, KIND_INT, KIND_BOOL, KIND_STR = 0, 1, 2, 3

QUALITY_CODES: Mapping[Quality, int] = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}
QUALITY_BAD = QUALITY_CODES[Quality.BAD]
_QUALITIES = {code: q for q, code in QUALITY_CODES.items()}

# Numeric samples that history and rollups are made of.
NUMERIC = f"value IS NOT NULL AND quality < {QUALITY_BAD}"

SCHEMA_VERSION = 2
_INT64_MIN = -(2**63)
MAX_TS = 2**63 - 1
MIN_TS = -(2**63 // MINUTE_NS) * MINUTE_NS  # the earliest ts whose minute is 64-bit
_NO_TS = MIN_TS - 1  # below every storable ts: "the point has no samples"

# (point_id, ts, value, text, quality, kind): one encoded sample.
SampleRow = tuple[int, int, float | None, str | None, int, int]
# (point_id, minute) -> [min, max, sum, count, last, last_ts] of new samples
_Rollups = dict[tuple[int, int], list[Any]]

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    pruned_before INTEGER NOT NULL DEFAULT ({_INT64_MIN})
);
CREATE TABLE IF NOT EXISTS samples (
    point_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL,
    text TEXT,
    quality INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    PRIMARY KEY (point_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1m (
    point_id INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    sum REAL,
    count INTEGER NOT NULL,
    last REAL NOT NULL,
    last_ts INTEGER NOT NULL,
    PRIMARY KEY (point_id, minute)
) WITHOUT ROWID;
PRAGMA user_version = {SCHEMA_VERSION};
"""

_INSERT_SAMPLE = "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?)"
_FIND_SAMPLE = "SELECT value, text, quality, kind FROM samples WHERE point_id = ? AND ts = ?"
_UPDATE_SAMPLE = (
    "UPDATE samples SET value = ?3, text = ?4, quality = ?5, kind = ?6"
    " WHERE point_id = ?1 AND ts = ?2"
)
_ADD_ROLLUP = """
INSERT INTO rollup_1m (point_id, minute, min, max, sum, count, last, last_ts)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (point_id, minute) DO UPDATE SET
    min = min(rollup_1m.min, excluded.min),
    max = max(rollup_1m.max, excluded.max),
    sum = rollup_1m.sum + excluded.sum,
    count = rollup_1m.count + excluded.count,
    last = CASE WHEN excluded.last_ts > rollup_1m.last_ts
                THEN excluded.last ELSE rollup_1m.last END,
    last_ts = max(rollup_1m.last_ts, excluded.last_ts)
"""
_DELETE_ROLLUP = "DELETE FROM rollup_1m WHERE point_id = ?1 AND minute = ?2"
_RECOMPUTE_ROLLUP = f"""
INSERT INTO rollup_1m (point_id, minute, min, max, sum, count, last, last_ts)
SELECT ?1, ?2, min(value), max(value), sum(value), count(value),
       (SELECT value FROM samples
        WHERE point_id = ?1 AND ts >= ?2 AND ts < ?2 + {MINUTE_NS} AND {NUMERIC}
        ORDER BY ts DESC LIMIT 1),
       max(ts)
FROM samples
WHERE point_id = ?1 AND ts >= ?2 AND ts < ?2 + {MINUTE_NS} AND {NUMERIC}
HAVING count(value) > 0
"""


# -- writing ---------------------------------------------------------------


def store(
    conn: sqlite3.Connection,
    rows: Iterable[SampleRow],
    max_ts: MutableMapping[int, int],
    pruned: Mapping[int, int],
) -> dict[int, int]:
    """Write valid ``rows`` (unique keys) and bring their rollups up to date.

    The rules are those of :mod:`gateway.storage.embedded`: a sample newer
    than ``max_ts[point]`` (an upper bound of the point's newest stored ts,
    read here when missing) is new; any other is looked up, skipped when
    identical, updated when different (its minute then recomputed from the
    raw samples). New numeric samples at or after ``pruned[point]`` (the
    point's ``pruned_before``) are added to their minutes' rollups.

    Returns the newest inserted ts of each point; the caller raises
    ``max_ts`` to it once the transaction has committed.
    """
    inserts: list[SampleRow] = []
    updates: list[SampleRow] = []
    for row in rows:
        point_id, ts = row[0], row[1]
        known = max_ts.get(point_id)
        if known is None:
            (stored_max,) = conn.execute(
                "SELECT max(ts) FROM samples WHERE point_id = ?", (point_id,)
            ).fetchone()
            known = max_ts[point_id] = _NO_TS if stored_max is None else stored_max
        if ts > known:
            inserts.append(row)
            continue
        stored = conn.execute(_FIND_SAMPLE, (point_id, ts)).fetchone()
        if stored is None:
            inserts.append(row)
        elif stored != row[2:]:
            updates.append(row)
        # else: the same sample again (a replay), counted nowhere

    added, newest = _new_rollups(inserts, pruned)
    corrected = {
        (point_id, ts - ts % MINUTE_NS)
        for point_id, ts, *_ in updates
        if ts >= pruned.get(point_id, _INT64_MIN)
    }
    conn.executemany(_INSERT_SAMPLE, inserts)
    conn.executemany(_UPDATE_SAMPLE, updates)
    conn.executemany(
        _ADD_ROLLUP,
        [(*key, *agg) for key, agg in added.items() if key not in corrected],
    )
    keys = sorted(corrected)
    conn.executemany(_DELETE_ROLLUP, keys)
    conn.executemany(_RECOMPUTE_ROLLUP, keys)
    return newest


def _new_rollups(
    inserts: list[SampleRow], pruned: Mapping[int, int]
) -> tuple[_Rollups, dict[int, int]]:
    """Rollups of the counted samples among ``inserts``, and newest ts per point."""
    minute_ns = MINUTE_NS
    bad = QUALITY_BAD
    added: _Rollups = {}
    newest: dict[int, int] = {}
    for point_id, ts, v, _, quality, _ in inserts:
        if ts > newest.get(point_id, _NO_TS):
            newest[point_id] = ts
        if v is None or quality >= bad or ts < pruned.get(point_id, _INT64_MIN):
            continue
        key = (point_id, ts - ts % minute_ns)
        agg = added.get(key)
        if agg is None:
            added[key] = [v, v, v, 1, v, ts]
            continue
        if v < agg[0]:
            agg[0] = v
        elif v > agg[1]:
            agg[1] = v
        agg[2] += v
        agg[3] += 1
        if ts > agg[5]:
            agg[4], agg[5] = v, ts
    for agg in added.values():
        if agg[2] != agg[2]:  # +inf and -inf: undefined, stored as NULL
            agg[2] = None
    return added, newest


# -- reading ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One row of a history answer.

    A raw sample has ``value_or_mean == min == max == last`` and ``count`` 1;
    a bucket of rollups starts at ``ts`` and holds the mean, extremes, last
    value and number of samples of its minutes.
    """

    ts: int
    value_or_mean: float
    min: float
    max: float
    count: int
    last: float


def decode(value: float | None, text: str | None, kind: int) -> Value:
    """The Python value of one stored sample (the inverse of the sink's encoder)."""
    if kind == KIND_FLOAT:
        return math.nan if value is None else float(value)
    if kind == KIND_INT:
        return int(text) if text is not None else int(value or 0)
    if kind == KIND_BOOL:
        return bool(value)
    return text if text is not None else ""


def latest(conn: sqlite3.Connection, ids: Mapping[str, int]) -> dict[str, Reading]:
    """The newest sample of each point in ``ids`` (name -> point id) that has one."""
    out: dict[str, Reading] = {}
    for name, point_id in ids.items():
        row = conn.execute(
            "SELECT ts, value, text, quality, kind FROM samples"
            " WHERE point_id = ? ORDER BY ts DESC LIMIT 1",
            (point_id,),
        ).fetchone()
        if row is not None:
            ts, value, text, quality, kind = row
            quality_ = _QUALITIES.get(quality, Quality.UNCERTAIN)
            out[name] = Reading(name, decode(value, text, kind), ts, quality_)
    return out


def bucket_minutes(start: int, end: int, max_points: int) -> tuple[int, int]:
    """Bucket width (minutes) and grid origin (ns) for rollups of [start, end).

    Buckets are aligned to the epoch (stable as the range slides) when that
    fits in ``max_points``; otherwise to the first minute of the range.
    """
    first = start // MINUTE_NS
    last = (end - 1) // MINUTE_NS
    span = last - first + 1
    width = max(1, -(-span // max_points))
    for n in (width, width + 1):
        if last // n - first // n + 1 <= max_points:
            return n, 0
    return width, first * MINUTE_NS


def history(
    conn: sqlite3.Connection,
    point_id: int,
    start: int,
    end: int,
    max_points: int,
    raw_since: int,
) -> list[HistoryRow]:
    """Numeric history of one point over [start, end), at most ``max_points`` rows.

    Raw samples when the range lies within raw retention (``start >=
    raw_since``) and holds at most ``max_points`` of them; otherwise the
    1-minute rollups merged into buckets of N minutes.
    """
    if start >= raw_since:
        overflow = conn.execute(
            f"SELECT 1 FROM samples WHERE point_id = ? AND ts >= ? AND ts < ? AND {NUMERIC}"
            " LIMIT 1 OFFSET ?",
            (point_id, start, end, max_points),
        ).fetchone()
        if overflow is None:
            return [
                HistoryRow(ts, value, value, value, 1, value)
                for ts, value in conn.execute(
                    f"SELECT ts, value FROM samples"
                    f" WHERE point_id = ? AND ts >= ? AND ts < ? AND {NUMERIC} ORDER BY ts",
                    (point_id, start, end),
                )
            ]
    return _rollup_buckets(conn, point_id, start, end, max_points)


def _rollup_buckets(
    conn: sqlite3.Connection, point_id: int, start: int, end: int, max_points: int
) -> list[HistoryRow]:
    n, origin = bucket_minutes(start, end, max_points)
    width = n * MINUTE_NS
    first_minute = start // MINUTE_NS * MINUTE_NS
    rows = conn.execute(
        """
        SELECT bucket, min(mn), max(mx),
               CASE WHEN count(sm) = count(*) THEN sum(sm) END, sum(cnt), max(lst) FROM (
            SELECT (minute - :origin) / :width AS bucket,
                   min AS mn, max AS mx, sum AS sm, count AS cnt,
                   last_value(last) OVER (
                       PARTITION BY (minute - :origin) / :width ORDER BY minute
                       ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
                   ) AS lst
            FROM rollup_1m
            WHERE point_id = :point_id AND minute >= :first AND minute < :end
        )
        GROUP BY bucket ORDER BY bucket
        """,
        {"origin": origin, "width": width, "point_id": point_id, "first": first_minute, "end": end},
    )
    return [
        HistoryRow(
            origin + bucket * width,
            math.nan if total is None else total / count,
            lo,
            hi,
            count,
            last,
        )
        for bucket, lo, hi, total, count, last in rows
    ]
