"""The embedded time-series sink: recent history in one SQLite file.

The default sink. It keeps raw samples for ``raw_retention_days`` and
1-minute rollups (min/max/sum/count/last) for ``rollup_retention_days``, and
answers the control room's questions (:meth:`EmbeddedSink.latest`,
:meth:`EmbeddedSink.history`).

Threading: one dedicated worker thread owns the ``sqlite3`` connection and
runs every statement, so the event loop never blocks on disk and the
connection is never shared. Calls queue on that thread in order.

Rollups are incremental: a write adds the samples it inserts to their
minutes' rows (one upsert per point and minute of the batch), so it costs
the same whether a minute already holds ten samples or ten thousand.

Idempotence: the writer's outbox re-sends any batch it did not see
confirmed, so a batch may arrive twice. A sample newer than every stored
sample of its point is new; any other is looked up by ``(point_id, ts)``.
One already stored with the same value, text, quality and kind is skipped
and counted nowhere, so a replay changes nothing. One with a *different*
value (a device correcting itself) replaces the stored sample (the latest
write wins, as does the later of two duplicates inside one batch) and its
minute's rollup is recomputed from the raw samples: a rare, slower path.

Late data: retention removes raw samples minute by minute and records, per
point, where it has cut (``points.pruned_before``). A sample older than that
cut is stored (until the next retention pass) but never added to a rollup,
because it cannot be told apart from a replay of a sample already counted
and then removed; the minute's rollup stays as it was. A late sample for a
minute whose raw samples are all still there is added to its rollup like any
other.

Bad input: :meth:`EmbeddedSink.write` checks every reading first; if any is
unusable it raises :class:`PointsRejected` naming all of them and writes
nothing, so the writer can quarantine those and resend the rest.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.clock import Clock, SystemClock
from gateway.config.storage import EmbeddedSinkConfig
from gateway.model import Reading
from gateway.storage import embedded_query as q
from gateway.storage.embedded_query import HistoryRow
from gateway.storage.sink import PointsRejected, SinkError, SinkUnavailable

__all__ = ["EmbeddedSink", "EmbeddedSinkError", "HistoryRow", "MaintenanceResult"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = q.SCHEMA_VERSION
MAINTENANCE_INTERVAL_S = 3600.0
DAY_NS = 86_400 * 1_000_000_000
_MIN_TS, _MAX_TS = q.MIN_TS, q.MAX_TS
_EXACT_FLOAT_INT = 2**53
_T = TypeVar("_T")


class EmbeddedSinkError(SinkError):
    """The database file has a schema version this gateway does not know, or similar."""


@dataclass(frozen=True, slots=True)
class MaintenanceResult:
    samples_deleted: int
    rollups_deleted: int


class _BadReading(Exception):
    pass


def _encode(r: Reading) -> tuple[int, float | None, str | None, int, int]:
    """(ts, value, text, quality, kind) of one reading, or raise _BadReading."""
    ts = r.ts
    if type(ts) is not int or not _MIN_TS <= ts <= _MAX_TS:
        raise _BadReading(f"ts must be an int of 64 bits (UTC ns, >= {_MIN_TS}), got {ts!r}")
    quality = q.QUALITY_CODES.get(r.quality)
    if quality is None:
        raise _BadReading(f"unknown quality {r.quality!r}")
    v = r.value
    if type(v) is float:
        return ts, (None if math.isnan(v) else v), None, quality, q.KIND_FLOAT
    if isinstance(v, bool):
        return ts, float(v), None, quality, q.KIND_BOOL
    if isinstance(v, int):
        try:
            approx = float(v)
        except OverflowError:
            raise _BadReading(f"int value {v} is too large to store") from None
        exact = str(int(v)) if abs(v) > _EXACT_FLOAT_INT else None
        return ts, approx, exact, quality, q.KIND_INT
    if isinstance(v, float):  # float subclasses
        return ts, (None if math.isnan(v) else float(v)), None, quality, q.KIND_FLOAT
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _BadReading(f"str value is not valid Unicode: {exc}") from None
        return ts, None, str(v), quality, q.KIND_STR
    raise _BadReading(f"value of type {type(v).__name__} is not float/int/bool/str")


class EmbeddedSink:
    """Readings history in SQLite; implements :class:`gateway.storage.sink.Sink`.

    ``path`` is the database file (the config's ``path`` with ``{data_dir}``
    already resolved by the caller). The constructor does no I/O.
    """

    name = "embedded"

    def __init__(self, config: EmbeddedSinkConfig, path: Path, clock: Clock | None = None) -> None:
        self.config = config
        self.path = Path(path)
        self.clock: Clock = clock or SystemClock()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        # Worker thread only: point name -> id; point id -> points.pruned_before;
        # point id -> a ts no older than its newest stored sample (lazily read).
        self._ids: dict[str, int] = {}
        self._pruned: dict[int, int] = {}
        self._max_ts: dict[int, int] = {}
        self._next_maintenance = 0.0

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Open (creating if needed) the database and apply retention once."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="embedded-sink")
        try:
            await self._run(self._open_sync)
            await self.maintain()
        except BaseException:
            await self.close()
            raise
        log.info("embedded sink open at %s (%d points)", self.path, len(self._ids))

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_sync)
        finally:
            executor.shutdown(wait=False)

    def _open_sync(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None)
        except OSError as exc:
            raise SinkUnavailable(f"cannot create {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA cache_size=-16000")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version not in (0, SCHEMA_VERSION):
                cause = (
                    "was it written by a newer gateway?"
                    if version > SCHEMA_VERSION
                    else "it was written by a development build; move the file away"
                )
                raise EmbeddedSinkError(
                    f"{self.path} has schema version {version}; this gateway knows "
                    f"{SCHEMA_VERSION} ({cause})"
                )
            conn.executescript(q.SCHEMA)
            self._ids = dict(conn.execute("SELECT name, id FROM points"))
            self._pruned = dict(conn.execute("SELECT id, pruned_before FROM points"))
            self._max_ts = {}
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` on the worker thread; sqlite errors become SinkUnavailable."""
        if self._executor is None:
            raise SinkError(f"embedded sink {self.path} is not started")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise SinkUnavailable(f"embedded sink {self.path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SinkError(f"embedded sink {self.path} is not open")
        return self._conn

    # -- writing -----------------------------------------------------------

    async def write(self, readings: Sequence[Reading]) -> None:
        """Store ``readings`` (later duplicates of a (point, ts) win).

        Raises :class:`PointsRejected` (with ``bad`` indexes) and writes
        nothing if any reading is unusable; :class:`SinkUnavailable` if the
        file cannot be written (disk full, I/O error).
        """
        if not readings:
            return
        await self._run(self._write_sync, list(readings))
        if self.clock.monotonic() >= self._next_maintenance:
            await self.maintain()

    def _write_sync(self, readings: list[Reading]) -> None:
        conn = self._connection()
        rows: dict[tuple[int, int], q.SampleRow] = {}  # (point_id, ts) -> row; later ones win
        bad: list[int] = []
        reasons: list[str] = []
        new_ids: dict[str, int] = {}
        ids = self._ids
        qualities = q.QUALITY_CODES
        kind_float = q.KIND_FLOAT
        conn.execute("BEGIN IMMEDIATE")
        try:
            for i, r in enumerate(readings):
                # Fast path: a float of a known point with a plain timestamp.
                if (
                    type(r) is Reading
                    and type(r.value) is float
                    and type(r.ts) is int
                    and type(r.point) is str
                ):
                    point_id = ids.get(r.point)
                    quality = qualities.get(r.quality)
                    ts = r.ts
                    if point_id and quality is not None and _MIN_TS <= ts <= _MAX_TS:
                        v = r.value
                        rows[point_id, ts] = (
                            point_id,
                            ts,
                            v if v == v else None,
                            None,
                            quality,
                            kind_float,
                        )
                        continue
                try:
                    if not isinstance(r, Reading):
                        raise _BadReading(f"expected Reading, got {type(r).__name__}")
                    ts, value, text, quality, kind = _encode(r)
                    point_id = ids.get(r.point) if type(r.point) is str else None
                    if point_id is None:
                        point_id = self._point_id(conn, r.point, new_ids)
                except _BadReading as exc:
                    bad.append(i)
                    if len(reasons) < 5:
                        reasons.append(f"#{i}: {exc}")
                    continue
                rows[point_id, ts] = (point_id, ts, value, text, quality, kind)
            if bad:
                raise PointsRejected(
                    f"{len(bad)} of {len(readings)} readings refused: " + "; ".join(reasons),
                    bad,
                )
            newest = q.store(conn, rows.values(), self._max_ts, self._pruned)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        ids.update(new_ids)
        max_ts = self._max_ts
        for point_id, ts in newest.items():
            if ts > max_ts[point_id]:
                max_ts[point_id] = ts

    @staticmethod
    def _point_id(conn: sqlite3.Connection, name: object, new_ids: dict[str, int]) -> int:
        """Id of a point not in the cache, added to ``points`` if new."""
        if not isinstance(name, str) or not name:
            raise _BadReading(f"point must be a non-empty str, got {name!r}")
        point_id = new_ids.get(name)
        if point_id is not None:
            return point_id
        try:
            name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _BadReading(f"point name is not valid Unicode: {exc}") from None
        conn.execute("INSERT OR IGNORE INTO points (name) VALUES (?)", (name,))
        (point_id,) = conn.execute("SELECT id FROM points WHERE name = ?", (name,)).fetchone()
        new_ids[name] = int(point_id)
        return int(point_id)

    # -- retention ---------------------------------------------------------

    async def maintain(self) -> MaintenanceResult:
        """Delete raw samples and rollups past their retention (clock time).

        Raw samples go by whole minutes (those that end before the cutoff).
        Also run by :meth:`start` and, at most hourly, after a write.
        """
        self._next_maintenance = self.clock.monotonic() + MAINTENANCE_INTERVAL_S
        now = self.clock.time_ns()
        raw_cutoff = max(_MIN_TS, now - round(self.config.raw_retention_days * DAY_NS))
        rollup_cutoff = max(_MIN_TS, now - round(self.config.rollup_retention_days * DAY_NS))
        result = await self._run(self._maintain_sync, raw_cutoff, rollup_cutoff)
        if result.samples_deleted or result.rollups_deleted:
            log.info(
                "embedded sink retention: %d samples, %d rollups deleted",
                result.samples_deleted,
                result.rollups_deleted,
            )
        return result

    def _maintain_sync(self, raw_cutoff: int, rollup_cutoff: int) -> MaintenanceResult:
        conn = self._connection()
        ids = list(self._ids.values())
        raw_minute = raw_cutoff // q.MINUTE_NS * q.MINUTE_NS
        rollup_minute = rollup_cutoff // q.MINUTE_NS * q.MINUTE_NS
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Rollups of a point before its cut are final from now on (module doc).
            conn.execute(
                "UPDATE points SET pruned_before = ?1 WHERE pruned_before < ?1 AND EXISTS"
                " (SELECT 1 FROM samples WHERE point_id = points.id AND ts < ?1)",
                (raw_minute,),
            )
            # Per point, so each DELETE is a range of the primary key.
            samples = conn.executemany(
                "DELETE FROM samples WHERE point_id = ? AND ts < ?",
                [(i, raw_minute) for i in ids],
            ).rowcount
            rollups = conn.executemany(
                "DELETE FROM rollup_1m WHERE point_id = ? AND minute < ?",
                [(i, rollup_minute) for i in ids],
            ).rowcount
            pruned = dict(conn.execute("SELECT id, pruned_before FROM points"))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._pruned = pruned
        return MaintenanceResult(max(samples, 0), max(rollups, 0))

    # -- queries -----------------------------------------------------------

    async def latest(self, points: Sequence[str]) -> dict[str, Reading]:
        """The newest reading of each of ``points`` (points never written are absent)."""
        wanted = [points] if isinstance(points, str) else list(points)
        return await self._run(self._latest_sync, wanted)

    def _latest_sync(self, points: list[str]) -> dict[str, Reading]:
        conn = self._connection()
        ids = {p: self._ids[p] for p in points if p in self._ids}
        return q.latest(conn, ids)

    async def history(
        self, point: str, start: int, end: int, max_points: int = 1000
    ) -> list[HistoryRow]:
        """Numeric history of ``point`` over [start, end) (UTC ns), oldest first.

        Raw samples when they fit in ``max_points`` and the range is within
        raw retention; otherwise 1-minute rollups merged into buckets of N
        minutes, so the answer never has more than ``max_points`` rows.
        Text samples and BAD-quality samples are left out.
        """
        for label, v in (("start", start), ("end", end), ("max_points", max_points)):
            if type(v) is not int:
                raise TypeError(f"{label} must be int, got {type(v).__name__}")
        if max_points < 1:
            raise ValueError(f"max_points must be >= 1, got {max_points}")
        if end <= start:
            return []
        raw_since = self.clock.time_ns() - round(self.config.raw_retention_days * DAY_NS)
        return await self._run(self._history_sync, point, start, end, max_points, raw_since)

    def _history_sync(
        self, point: str, start: int, end: int, max_points: int, raw_since: int
    ) -> list[HistoryRow]:
        point_id = self._ids.get(point)
        if point_id is None:
            return []
        return q.history(self._connection(), point_id, start, end, max_points, raw_since)
