"""The passage log on a real SQLite event store: write in a transaction, query, page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from gateway.access.passages import Passage, PassageError, PassageLog
from gateway.storage.eventstore import EventStore

T0 = 1_767_225_600_000_000_000
S = 1_000_000_000


@pytest_asyncio.fixture(loop_scope="function")
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    async with EventStore(f"sqlite+aiosqlite:///{tmp_path}/gw.db") as s:
        yield s


def passage(i: int, **kw: object) -> Passage:
    base: dict[str, object] = {
        "ts": T0 + i * S,
        "door": "gate1" if i % 2 else "gate2",
        "reader": "rd1",
        "direction": "in",
        "granted": i % 3 != 0,
        "reason": "granted" if i % 3 else "unknown",
        "credential_id": f"R-{i % 4}" if i % 3 else None,
        "kind": "resident" if i % 3 else "unknown",
        "card_hash": f"h{i}",
        "card_masked": "**614E",
        "plate": None,
        "mode": "decide",
        "data": {"holder": "张三", "format": "wiegand26"},
    }
    base.update(kw)
    return Passage(**base)  # type: ignore[arg-type]


async def test_write_in_and_query_back(store: EventStore) -> None:
    log = PassageLog(store)
    async with store.begin(write=True) as conn:
        await log.write_in(conn, [passage(i) for i in range(1, 31)])
        await log.write_in(conn, [])
    rows = await log.query(limit=1000)
    assert len(rows) == 30
    assert [r.ts for r in rows] == sorted((r.ts for r in rows), reverse=True)  # newest first
    first = rows[-1]
    assert first.id is not None
    assert first == passage(1, id=first.id)
    assert first.data["holder"] == "张三"

    assert {r.door for r in await log.query(door="gate1", limit=100)} == {"gate1"}
    denied = await log.query(granted=False)
    assert denied and all(not r.granted and r.reason == "unknown" for r in denied)
    assert len(await log.query(reason="unknown")) == len(denied)
    assert {r.credential_id for r in await log.query(credential_id="R-1")} == {"R-1"}
    window = await log.query(since=T0 + 10 * S, until=T0 + 20 * S)
    assert sorted(r.ts for r in window) == [T0 + i * S for i in range(10, 20)]


async def test_paging_back_by_id(store: EventStore) -> None:
    log = PassageLog(store)
    async with store.begin() as conn:
        await log.write_in(conn, [passage(i) for i in range(25)])
    seen: list[int] = []
    before: int | None = None
    while page := await log.query(before_id=before, limit=10):
        seen += [p.id for p in page if p.id is not None]
        before = page[-1].id
    assert len(seen) == 25 == len(set(seen))
    assert seen == sorted(seen, reverse=True)


async def test_a_failed_transaction_writes_no_passage(store: EventStore) -> None:
    log = PassageLog(store)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.begin() as conn:
            await log.write_in(conn, [passage(1)])
            raise Boom
    assert await log.query() == []


async def test_bad_limits(store: EventStore) -> None:
    log = PassageLog(store)
    for bad in (0, 10_001, True):
        with pytest.raises(PassageError):
            await log.query(limit=bad)
