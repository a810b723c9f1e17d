"""The read side of the embedded time-series store (run on the sink's thread).

The embedded sink (:mod:`gateway.storage.embedded`) writes three tables::

    points(id, name)                                       one row per point name
    samples(point_id, ts, value, text, quality, kind)      raw samples, WITHOUT ROWID
    rollup_1m(point_id, minute, min, max, sum, count, last) 1-minute rollups

``value`` is REAL (bools as 0/1, NULL for text and NaN); ``text`` holds str
values, and the exact decimal of ints beyond +/-2**53 that a REAL cannot
hold; ``quality`` and ``kind`` are small ints (:data:`QUALITY_CODES`,
:data:`KIND_*`). Rollups and history cover numeric samples (bools count as
0/1) whose quality is not BAD.

The functions here take the sink's ``sqlite3.Connection`` and must run on
the thread that owns it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.model import Quality, Reading, Value

__all__ = [
    "KIND_BOOL",
    "KIND_FLOAT",
    "KIND_INT",
    "KIND_STR",
    "MINUTE_NS",
    "QUALITY_BAD",
    "QUALITY_CODES",
    "HistoryRow",
    "bucket_minutes",
    "decode",
    "history",
    "latest",
]

MINUTE_NS = 60_000_000_000

KIND_FLOAT, KIND_INT, KIND_BOOL, KIND_STR = 0, 1, 2, 3

QUALITY_CODES: Mapping[Quality, int] = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}
QUALITY_BAD = QUALITY_CODES[Quality.BAD]
_QUALITIES = {code: q for q, code in QUALITY_CODES.items()}

# Numeric samples that history and rollups are made of.
NUMERIC = f"value IS NOT NULL AND quality < {QUALITY_BAD}"


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
        SELECT bucket, min(mn), max(mx), sum(sm), sum(cnt), max(lst) FROM (
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
        HistoryRow(origin + bucket * width, total / count, lo, hi, count, last)
        for bucket, lo, hi, total, count, last in rows
    ]
