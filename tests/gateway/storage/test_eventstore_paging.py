"""EventStore.query paging backwards (newest first, before_id) and type prefixes,
on real SQLite and, when one is reachable, a real PostgreSQL (the fixtures of
test_eventstore.py)."""

from __future__ import annotations

from typing import Any

from gateway.model import Event
from gateway.storage.eventstore import EventStore, StoredEvent
from tests.gateway.storage.test_eventstore import backend, store

__all__ = ["backend", "store"]  # the fixtures, used by name


def _ev(type_: str, source: str, ts: int, **data: Any) -> Event:
    return Event(type=type_, source=source, ts=ts, data=data)


def ids_of(rows: list[StoredEvent]) -> list[int]:
    return [r.id for r in rows]


async def _fill(store: EventStore) -> list[int]:
    return await store.append_many(
        [
            _ev("alarm.activated", "tx1.temp", 100, id="a"),
            _ev("alarm.acknowledged", "tx1.temp", 200, id="a"),
            _ev("alarmist.joke", "tx1.temp", 300),
            _ev("access.denied", "gate1", 400, card="A1"),
            _ev("alarm_x", "gate1", 500),  # '_' is a LIKE wildcard: must not match 'alarm.'
            _ev("alarm.cleared", "tx1.temp", 600, id="a"),
        ]
    )


async def test_descending_pages_back_with_before_id(store: EventStore) -> None:
    ids = await _fill(store)
    newest_first = list(reversed(ids))
    assert ids_of(await store.query(descending=True)) == newest_first
    page1 = await store.query(descending=True, limit=4)
    assert ids_of(page1) == newest_first[:4]
    page2 = await store.query(descending=True, limit=4, before_id=page1[-1].id)
    assert ids_of(page2) == newest_first[4:]
    assert await store.query(descending=True, before_id=ids[0]) == []
    # before_id also works ascending, and with after_id as a window
    assert ids_of(await store.query(before_id=ids[2])) == ids[:2]
    assert ids_of(await store.query(after_id=ids[0], before_id=ids[3])) == ids[1:3]
    # the other filters still apply
    assert ids_of(await store.query(source="gate1", descending=True)) == [ids[4], ids[3]]
    assert ids_of(await store.query(since=200, until=500, descending=True)) == [
        ids[3],
        ids[2],
        ids[1],
    ]


async def test_type_prefixes_alone_and_with_exact_types(store: EventStore) -> None:
    ids = await _fill(store)
    assert ids_of(await store.query(type_prefixes=["alarm."])) == [ids[0], ids[1], ids[5]]
    assert ids_of(await store.query(type_prefixes="alarm.")) == [ids[0], ids[1], ids[5]]
    assert ids_of(await store.query(type_prefixes=["alarm"])) == [
        ids[0],
        ids[1],
        ids[2],
        ids[4],
        ids[5],
    ]
    assert ids_of(
        await store.query(types=["access.denied"], type_prefixes=["alarm."], descending=True)
    ) == [ids[5], ids[3], ids[1], ids[0]]
    # '%' and '_' in a prefix are literal characters
    assert await store.query(type_prefixes=["alarm_"]) != []
    assert await store.query(type_prefixes=["%"]) == []
    # an empty prefix matches every type; no types and no prefixes match nothing
    assert ids_of(await store.query(type_prefixes=[""])) == ids
    assert await store.query(types=[], type_prefixes=[]) == []
    assert ids_of(await store.query(types=[], type_prefixes=["access."])) == [ids[3]]


async def test_existing_calls_are_unchanged(store: EventStore) -> None:
    ids = await _fill(store)
    assert ids_of(await store.query()) == ids
    assert ids_of(await store.query(["access.denied"], "gate1")) == [ids[3]]
    assert await store.query(types=[]) == []
    assert ids_of(await store.query(types=["alarm.*"])) == []  # no wildcard in exact types
