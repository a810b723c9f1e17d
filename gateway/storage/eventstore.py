"""The event store: events (and, in later revisions, alarms, work orders ...)
in SQLite (WAL, the default) or PostgreSQL, through SQLAlchemy 2 async.

:meth:`EventStore.open` brings the database to the newest Alembic revision
before anything else touches it; the revisions ship inside the package
(``gateway/storage/migrations``), so no ``alembic.ini`` is needed at run time.

Event ``data`` is stored as JSON, written with ``ensure_ascii=False`` so that
Chinese text stays readable in the database. What cannot be stored the same
way on every backend (NaN, infinities, NUL characters, lone surrogates, a
value ``json`` cannot encode) is refused with :class:`InvalidEvent` before
anything is written.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import Connection, event, insert, or_, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gateway.model import Event
from gateway.storage.tables import SOURCE_MAX_LEN, TYPE_MAX_LEN
from gateway.storage.tables import events as events_table

__all__ = [
    "MAX_QUERY_LIMIT",
    "MIGRATIONS_DIR",
    "EventStore",
    "EventStoreError",
    "EventStoreUnavailable",
    "InvalidEvent",
    "InvalidEventStoreURL",
    "MigrationFailed",
    "StoredEvent",
    "alembic_config",
    "append_in",
    "mask_url",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MAX_QUERY_LIMIT = 10_000
SQLITE_BUSY_TIMEOUT_MS = 5_000
PG_CONNECT_TIMEOUT_S = 10.0
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_dumps = functools.partial(json.dumps, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class EventStoreError(Exception):
    """Base of every event store failure."""


class EventStoreUnavailable(EventStoreError):
    """The database cannot be reached (or opened); try again later."""


class InvalidEventStoreURL(EventStoreError, ValueError):
    """The URL cannot be used: malformed, unknown driver, unresolved placeholder."""


class MigrationFailed(EventStoreError):
    """Alembic could not bring the database to the newest revision."""


class InvalidEvent(EventStoreError, ValueError):
    """An event cannot be stored; ``index`` is its position in the batch."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"event #{index}: {reason}")
        self.index = index
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back, with the id the store gave it (ascending)."""

    id: int
    event: Event


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***`` (safe for logs and errors)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for the event store's migrations, built in code.

    With ``url`` it can drive Alembic commands directly (for a developer
    drafting a revision); :meth:`EventStore.open` passes a connection instead.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _upgrade_to_head(connection: Connection, cfg: Config) -> None:
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module (SQLAlchemy emits
    # BEGIN itself, see _sqlite_on_begin) so migrations are transactional.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes fails at once with
    # "database is locked" when another connection wrote in between (the busy
    # timeout does not apply to that upgrade); begin(write=True) takes the
    # write lock up front instead, waiting up to the busy timeout.
    immediate = conn.get_execution_options().get("gateway_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _event_row(index: int, ev: object) -> dict[str, Any]:
    """Validate one event and turn it into column values (or raise InvalidEvent)."""
    if not isinstance(ev, Event):
        raise InvalidEvent(index, f"expected gateway.model.Event, got {type(ev).__name__}")
    for column, value, max_len in (
        ("type", ev.type, TYPE_MAX_LEN),
        ("source", ev.source, SOURCE_MAX_LEN),
    ):
        if not isinstance(value, str) or not value:
            raise InvalidEvent(index, f"{column} must be a non-empty str, got {value!r}")
        if len(value) > max_len:
            raise InvalidEvent(index, f"{column} is longer than {max_len} characters")
        if "\x00" in value:
            raise InvalidEvent(index, f"{column} contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEvent(index, f"{column} is not valid Unicode: {exc}") from exc
    if isinstance(ev.ts, bool) or not isinstance(ev.ts, int):
        raise InvalidEvent(index, f"ts must be int UTC ns, got {type(ev.ts).__name__}")
    if not _INT64_MIN <= ev.ts <= _INT64_MAX:
        raise InvalidEvent(index, f"ts {ev.ts} does not fit in 64 bits")
    if not isinstance(ev.data, Mapping):
        raise InvalidEvent(index, f"data must be a mapping, got {type(ev.data).__name__}")
    data = dict(ev.data)
    try:
        text = _dumps(data)
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidEvent(index, f"data is not storable as JSON: {exc}") from exc
    if "\\u0000" in text:
        raise InvalidEvent(index, "data contains a NUL character (PostgreSQL refuses it)")
    return {"ts": ev.ts, "type": ev.type, "source": ev.source, "data": data}


class EventStore:
    """Events in SQLite or PostgreSQL.

    ``url`` is an SQLAlchemy async URL (``sqlite+aiosqlite:///path/gateway.db``,
    ``postgresql+asyncpg://user@host/db``); ``connect_args`` go to the driver
    (``{"server_settings": {"search_path": "site1"}}`` for asyncpg). The
    constructor does no I/O; call :meth:`open` (or use ``async with``).
    """

    def __init__(self, url: str, *, connect_args: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self._connect_args = dict(connect_args or {})
        self._engine: AsyncEngine | None = None

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    async def __aenter__(self) -> EventStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect and apply the migrations up to head.

        Raises :class:`InvalidEventStoreURL`, :class:`EventStoreUnavailable`
        or :class:`MigrationFailed`.
        """
        if self._engine is not None:
            return
        engine = self._create_engine()
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_upgrade_to_head, alembic_config())
        except CommandError as exc:
            await engine.dispose()
            raise MigrationFailed(f"event store {self.masked_url}: {exc}") from exc
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise EventStoreUnavailable(
                f"cannot open the event store at {self.masked_url}: {_reason(exc)}"
            ) from exc
        self._engine = engine
        log.info("event store open at %s", self.masked_url)

    def _create_engine(self) -> AsyncEngine:
        try:
            url = make_url(self.url)
        except ArgumentError as exc:
            raise InvalidEventStoreURL(f"malformed event store URL: {exc}") from exc
        connect_args = dict(self._connect_args)
        backend = url.get_backend_name()
        if backend == "sqlite":
            self._prepare_sqlite_dir(url)
        elif backend == "postgresql":
            connect_args.setdefault("timeout", PG_CONNECT_TIMEOUT_S)
        try:
            engine = create_async_engine(
                url,
                connect_args=connect_args,
                json_serializer=_dumps,
                pool_pre_ping=backend != "sqlite",
            )
        except (ArgumentError, ImportError) as exc:
            hint = " (pip install 'estate-gateway[postgres]')" if backend == "postgresql" else ""
            raise InvalidEventStoreURL(
                f"cannot use event store URL {self.masked_url}: {exc}{hint}"
            ) from exc
        if backend == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine

    def _prepare_sqlite_dir(self, url: URL) -> None:
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        if "{" in database:
            raise InvalidEventStoreURL(
                f"event store URL {self.masked_url} has an unresolved placeholder"
            )
        parent = Path(database).expanduser().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EventStoreUnavailable(
                f"cannot create the directory {parent} of the event store: {exc}"
            ) from exc

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    @contextlib.asynccontextmanager
    async def begin(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        """A transaction on the store (committed when the block ends without
        an error). ``write=True`` for a transaction that reads and then writes
        (check, then insert): on SQLite it takes the write lock at the start
        (``BEGIN IMMEDIATE``), so it waits for another writer instead of
        failing; plain reads and plain writes need not.

        Services that own tables of their own (alarms, escalations, deliveries)
        write them here together with their events, through :func:`append_in`,
        so a transition and its record land together.

        Raises :class:`EventStoreUnavailable` when the database cannot be reached.
        """
        if self._engine is None:
            raise EventStoreError("the event store is not open (call open() first)")
        engine = self._engine.execution_options(gateway_write=True) if write else self._engine
        try:
            async with engine.begin() as conn:
                yield conn
        except (OperationalError, InterfaceError, OSError) as exc:
            raise EventStoreUnavailable(
                f"event store {self.masked_url} unavailable: {_reason(exc)}"
            ) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise EventStoreUnavailable(
                    f"event store {self.masked_url} unavailable: {_reason(exc)}"
                ) from exc
            raise EventStoreError(f"event store {self.masked_url}: {_reason(exc)}") from exc

    async def append(self, event: Event) -> int:
        """Store one event; returns its id. Raises :class:`InvalidEvent`."""
        (event_id,) = await self.append_many([event])
        return event_id

    async def append_many(self, events: Sequence[Event]) -> list[int]:
        """Store ``events`` in one transaction; returns their ids, in order.

        Every event is validated first: one bad event raises
        :class:`InvalidEvent` (naming its index) and nothing is written.
        """
        if not events:
            return []
        rows = [_event_row(i, ev) for i, ev in enumerate(events)]
        async with self.begin() as conn:
            return await _insert(conn, rows)

    async def query(
        self,
        types: Sequence[str] | None = None,
        source: str | None = None,
        since: int | None = None,
        until: int | None = None,
        after_id: int | None = None,
        limit: int = 500,
        *,
        type_prefixes: Sequence[str] | None = None,
        before_id: int | None = None,
        descending: bool = False,
    ) -> list[StoredEvent]:
        """Events in id order (oldest stored first), at most ``limit``.

        ``types``: any of these types (a bare ``str`` counts as one type);
        ``type_prefixes``: or any type starting with one of these (``"alarm."``);
        ``since`` <= ts < ``until``; ``after_id``: only ids above it (page on
        with the last id of the previous page); ``before_id``: only ids below
        it; ``descending``: newest first (page back with the last id as
        ``before_id``).
        """
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit must be int, got {type(limit).__name__}")
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_QUERY_LIMIT}, got {limit}")
        order = events_table.c.id.desc() if descending else events_table.c.id
        stmt = select(events_table).order_by(order).limit(limit)
        if types is not None or type_prefixes is not None:
            wanted = [types] if isinstance(types, str) else list(types or ())
            prefixes = (
                [type_prefixes] if isinstance(type_prefixes, str) else list(type_prefixes or ())
            )
            if not wanted and not prefixes:
                return []
            clauses = [events_table.c.type.startswith(p, autoescape=True) for p in prefixes]
            if wanted:
                clauses.append(events_table.c.type.in_(wanted))
            stmt = stmt.where(or_(*clauses))
        if source is not None:
            stmt = stmt.where(events_table.c.source == source)
        if since is not None:
            stmt = stmt.where(events_table.c.ts >= since)
        if until is not None:
            stmt = stmt.where(events_table.c.ts < until)
        if after_id is not None:
            stmt = stmt.where(events_table.c.id > after_id)
        if before_id is not None:
            stmt = stmt.where(events_table.c.id < before_id)
        async with self.begin() as conn:
            result = await conn.execute(stmt)
            return [
                StoredEvent(
                    id=int(row.id),
                    event=Event(type=row.type, source=row.source, ts=int(row.ts), data=row.data),
                )
                for row in result
            ]


async def append_in(conn: AsyncConnection, events: Sequence[Event]) -> list[int]:
    """Store ``events`` inside the caller's transaction (from :meth:`EventStore.begin`);
    returns their ids. Validates like :meth:`EventStore.append_many`."""
    rows = [_event_row(i, ev) for i, ev in enumerate(events)]
    return await _insert(conn, rows) if rows else []


async def _insert(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[int]:
    stmt = insert(events_table).returning(events_table.c.id, sort_by_parameter_order=True)
    result = await conn.execute(stmt, rows)
    return [int(row[0]) for row in result]


def _reason(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's statement dump and help link."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        orig = exc.orig
        return f"{type(orig).__name__}: {orig}".strip()
    text = str(exc).split("\n", 1)[0]
    return f"{type(exc).__name__}: {text}"
