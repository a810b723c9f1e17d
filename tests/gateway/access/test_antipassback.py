"""Anti-passback per area (hard, soft, off), vehicles' "no card, no exit",
and presence kept across a restart in a real SQLite file and, when reachable,
PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gateway.access.cards import CardHasher, ValueClass
from gateway.access.config import AccessConfig
from gateway.access.credentials import Credential, CredentialIndex
from gateway.access.decision import (
    ALARM_ANTIPASSBACK,
    ALARM_NO_ENTRY,
    CardRead,
    Decider,
    Decision,
    Reason,
)
from gateway.access.presence import Presence, PresenceEntry
from gateway.rules.schedule import CalendarConfig
from gateway.storage.eventstore import EventStore

HASHER = CardHasher(b"antipassback-test-key-012345")
CFG = AccessConfig.model_validate(
    {
        "areas": [
            {"id": "estate", "anti_passback": "hard"},
            {"id": "club", "anti_passback": "soft"},
            {"id": "park"},
            {"id": "car_park", "no_card_no_exit": True},
            {"id": "garage", "anti_passback": "hard", "no_card_no_exit": True},
        ],
        "doors": [
            {"id": "gate_north", "area": "estate"},
            {"id": "gate_south", "area": "estate"},
            {"id": "club_door", "area": "club"},
            {"id": "park_gate", "area": "park"},
            {"id": "car_barrier", "area": "car_park", "vehicle": True},
            {"id": "car_park_stairs", "area": "car_park"},
            {"id": "garage_barrier", "area": "garage", "vehicle": True},
        ],
        "groups": {"all": {"doors": ["*"]}},
        "visitors": {"group": "all"},
    }
)
DOORS = {d.id: d for d in CFG.doors}
T0 = 1_795_000_000_000_000_000


def creds() -> list[Credential]:
    index = CredentialIndex(HASHER)
    return [
        index.make(id="R-1", kind="resident", holder="张三", group="all", card="0A01"),
        index.make(id="C-1", kind="vehicle", holder="李四", group="all", plate="沪A12345"),
    ]


def decider(presence: Presence | None = None) -> tuple[Decider, Presence]:
    presence = presence if presence is not None else Presence()
    index = CredentialIndex(HASHER, creds())
    return Decider(CFG, CalendarConfig(), "Asia/Shanghai", index, presence), presence


def passage(d: Decider, door: str, direction: Any = "in", who: str = "R-1", n: int = 0) -> Decision:
    cls: ValueClass = "card" if who == "R-1" else "plate"
    value = "0A01" if who == "R-1" else "沪A12345"
    return d.decide(CardRead("r", DOORS[door], direction, T0 + n, cls, value, "x"))


def test_hard_denies_a_second_entry_and_an_exit_without_entry() -> None:
    d, presence = decider()
    assert passage(d, "gate_north").granted
    again = passage(d, "gate_south")
    assert (again.granted, again.reason, again.alarms) == (
        False,
        Reason.ANTIPASSBACK,
        (ALARM_ANTIPASSBACK,),
    )
    assert presence.area_of("R-1") == "estate"
    assert passage(d, "gate_south", "out").granted
    out_again = passage(d, "gate_north", "out")
    assert (out_again.granted, out_again.reason) == (False, Reason.ANTIPASSBACK)
    assert passage(d, "gate_north").granted


def test_soft_grants_with_an_alarm() -> None:
    d, presence = decider()
    assert passage(d, "club_door").alarms == ()
    second = passage(d, "club_door")
    assert second.granted and second.reason is Reason.GRANTED
    assert second.alarms == (ALARM_ANTIPASSBACK,) and second.area_after == "club"
    assert passage(d, "club_door", "out").alarms == ()
    lone_exit = passage(d, "club_door", "out")
    assert lone_exit.granted and lone_exit.alarms == (ALARM_ANTIPASSBACK,)
    assert presence.area_of("R-1") == "outside"


def test_off_checks_nothing() -> None:
    d, _ = decider()
    for direction in ("in", "in", "out", "out"):
        dec = passage(d, "park_gate", direction)
        assert dec.granted and dec.alarms == ()


def test_no_card_no_exit_with_anti_passback_off_grants_with_an_alarm() -> None:
    d, _ = decider()
    lone_exit = passage(d, "car_barrier", "out", who="C-1")
    assert lone_exit.granted and lone_exit.alarms == (ALARM_NO_ENTRY,)
    assert passage(d, "car_barrier", "in", who="C-1").alarms == ()
    exit_ = passage(d, "car_barrier", "out", who="C-1")
    assert exit_.granted and exit_.alarms == () and exit_.area_after == "outside"


def test_no_card_no_exit_with_hard_anti_passback_denies() -> None:
    d, presence = decider()
    lone_exit = passage(d, "garage_barrier", "out", who="C-1")
    assert (lone_exit.granted, lone_exit.reason, lone_exit.alarms) == (
        False,
        Reason.NO_ENTRY,
        (ALARM_NO_ENTRY,),
    )
    assert presence.area_of("C-1") == "outside"
    assert passage(d, "garage_barrier", "in", who="C-1").granted
    assert passage(d, "garage_barrier", "in", who="C-1").reason is Reason.ANTIPASSBACK
    assert passage(d, "garage_barrier", "out", who="C-1").granted


def test_no_card_no_exit_is_for_vehicles_only() -> None:
    d, _ = decider()
    on_foot = passage(d, "car_park_stairs", "out")  # a resident's card, a pedestrian door
    assert on_foot.granted and on_foot.alarms == ()
    by_card = passage(d, "car_barrier", "out")  # a person's card at a barrier is a vehicle
    assert by_card.granted and by_card.alarms == (ALARM_NO_ENTRY,)


# -- presence across a restart -------------------------------------------------

PG = ("127.0.0.1", 5432, "test")


@pytest_asyncio.fixture(loop_scope="function", params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    if request.param == "sqlite":
        s = EventStore(f"sqlite+aiosqlite:///{tmp_path}/events.db")
        await s.open()
        yield s
        await s.close()
        return
    asyncpg = pytest.importorskip("asyncpg")
    try:
        conn = await asyncpg.connect(host=PG[0], port=PG[1], user="postgres", database=PG[2])
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL at {PG[0]}:{PG[1]}/{PG[2]}: {exc}")
    schema = f"gw_access_{uuid.uuid4().hex[:12]}"
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    s = EventStore(
        f"postgresql+asyncpg://postgres@{PG[0]}:{PG[1]}/{PG[2]}",
        connect_args={"server_settings": {"search_path": schema}},
    )
    try:
        await s.open()
        yield s
        await s.close()
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


async def test_presence_survives_a_restart(store: EventStore) -> None:
    d, presence = decider()
    entries: list[PresenceEntry] = []
    for door, direction, who in [
        ("gate_north", "in", "R-1"),
        ("gate_north", "out", "R-1"),
        ("gate_south", "in", "R-1"),  # the last one of R-1 wins
        ("garage_barrier", "in", "C-1"),
    ]:
        dec = passage(d, door, direction, who=who, n=len(entries))
        assert dec.granted and dec.credential is not None and dec.area_after is not None
        entries.append(presence.set(dec.credential.id, dec.area_after, door, T0 + len(entries)))
    async with store.begin(write=True) as conn:
        await presence.write_in(conn, entries[:2])
    async with store.begin(write=True) as conn:
        await presence.write_in(conn, entries[2:])

    reloaded = Presence()
    await reloaded.load(store)
    assert sorted(reloaded, key=lambda e: e.credential_id) == [
        PresenceEntry("C-1", "garage", "garage_barrier", T0 + 3),
        PresenceEntry("R-1", "estate", "gate_south", T0 + 2),
    ]
    assert [e.credential_id for e in reloaded.inside("garage")] == ["C-1"]
    d2, _ = decider(reloaded)
    assert passage(d2, "gate_north").reason is Reason.ANTIPASSBACK
    assert passage(d2, "garage_barrier", "out", who="C-1").granted
