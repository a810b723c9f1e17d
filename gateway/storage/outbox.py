"""A durable store-and-forward queue in one SQLite file.

Producers :meth:`Outbox.put` opaque payloads (an encoded batch of readings,
an MQTT message); each put is committed before it returns, so a process
crash loses nothing that was acknowledged. A consumer :meth:`Outbox.peek`\\ s
the oldest items, delivers them and :meth:`Outbox.delete`\\ s them. A payload
that is too large for its destination is :meth:`Outbox.replace`\\ d by
smaller parts *in its place* in the order, so delivery order never changes.

Payloads that can never be delivered (the destination rejects them) are
moved to a quarantine table in the same file, kept with the error for a
person to look at.

Every SQLite call runs in one dedicated worker thread, never on the event
loop. WAL with ``synchronous=NORMAL`` survives a process crash; pass
``synchronous="FULL"`` to survive a power cut as well, at the cost of an
fsync per commit.

Order is kept by a binary sort key, not by the id: a new item's key is its
id as 8 big-endian bytes; the parts of a replaced item get the replaced key
plus a 4-byte big-endian suffix, which sorts after the old key and before
every later key (no live key is a prefix of another).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from gateway.clock import Clock, SystemClock

__all__ = [
    "Outbox",
    "OutboxClosed",
    "OutboxError",
    "OutboxItem",
    "QuarantinedItem",
]

log = logging.getLogger("gateway.storage.outbox")

_T = TypeVar("_T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        k BLOB NOT NULL,
        payload BLOB NOT NULL,
        count INTEGER NOT NULL,
        created_ns INTEGER NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS outbox_k ON outbox (k)",
    """CREATE TABLE IF NOT EXISTS quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        payload BLOB NOT NULL,
        error TEXT NOT NULL,
        created_ns INTEGER NOT NULL
    )""",
)


class OutboxError(Exception):
    """The outbox file cannot be used (corrupt, unwritable, closed)."""


class OutboxClosed(OutboxError):
    """The outbox was closed; call :meth:`Outbox.open` to use it again."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    payload: bytes
    count: int  # how many points (messages) the payload holds
    created_ns: int  # wall-clock time of the put (parts keep their original's)


@dataclass(frozen=True, slots=True)
class QuarantinedItem:
    id: int
    payload: bytes
    error: str
    created_ns: int


def _key(id_: int) -> bytes:
    return id_.to_bytes(8, "big")


