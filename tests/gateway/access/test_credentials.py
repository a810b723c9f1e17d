"""Credentials: building them from raw values, the store on a real SQLite file
and, when one is reachable, a real PostgreSQL (skipped with the reason
otherwise), the in-memory index, and 100k credentials loaded back."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from gateway.access.cards import CardHasher
from gateway.access.credentials import (
    Credential,
    CredentialConflict,
    CredentialError,
    CredentialIndex,
    CredentialNotFound,
    CredentialStore,
)
from gateway.access.presence import Presence
from gateway.clock import ManualClock
from gateway.storage.eventstore import EventStore, EventStoreError
from gateway.storage.tables import access_credentials, access_presence

HASHER = CardHasher(b"credential-test-key-0123456789")
PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")


async def _pg_store() -> AsyncIterator[EventStore]:
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
        pytest.skip(f"no PostgreSQL at {PG_HOST}:{PG_PORT}/{PG_DB} ({'; '.join(reasons)})")
    schema = f"gw_access_{uuid.uuid4().hex[:12]}"
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    store = EventStore(
        f"postgresql+asyncpg://{user}@{PG_HOST}:{PG_PORT}/{PG_DB}",
        connect_args={"server_settings": {"search_path": schema}},
    )
    try:
        await store.open()
        yield store
        await store.close()
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


@pytest_asyncio.fixture(loop_scope="function", params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    if request.param == "postgresql":
        async for s in _pg_store():
            yield s
        return
    s = EventStore(f"sqlite+aiosqlite:///{tmp_path}/data/events.db")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 21, 2, 0, tzinfo=UTC))


def resident(creds: CredentialIndex, id: str, card: str, **kw: Any) -> Credential:
    return creds.make(
        id=id, kind="resident", holder=f"住户{id}", group="residents", card=card, **kw
    )


def test_make_hashes_every_kind_of_value(clock: ManualClock) -> None:
    index = CredentialIndex(HASHER, clock=clock)
    hexed = resident(index, "R-1", "0x00BC614E")
    decimal = index.make(
        id="R-2", kind="resident", holder="张三", group="g", card="12345678", card_decimal=True
    )
    assert hexed.card_uid == decimal.card_uid == "BC614E"
    assert hexed.card_hash == decimal.card_hash == HASHER.card("BC614E")
    assert hexed.created_ts == clock.time_ns()
    qr = index.make(id="V-1", kind="visitor", holder="访客", group="g", qr="GWV1:tok")
    pin = index.make(id="S-1", kind="staff", holder="保安", group="g", pin="123456")
    plate = index.make(id="C-1", kind="vehicle", holder="李四", group="g", plate="沪A·12345")
    assert (qr.card_hash, qr.card_uid) == (HASHER.hash("qr", "GWV1:tok"), None)
    assert (pin.card_hash, pin.card_uid) == (HASHER.hash("pin", "123456"), None)
    assert (plate.card_hash, plate.plate, plate.card_uid) == (
        HASHER.plate("沪A12345"),
        "沪A12345",
        None,
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"card": "not-hex"}, "card"),
        ({"card": "12AB", "card_decimal": True}, "card"),
        ({"card": "01", "pin": "1234"}, "card"),
        ({"pin": "12"}, "pin"),
        ({"plate": " - "}, "plate"),
        ({}, "card"),
        ({"card": "01", "id": "has space"}, "id"),
        ({"card": "01", "group": "a/b"}, "group"),
        ({"card": "01", "kind": "alien"}, "kind"),
        ({"card": "01", "valid_from": 10, "valid_until": 5}, "valid_until"),
        ({"card": "01", "uses_left": -1}, "uses_left"),
    ],
)
def test_make_names_the_bad_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"id": "X-1", "kind": "resident", "holder": "某人", "group": "g"}
    with pytest.raises(CredentialError) as err:
        CredentialIndex(HASHER).make(**(args | kwargs))  # type: ignore[arg-type]
    assert err.value.field == field


async def test_upsert_then_load_round_trips(store: EventStore, clock: ManualClock) -> None:
    creds = CredentialStore(store, HASHER, clock)
    items = [
        resident(
            creds,
            "R-0001",
            "BC614E",
            certifications=["hv_electrician", "fire_warden"],
            data={"phone": "13800138000", "unit": "3-1201", "note": "轮椅通道"},
            valid_from=1_790_000_000_000_000_000,
            valid_until=1_800_000_000_000_000_000,
        ),
        creds.make(
            id="C-0001",
            kind="vehicle",
            holder="李四",
            group="cars",
            card="C0FFEE",
            plate="沪A12345",
        ),
        creds.make(
            id="V-1", kind="visitor", holder="访客", group="visitors", qr="GWV1:x", uses_left=2
        ),
    ]
    await creds.upsert(items)
    assert len(creds) == 3
    loaded = CredentialStore(store, HASHER, clock)
    await loaded.load()
    assert sorted(loaded, key=lambda c: c.id) == sorted(items, key=lambda c: c.id)
    got = loaded.get("R-0001")
    assert got is not None and got.certifications == ("hv_electrician", "fire_warden")
    assert got.created_ts == got.updated_ts == clock.time_ns()
    assert loaded.lookup("card", "bc:61:4e") == got
    assert loaded.lookup("card", "12345678") is None  # hex, not decimal
    assert loaded.lookup("plate", "沪A 12345") == loaded.lookup("card", "C0FFEE") == items[1]
    assert loaded.lookup("qr", "GWV1:x") == items[2]
    assert loaded.lookup("card", "zz") is None


async def test_upsert_replaces_and_keeps_created_ts(store: EventStore, clock: ManualClock) -> None:
    creds = CredentialStore(store, HASHER, clock)
    await creds.upsert([resident(creds, "R-1", "0A01")])
    created = clock.time_ns()
    await clock.advance(60)
    await creds.upsert([resident(creds, "R-1", "0A02", blacklisted=True)])
    got = creds.get("R-1")
    assert got is not None and got.blacklisted
    assert (got.created_ts, got.updated_ts) == (created, clock.time_ns())
    assert creds.lookup("card", "0A01") is None and creds.lookup("card", "0A02") == got
    reloaded = CredentialStore(store, HASHER, clock)
    await reloaded.load()
    stored = reloaded.get("R-1")
    assert stored == got and stored is not None and stored.created_ts == created


async def test_a_card_belongs_to_one_credential(store: EventStore, clock: ManualClock) -> None:
    creds = CredentialStore(store, HASHER, clock)
    await creds.upsert([resident(creds, "R-1", "0A01"), resident(creds, "R-2", "0A02")])
    with pytest.raises(CredentialConflict, match="R-3: card or plate already held by R-1"):
        await creds.upsert([resident(creds, "R-4", "0A04"), resident(creds, "R-3", "0A01")])
    with pytest.raises(CredentialConflict, match="same card or plate"):
        await creds.upsert([resident(creds, "R-5", "0A05"), resident(creds, "R-6", "0A05")])
    with pytest.raises(CredentialError, match="listed twice"):
        await creds.upsert([resident(creds, "R-7", "0A07"), resident(creds, "R-7", "0A08")])
    # swapping two cards in one batch is fine
    await creds.upsert([resident(creds, "R-1", "0A02"), resident(creds, "R-2", "0A01")])
    reloaded = CredentialStore(store, HASHER, clock)
    await reloaded.load()
    assert sorted(c.id for c in reloaded) == ["R-1", "R-2"]
    assert reloaded.lookup("card", "0A01") == creds.get("R-2")


async def test_index_follows_only_committed_writes(store: EventStore, clock: ManualClock) -> None:
    creds = CredentialStore(store, HASHER, clock)
    await store.close()
    with pytest.raises(EventStoreError):
        await creds.upsert([resident(creds, "R-1", "0A01")])
    assert len(creds) == 0 and creds.lookup("card", "0A01") is None


async def test_delete_blacklist_and_consume(store: EventStore, clock: ManualClock) -> None:
    creds = CredentialStore(store, HASHER, clock)
    visitor = creds.make(id="V-1", kind="visitor", holder="访客", group="v", qr="T", uses_left=3)
    await creds.upsert([resident(creds, "R-1", "0A01"), visitor])
    async with store.begin(write=True) as conn:
        await Presence().write_in(conn, [Presence().set("R-1", "estate", "gate", 1)])
    await clock.advance(5)
    flagged = await creds.set_blacklisted("R-1", True)
    assert flagged.blacklisted and flagged.updated_ts == clock.time_ns()
    assert creds.lookup("card", "0A01") == flagged
    with pytest.raises(CredentialNotFound):
        await creds.set_blacklisted("nobody", True)
    async with store.begin(write=True) as conn:
        await creds.consume_in(conn, "V-1", 2)
    assert creds.lookup("qr", "T") is not None and creds.lookup("qr", "T").uses_left == 2  # type: ignore[union-attr]
    assert await creds.delete("R-1") and not await creds.delete("R-1")
    assert creds.get("R-1") is None and creds.lookup("card", "0A01") is None

    reloaded = CredentialStore(store, HASHER, clock)
    await reloaded.load()
    assert [(c.id, c.uses_left) for c in reloaded] == [("V-1", 2)]
    async with store.begin() as conn:
        assert (await conn.execute(select(access_presence))).all() == []


def ids(found: list[Credential]) -> list[str]:
    return [c.id for c in found]


async def test_query_by_kind_group_and_text(store: EventStore, clock: ManualClock) -> None:
    creds = CredentialStore(store, HASHER, clock)
    await creds.upsert(
        [
            resident(creds, "R-1", "0A01", data={"unit": "3-1201", "phone": "13800138000"}),
            resident(creds, "R-2", "0A02", data={"unit": "5-0302"}),
            creds.make(id="C-1", kind="vehicle", holder="王五", group="cars", plate="沪A12345"),
            creds.make(id="S_1", kind="staff", holder="Guard Li 100%", group="staff", card="0B01"),
        ]
    )
    assert ids(await creds.query()) == ["C-1", "R-1", "R-2", "S_1"]
    assert ids(await creds.query(kind="resident")) == ["R-1", "R-2"]
    assert ids(await creds.query(group="cars")) == ["C-1"]
    assert ids(await creds.query(text="住户R-2")) == ["R-2"]
    assert ids(await creds.query(text="沪a123")) == ["C-1"]
    assert ids(await creds.query(text="3-12")) == ["R-1"]
    assert ids(await creds.query(text="138001")) == ["R-1"]
    assert ids(await creds.query(text="guard")) == ["S_1"]
    assert ids(await creds.query(text="%")) == ids(await creds.query(text="_")) == ["S_1"]
    assert ids(await creds.query(text="0a:02")) == ["R-2"]  # the card itself
    assert ids(await creds.query(limit=2, offset=1)) == ["R-1", "R-2"]
    one = (await creds.query(text="R-1"))[0]
    assert one == creds.get("R-1") and one.data == {"unit": "3-1201", "phone": "13800138000"}


async def test_100k_credentials_load_fast(tmp_path: Path, clock: ManualClock) -> None:
    """Not a timing assertion: prints what it took (the bench measures)."""
    store = EventStore(f"sqlite+aiosqlite:///{tmp_path}/events.db")
    await store.open()
    try:
        creds = CredentialStore(store, HASHER, clock)
        many = [
            creds.make(
                id=f"R-{i:06d}",
                kind="vehicle" if i % 10 == 0 else "resident",
                holder=f"住户{i}",
                group="residents",
                card=f"{i + 1:08X}",
                plate=f"沪A{i:05d}" if i % 10 == 0 else None,
                data={"unit": f"{i % 30}-{i % 700}", "phone": f"138{i:08d}"},
            )
            for i in range(100_000)
        ]
        t0 = time.perf_counter()
        await creds.upsert(many)
        t1 = time.perf_counter()
        loaded = CredentialStore(store, HASHER, clock)
        await loaded.load()
        t2 = time.perf_counter()
        print(f"100k credentials: upsert {t1 - t0:.2f} s, load {t2 - t1:.2f} s")
        assert len(loaded) == 100_000
        assert loaded.lookup("plate", "沪A99990") == many[99_990]
        assert loaded.lookup("card", f"{50_001:08X}") == many[50_000]
        async with store.begin() as conn:
            rows = (await conn.execute(select(access_credentials.c.id))).all()
        assert len(rows) == 100_000
    finally:
        await store.close()


async def test_a_change_by_another_process_is_loaded_and_our_own_is_not_reloaded(
    store: EventStore, clock: ManualClock
) -> None:
    """The CLI's import writes from another process: the running gateway's store
    sees the table's (count, newest change) move and loads it again; its own
    writes and the uses a visitor consumed do not cause a reload."""
    running = CredentialStore(store, HASHER, clock)
    await running.load()
    await running.upsert([resident(running, "R-1", "0A0B0C")])
    assert await running.reload_if_changed() is False

    other = CredentialStore(store, HASHER, clock)  # `gateway access import`
    await other.load()
    await clock.advance(1)
    await other.upsert([resident(other, "R-2", "0D0E0F")])
    assert running.lookup("card", "0D0E0F") is None
    assert await running.reload_if_changed() is True
    found = running.lookup("card", "0D0E0F")
    assert found is not None and found.id == "R-2"
    assert await running.reload_if_changed() is False

    await other.delete("R-1")
    assert await running.reload_if_changed() is True
    assert running.get("R-1") is None and len(running) == 1
