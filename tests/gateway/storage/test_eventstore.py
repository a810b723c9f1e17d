"""Event store on real SQLite files and, when one is reachable, a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gateway.model import Event
from gateway.storage.eventstore import (
    EventStore,
    EventStoreError,
    EventStoreUnavailable,
    InvalidEvent,
    InvalidEventStoreURL,
    mask_url,
)
from tests.fixtures.servers import free_port

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")

CHINESE = {"message": "3号楼东门被强行打开", "quote": 'he said "开门"', "n": [1, 2.5, None]}


@dataclass
class Backend:
    name: str
    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)

    def store(self) -> EventStore:
        return EventStore(self.url, connect_args=self.connect_args)


async def _pg_schema() -> AsyncIterator[Backend]:
    asyncpg = pytest.importorskip("asyncpg")
    reasons = []
    for user in PG_USERS:
        try:
            conn = await asyncpg.connect(
                host=PG_HOST, port=PG_PORT, user=user, database=PG_DB, timeout=5
            )
        except (OSError, asyncpg.PostgresError) as exc:
            reasons.append(f"{user}: {type(exc).__name__}: {exc}")
            continue
        break
    else:
        reason = f"no PostgreSQL at {PG_HOST}:{PG_PORT}/{PG_DB} ({'; '.join(reasons)})"
        print(reason)
        pytest.skip(reason)
    schema = f"gw_test_{uuid.uuid4().hex[:12]}"
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield Backend(
            "postgresql",
            f"postgresql+asyncpg://{user}@{PG_HOST}:{PG_PORT}/{PG_DB}",
            {"server_settings": {"search_path": schema}},
        )
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


@pytest_asyncio.fixture(loop_scope="function", params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path}/data/events.db")
    else:
        async for b in _pg_schema():
            yield b


@pytest_asyncio.fixture(loop_scope="function")
async def store(backend: Backend) -> AsyncIterator[EventStore]:
    s = backend.store()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def _ev(type_: str, source: str, ts: int, **data: Any) -> Event:
    return Event(type=type_, source=source, ts=ts, data=data)


async def test_migrations_create_the_schema(store: EventStore, backend: Backend) -> None:
    assert await store.query() == []
    if backend.name == "sqlite":
        db = backend.url.split("///", 1)[1]
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0004",)
            indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"events", "ix_events_type_ts", "ix_events_source_ts"} <= indexes
        assert {"alarms", "escalations", "deliveries", "ack_tokens"} <= indexes


async def test_append_and_query_filters(store: EventStore) -> None:
    first = await store.append(_ev("access.denied", "gate1", 100, card="A1"))
    ids = await store.append_many(
        [
            _ev("door.forced", "gate1", 200),
            _ev("access.denied", "gate2", 300, card="B2"),
            _ev("camera.offline", "cam1", 400),
        ]
    )
    assert ids == [first + 1, first + 2, first + 3]
    assert await store.append_many([]) == []

    def ids_of(rows: list[Any]) -> list[int]:
        return [r.id for r in rows]

    everything = await store.query()
    assert ids_of(everything) == [first, *ids]
    assert everything[0].event == _ev("access.denied", "gate1", 100, card="A1")
    assert ids_of(await store.query(types=["access.denied"])) == [first, ids[1]]
    assert ids_of(await store.query(types="door.forced")) == [ids[0]]
    assert await store.query(types=[]) == []
    assert ids_of(await store.query(source="gate1")) == [first, ids[0]]
    assert ids_of(await store.query(since=200, until=400)) == [ids[0], ids[1]]
    assert ids_of(await store.query(types=["access.denied"], source="gate2")) == [ids[1]]
    page1 = await store.query(limit=2)
    page2 = await store.query(after_id=page1[-1].id, limit=2)
    assert ids_of(page1 + page2) == [first, *ids]


async def test_json_with_chinese_text_round_trips(store: EventStore) -> None:
    ev = Event("door.forced", "楼3.东门", 1_767_225_600_000_000_000, CHINESE)
    event_id = await store.append(ev)
    (stored,) = await store.query(after_id=event_id - 1)
    assert stored.id == event_id
    assert stored.event == ev


async def test_reopen_keeps_data(backend: Backend) -> None:
    async with backend.store() as s:
        await s.append(_ev("patrol.scan", "cp1", 1, guard="张三"))
    async with backend.store() as s:  # migrations already at head: a no-op
        (row,) = await s.query()
        assert row.event.data == {"guard": "张三"}
        await s.append(_ev("patrol.scan", "cp2", 2))
        assert len(await s.query()) == 2


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (Event("", "gate1", 1), "type must be a non-empty str"),
        (Event("a.b", "", 1), "source must be a non-empty str"),
        (Event("a" * 200, "gate1", 1), "type is longer than 128"),
        (Event("a.b", "gate\x001", 1), "source contains a NUL"),
        (Event("a.b", "gate1", 1.5), "ts must be int"),  # type: ignore[arg-type]
        (Event("a.b", "gate1", 2**64), "does not fit in 64 bits"),
        (Event("a.b", "gate1", 1, {"v": float("nan")}), "not storable as JSON"),
        (Event("a.b", "gate1", 1, {"v": object()}), "not storable as JSON"),
        (Event("a.b", "gate1", 1, {"v": "\ud800"}), "not storable as JSON"),
        (Event("a.b", "gate1", 1, {"v": "a\x00b"}), "NUL character"),
        (Event("a.b", "gate1", 1, ["not", "a", "mapping"]), "data must be a mapping"),  # type: ignore[arg-type]
        ("not an event", "expected gateway.model.Event"),
    ],
)
async def test_bad_event_is_refused_and_nothing_of_its_batch_is_written(
    store: EventStore, bad: Any, reason: str
) -> None:
    good = _ev("a.b", "gate1", 1)
    with pytest.raises(InvalidEvent, match=reason) as info:
        await store.append_many([good, bad, good])
    assert info.value.index == 1
    assert await store.query() == []
    await store.append(good)  # the store still works
    assert len(await store.query()) == 1


async def test_bad_query_arguments(store: EventStore) -> None:
    with pytest.raises(ValueError, match="limit must be"):
        await store.query(limit=0)
    with pytest.raises(ValueError, match="limit must be"):
        await store.query(limit=1_000_000)
    with pytest.raises(TypeError, match="limit must be int"):
        await store.query(limit="10")  # type: ignore[arg-type]


async def test_not_open_raises(tmp_path: Path) -> None:
    s = EventStore(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    with pytest.raises(EventStoreError, match="not open"):
        await s.query()
    assert not (tmp_path / "e.db").exists()  # the constructor did no I/O


async def test_unreachable_postgres_is_a_typed_error_with_masked_password() -> None:
    url = f"postgresql+asyncpg://gw:s3cret@127.0.0.1:{free_port()}/gw"
    with pytest.raises(EventStoreUnavailable) as info:
        await EventStore(url).open()
    message = str(info.value)
    assert "s3cret" not in message
    assert "gw:***@127.0.0.1" in message


async def test_unusable_sqlite_directory_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(EventStoreUnavailable, match="cannot create the directory"):
        await EventStore(f"sqlite+aiosqlite:///{tmp_path}/file/sub/e.db").open()


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("not a url", "malformed"),
        ("nosuchdb+nodriver://x/y", "cannot use"),
        ("sqlite+aiosqlite:///{data_dir}/gateway.db", "unresolved placeholder"),
    ],
)
async def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(InvalidEventStoreURL, match=match):
        await EventStore(url).open()


def test_mask_url() -> None:
    assert mask_url("postgresql+asyncpg://u:p@h/db") == "postgresql+asyncpg://u:***@h/db"
    assert mask_url("::::") == "<unparseable URL>"


async def test_tables_and_migrations_do_not_drift(store: EventStore, backend: Backend) -> None:
    """Autogenerate finds nothing to add: tables.py and the revisions agree."""
    from alembic import command
    from sqlalchemy import Connection
    from sqlalchemy.ext.asyncio import create_async_engine

    from gateway.storage.eventstore import alembic_config

    def check(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.check(cfg)  # raises AutogenerateDiffsDetected on drift

    engine = create_async_engine(backend.url, connect_args=backend.connect_args)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(check)
    finally:
        await engine.dispose()
