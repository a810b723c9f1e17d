"""The daily report on a real store: a local day, denials by reason, who is inside."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest_asyncio
from sqlalchemy import insert

from gateway.access.cards import CardHasher
from gateway.access.config import AccessConfig
from gateway.access.credentials import CredentialStore
from gateway.access.passages import Passage, PassageLog
from gateway.access.report import daily_report, day_bounds, render_text
from gateway.clock import ManualClock
from gateway.model import from_datetime
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import access_presence

TZ = "Asia/Shanghai"
CFG = AccessConfig.model_validate(
    {
        "areas": [{"id": "estate"}, {"id": "car_park"}],
        "doors": [
            {"id": "gate1", "area": "estate"},
            {"id": "barrier1", "area": "car_park", "vehicle": True},
            {"id": "side", "area": "estate"},
        ],
    }
)


@pytest_asyncio.fixture(loop_scope="function")
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    async with EventStore(f"sqlite+aiosqlite:///{tmp_path}/gw.db") as s:
        yield s


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    """UTC ns of a wall time in the site's zone."""
    return from_datetime(datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(TZ)))


def p(ts: int, door: str, direction: str, granted: bool, reason: str = "granted") -> Passage:
    return Passage(
        ts=ts, door=door, reader="r", direction=direction, granted=granted, reason=reason,
        credential_id=None, kind="resident", card_hash=None, card_masked="**01",
        plate=None, mode="decide",
    )  # fmt: skip


def test_day_bounds_are_local_midnights() -> None:
    since, until = day_bounds(date(2026, 3, 10), TZ)
    assert since == from_datetime(datetime(2026, 3, 9, 16, tzinfo=UTC))
    assert until - since == 86_400 * 10**9
    dst_start, dst_end = day_bounds(date(2026, 3, 29), "Europe/Berlin")  # 23-hour day
    assert dst_end - dst_start == 23 * 3600 * 10**9


async def test_counts_of_one_local_day_and_who_is_inside(store: EventStore) -> None:
    log = PassageLog(store)
    rows = [
        p(at(2026, 3, 10, 0, 5), "gate1", "in", True),  # just after local midnight: counts
        p(at(2026, 3, 10, 7, 30), "gate1", "in", True),
        p(at(2026, 3, 10, 8, 0), "gate1", "out", True),
        p(at(2026, 3, 10, 9, 0), "gate1", "in", False, "unknown"),
        p(at(2026, 3, 10, 9, 1), "gate1", "in", False, "unknown"),
        p(at(2026, 3, 10, 12, 0), "barrier1", "in", True),
        p(at(2026, 3, 10, 13, 0), "barrier1", "out", False, "no_entry"),
        p(at(2026, 3, 10, 23, 59), "old_door", "in", True),  # no longer configured
        p(at(2026, 3, 9, 23, 59), "gate1", "in", True),  # the day before
        p(at(2026, 3, 11, 0, 0), "gate1", "in", True),  # the day after
    ]
    async with store.begin() as conn:
        await log.write_in(conn, rows)

    creds = CredentialStore(store, CardHasher(b"k" * 32), ManualClock())
    await creds.upsert(
        [
            creds.make(id="V1", kind="vehicle", holder="a", group="g", plate="沪A12345"),
            creds.make(id="V2", kind="vehicle", holder="b", group="g", plate="沪B12345"),
            creds.make(id="V3", kind="vehicle", holder="c", group="g", plate="沪C12345"),
            creds.make(id="R1", kind="resident", holder="d", group="g", card="01"),
            creds.make(id="S1", kind="staff", holder="e", group="g", card="02"),
        ]
    )
    async with store.begin() as conn:
        await conn.execute(
            insert(access_presence),
            [
                {"credential_id": "V1", "area": "car_park", "door": "barrier1", "ts": 1},
                {"credential_id": "V2", "area": "car_park", "door": "barrier1", "ts": 1},
                {"credential_id": "V3", "area": "outside", "door": "barrier1", "ts": 1},
                {"credential_id": "R1", "area": "estate", "door": "gate1", "ts": 1},
                {"credential_id": "S1", "area": "estate", "door": "gate1", "ts": 1},
                {"credential_id": "GONE", "area": "estate", "door": "gate1", "ts": 1},
            ],
        )

    r = await daily_report(store, CFG, date(2026, 3, 10), TZ)
    by_door = {d.door: d for d in r.doors}
    assert [d.door for d in r.doors][:3] == ["gate1", "barrier1", "side"]
    assert (by_door["gate1"].entries, by_door["gate1"].exits, by_door["gate1"].denied) == (2, 1, 2)
    assert (by_door["barrier1"].entries, by_door["barrier1"].denied) == (1, 1)
    assert by_door["side"].entries == by_door["side"].exits == 0
    assert by_door["old_door"].entries == 1
    assert (r.entries, r.exits) == (4, 1)
    assert dict(r.denials) == {"unknown": 2, "no_entry": 1}
    assert list(r.denials) == ["unknown", "no_entry"]  # most frequent first
    assert dict(r.vehicles_inside) == {"car_park": 2}
    assert dict(r.people_inside) == {"estate": 2}

    text = render_text(r, "zh-CN")
    assert "门禁日报 2026-03-10" in text and "未登记的卡\t2" in text and "car_park\t2" in text
    en = render_text(r, "en")
    assert "Exit without entry\t1" in en and "Vehicles inside now" in en


async def test_an_empty_day(store: EventStore) -> None:
    r = await daily_report(store, CFG, date(2026, 1, 1), TZ)
    assert [d.entries for d in r.doors] == [0, 0, 0]
    assert r.denials == {} and r.vehicles_inside == {} and r.people_inside == {}
    assert "None" in render_text(r)