class Outbox:
    """A FIFO of ``(payload, count)`` items that survives restarts.

    ``max_items`` / ``max_count`` bound the queue: past either, the oldest
    items are dropped, logged and counted in :attr:`dropped` (items) and
    :attr:`dropped_count` (their ``count`` total).
    """

    def __init__(
        self,
        path: Path,
        *,
        max_items: int | None = None,
        max_count: int | None = None,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        clock: Clock | None = None,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        if max_items is not None and max_items < 1:
            raise ValueError("max_items must be at least 1")
        if max_count is not None and max_count < 1:
            raise ValueError("max_count must be at least 1")
        self.path = Path(path)
        self.max_items = max_items
        self.max_count = max_count
        self._synchronous = synchronous
        self._clock = clock or SystemClock()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # used only in the worker thread
        self._closed = False
        self._next_id = 1
        self._pending_items = 0
        self._pending_count = 0
        self._quarantined = 0
        self.dropped = 0
        self.dropped_count = 0

    # -- state kept in memory (written only by the worker thread) ----------
    @property
    def pending_items(self) -> int:
        return self._pending_items

    @property
    def pending_count(self) -> int:
        return self._pending_count

    @property
    def quarantined_count(self) -> int:
        return self._quarantined

    # -- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        """Create the file and tables if needed and load the counters. Idempotent."""
        self._closed = False
        await self._run(lambda: None)

    async def close(self) -> None:
        """Close the file and stop the worker thread. Idempotent."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_sync)
        finally:
            executor.shutdown(wait=False)

    # -- queue ---------------------------------------------------------------
    async def put(self, payload: bytes, count: int = 1) -> int:
        """Append one item; it is committed when this returns. Returns its id."""
        return (await self.put_many([(payload, count)]))[0]

    async def put_many(self, payloads: Sequence[tuple[bytes, int]]) -> list[int]:
        """Append several items in one transaction; returns their ids in order."""
        items = [(bytes(p), int(c)) for p, c in payloads]
        if not items:
            return []
        now = self._clock.time_ns()
        return await self._run(lambda: self._put_sync(items, now))

    async def peek(self, limit: int = 1) -> list[OutboxItem]:
        """The ``limit`` oldest items, oldest first; they stay in the queue."""
        return await self._run(lambda: self._peek_sync(limit))

    async def delete(self, ids: Sequence[int]) -> None:
        """Remove items (delivered ones). Unknown ids are ignored."""
        ids = [int(i) for i in ids]
        if ids:
            await self._run(lambda: self._delete_sync(ids))

    async def replace(self, id: int, parts: Sequence[tuple[bytes, int]]) -> None:
        """Swap item ``id`` for ``parts``, in its place in the order, atomically.

        Raises :class:`KeyError` if ``id`` is not in the queue.
        """
        items = [(bytes(p), int(c)) for p, c in parts]
        await self._run(lambda: self._replace_sync(id, items))

    # -- quarantine ----------------------------------------------------------
    async def quarantine(self, payload: bytes, error: str) -> None:
        """Keep an undeliverable payload with the reason, for a person to look at."""
        await self.quarantine_many([(payload, error)])

    async def quarantine_many(self, items: Sequence[tuple[bytes, str]]) -> None:
        """Quarantine several ``(payload, error)`` pairs in one transaction."""
        rows = [(bytes(p), str(e)) for p, e in items]
        if rows:
            now = self._clock.time_ns()
            await self._run(lambda: self._quarantine_sync(rows, now))

    async def quarantined(self, limit: int = 100) -> list[QuarantinedItem]:
        """The ``limit`` oldest quarantined payloads, oldest first."""
        return await self._run(lambda: self._quarantined_sync(limit))

    # -- worker-thread side ----------------------------------------------------
    async def _run(self, fn: Callable[[], _T]) -> _T:
        if self._closed:
            raise OutboxClosed(f"outbox {self.path} is closed")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"outbox-{self.path.stem}")

        def job() -> _T:
            self._open_sync()
            return fn()

        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def _open_sync(self) -> None:
        if self._conn is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise OutboxError(f"cannot open outbox {self.path}: {e}") from e
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            for stmt in _SCHEMA:
                conn.execute(stmt)
            items, count = conn.execute(
                "SELECT count(*), coalesce(sum(count), 0) FROM outbox"
            ).fetchone()
            (quarantined,) = conn.execute("SELECT count(*) FROM quarantine").fetchone()
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        except sqlite3.Error as e:
            conn.close()
            raise OutboxError(f"outbox {self.path} is not usable: {e}") from e
        self._conn = conn
        self._pending_items, self._pending_count = int(items), int(count)
        self._quarantined = int(quarantined)
        self._next_id = (int(row[0]) if row else 0) + 1

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; any SQLite error rolls back and becomes OutboxError."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as e:
            raise OutboxError(f"outbox {self.path}: {what} failed: {e}") from e

    def _put_sync(self, items: list[tuple[bytes, int]], now: int) -> list[int]:
        first = self._next_id
        ids = list(range(first, first + len(items)))
        rows = [(i, _key(i), p, c, now) for i, (p, c) in zip(ids, items, strict=True)]
        with self._transaction("put") as db:
            db.executemany(
                "INSERT INTO outbox (id, k, payload, count, created_ns) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            dropped = self._trim_sync(len(items), sum(c for _, c in items))
        self._next_id = first + len(items)
        self._pending_items += len(items) - dropped[0]
        self._pending_count += sum(c for _, c in items) - dropped[1]
        if dropped[0]:
            self.dropped += dropped[0]
            self.dropped_count += dropped[1]
            log.warning(
                "outbox %s full: dropped the %d oldest item(s) (%d points); %d dropped so far",
                self.path,
                dropped[0],
                dropped[1],
                self.dropped,
            )
        return ids

    def _trim_sync(self, added_items: int, added_count: int) -> tuple[int, int]:
        """Delete the oldest items past the limits (inside the put's transaction)."""
        items = self._pending_items + added_items
        count = self._pending_count + added_count
        over_items = items - self.max_items if self.max_items is not None else 0
        over_count = count - self.max_count if self.max_count is not None else 0
        if over_items <= 0 and over_count <= 0:
            return 0, 0
        db = self._db()
        victims: list[int] = []
        gone = 0
        cur = db.execute("SELECT id, count FROM outbox ORDER BY k")
        for id_, c in cur:
            if len(victims) >= over_items and gone >= over_count:
                break
            if len(victims) + 1 >= items:  # never drop the item just added
                break
            victims.append(id_)
            gone += c
        cur.close()
        db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in victims])
        return len(victims), gone

    def _peek_sync(self, limit: int) -> list[OutboxItem]:
        rows = self._db().execute(
            "SELECT id, payload, count, created_ns FROM outbox ORDER BY k LIMIT ?", (limit,)
        )
        return [OutboxItem(i, p, c, t) for i, p, c, t in rows]

    def _delete_sync(self, ids: list[int]) -> None:
        gone = 0
        items = 0
        with self._transaction("delete") as db:
            for i in ids:
                row = db.execute("DELETE FROM outbox WHERE id = ? RETURNING count", (i,)).fetchone()
                if row is not None:
                    items += 1
                    gone += row[0]
        self._pending_items -= items
        self._pending_count -= gone

    def _replace_sync(self, id_: int, parts: list[tuple[bytes, int]]) -> None:
        first = self._next_id
        with self._transaction("replace") as db:
            row = db.execute(
                "DELETE FROM outbox WHERE id = ? RETURNING k, count, created_ns", (id_,)
            ).fetchone()
            if row is None:
                raise KeyError(id_)
            key, old_count, created = row
            db.executemany(
                "INSERT INTO outbox (id, k, payload, count, created_ns) VALUES (?, ?, ?, ?, ?)",
                [
                    (first + n, key + n.to_bytes(4, "big"), p, c, created)
                    for n, (p, c) in enumerate(parts)
                ],
            )
        self._next_id = first + len(parts)
        self._pending_items += len(parts) - 1
        self._pending_count += sum(c for _, c in parts) - old_count

    def _quarantine_sync(self, rows: list[tuple[bytes, str]], now: int) -> None:
        with self._transaction("quarantine") as db:
            db.executemany(
                "INSERT INTO quarantine (payload, error, created_ns) VALUES (?, ?, ?)",
                [(p, e, now) for p, e in rows],
            )
        self._quarantined += len(rows)

    def _quarantined_sync(self, limit: int) -> list[QuarantinedItem]:
        rows = self._db().execute(
            "SELECT id, payload, error, created_ns FROM quarantine ORDER BY id LIMIT ?", (limit,)
        )
        return [QuarantinedItem(i, p, e, t) for i, p, e, t in rows]
