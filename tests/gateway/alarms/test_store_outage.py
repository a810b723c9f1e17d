"""The event store cannot be written: nothing is announced, nothing is lost,
and the order holds once it is back.

The outage is real: another connection holds SQLite's write lock (as a backup
tool or a second writer would), so the store's transactions fail with
'database is locked' (EventStoreUnavailable).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.alarms import AlarmsConfig, AlarmStoreUnavailable
from gateway.alarms.persistence import read_rows
from gateway.clock import ManualClock
from gateway.model import Command
from gateway.storage.eventstore import EventStore
from tests.gateway.alarms.harness import START, Harness, sqlite_url, until


async def test_store_down_nothing_published_then_delivered_in_order(tmp_path: Path) -> None:
    store = EventStore(sqlite_url(tmp_path))
    await store.open()
    try:
        async with store.begin() as conn:  # fail fast instead of waiting 5 s for the lock
            await conn.exec_driver_sql("PRAGMA busy_timeout=50")
        h = Harness(store, ManualClock(START), AlarmsConfig(control_rooms=["main", "east"]))
        await h.start()
        await h.apply(h.ch("door", "gate1"))
        assert len(h.published) == 1

        locker = sqlite3.connect(tmp_path / "data" / "gw.db", isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # holds the write lock
        try:
            first = asyncio.create_task(h.apply(h.ch("tx-temp", "tx1.temp"), h.ch("door", "gate2")))
            await until(lambda: h.m.store_down, "the manager to notice the outage")
            second = asyncio.create_task(h.apply(h.ch("door", "gate1", active=False)))
            await h.clock.advance(5)  # retries with backoff, still locked
            with pytest.raises(AlarmStoreUnavailable, match="nothing was changed"):
                await h.m.acknowledge("door@gate1", "op")
            outcome = await h.m.handle_command(
                Command("alarms", "acknowledge", {"id": "door@gate1"}, user="op", role="guard")
            )
            assert not outcome.ok and isinstance(outcome.error, AlarmStoreUnavailable)
            assert len(h.published) == 1  # nothing announced while nothing is stored
            assert not first.done() and not second.done()
            types = [s.event.type for s in await store.query()]  # reads still work in WAL
            assert types == ["alarm.activated"]
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await h.clock.advance(60)
        await asyncio.wait_for(asyncio.gather(first, second), 30)
        assert not h.m.store_down
        assert [(a.id, a.transition) for a in h.published] == [
            ("door@gate1", "activated"),
            ("tx-temp@tx1.temp", "activated"),
            ("door@gate2", "activated"),
            ("door@gate1", "cleared"),
        ]
        stored = [(s.event.data["id"], s.event.type) for s in await store.query()]
        assert stored == [(a.id, f"alarm.{a.transition}") for a in h.published]
        assert {r["id"] for r in await read_rows(store)} == {
            "door@gate1",
            "tx-temp@tx1.temp",
            "door@gate2",
        }
        # the operator's action works again
        assert (await h.m.acknowledge("door@gate1", "op")).state.value == "normal"
    finally:
        await store.close()
