"""A restart: a new AlarmManager on the same store carries on where the old one
stopped. Runs on SQLite and, when one is reachable, on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gateway.alarms import AlarmsConfig
from gateway.alarms.persistence import read_rows
from gateway.clock import ManualClock
from gateway.model import AlarmState
from gateway.storage.eventstore import EventStore
from tests.gateway.alarms.harness import RULES, START, Harness, pg_backend, sqlite_url

ROOMS = AlarmsConfig(control_rooms=["main", "east"])


@pytest_asyncio.fixture(loop_scope="function", params=["sqlite", "postgresql"])
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[], EventStore]]:
    if request.param == "sqlite":
        yield lambda: EventStore(sqlite_url(tmp_path))
    else:
        async for url, connect_args in pg_backend():

            def make(url: str = url, connect_args: dict[str, Any] = connect_args) -> EventStore:
                return EventStore(url, connect_args=connect_args)

            yield make


async def test_restart_restores_alarms_and_returns_active_conditions(
    make_store: Callable[[], EventStore],
) -> None:
    clock = ManualClock(START)
    store = make_store()
    await store.open()
    h = Harness(store, clock, ROOMS)
    await h.start(maintenance=["tx2"])
    await h.apply(
        h.ch("tx-temp", "tx1.temp", level="H", value=131.0),  # stays active, unacked
        h.ch("door", "gate1"),  # acked, active
        h.ch("pressure", "pump1.outlet", level="H"),  # shelved, active
        h.ch("fire", "panel1.zone3"),  # clears unacked: RTN_UNACK
        h.ch("tx-trip", "tx1.breaker"),  # latched: acked and cleared, waits for reset
        h.ch("device-offline", "feeder1"),  # marks feeder1 down
        h.ch("device-offline", "pump1"),  # suppressed: upstream feeder1 down
        h.ch("tx-temp", "tx2.temp"),  # suppressed: tx2 in maintenance (site file)
        h.ch("door", "gate9"),  # acked and cleared: normal, gone
    )
    await h.m.acknowledge("door@gate1", "guard1", note="on my way")
    await h.m.shelve("pressure@pump1.outlet", "eng", "pump overhaul", 3600)
    await h.m.acknowledge("tx-trip@tx1.breaker", "op")
    await h.m.acknowledge("door@gate9", "op")
    await h.m.set_maintenance("gate5", True, "eng", reason="lock replaced")
    await h.apply(
        h.ch("fire", "panel1.zone3", active=False),
        h.ch("tx-trip", "tx1.breaker", active=False),
        h.ch("door", "gate9", active=False),
    )
    before = {r.id: r for r in h.m.records()}
    assert "door@gate9" not in before
    await store.close()

    await clock.advance(600)
    store2 = make_store()
    await store2.open()
    try:
        h2 = Harness(store2, clock, ROOMS)
        active = await h2.start(maintenance=["tx2"])
        assert active == [
            ("device-offline", "feeder1"),
            ("device-offline", "pump1"),
            ("door", "gate1"),
            ("pressure", "pump1.outlet"),
            ("tx-temp", "tx1.temp"),
            ("tx-temp", "tx2.temp"),
        ]
        after = {r.id: r for r in h2.m.records()}
        assert after == before
        assert h2.published == []  # nothing changed: nothing to announce
        states = {aid: r.state for aid, r in after.items()}
        assert states == {
            "tx-temp@tx1.temp": AlarmState.UNACKNOWLEDGED,
            "door@gate1": AlarmState.ACKNOWLEDGED,
            "pressure@pump1.outlet": AlarmState.SHELVED,
            "fire@panel1.zone3": AlarmState.RTN_UNACKNOWLEDGED,
            "tx-trip@tx1.breaker": AlarmState.ACKNOWLEDGED,
            "device-offline@feeder1": AlarmState.UNACKNOWLEDGED,
            "device-offline@pump1": AlarmState.SUPPRESSED,
            "tx-temp@tx2.temp": AlarmState.SUPPRESSED,
        }
        assert after["door@gate1"].acked_by == "guard1"
        assert h2.m.maintenance == {"tx2", "gate5"}
        assert h2.m.down_devices == {"feeder1", "pump1"}
        # the shelving still expires on time, the latch still needs its reset
        assert h2.m.next_deadline() == after["pressure@pump1.outlet"].shelved_until
        await clock.advance(3000)
        (expired,) = await h2.m.tick()
        assert (expired.transition, expired.state) == ("shelve_expired", AlarmState.UNACKNOWLEDGED)
        assert (await h2.m.reset("tx-trip@tx1.breaker", "eng")).state is AlarmState.NORMAL
        # the feeder's return lifts the suppression restored from the store
        lifted = await h2.apply(h2.ch("device-offline", "feeder1", active=False))
        assert ("device-offline@pump1", "unsuppressed") in [(a.id, a.transition) for a in lifted]
        rows = {r["id"]: r for r in await read_rows(store2)}
        assert rows["device-offline@pump1"]["state"] == "unacknowledged"
        assert rows["door@gate1"]["active"] is True
    finally:
        await store2.close()


async def test_a_removed_rule_keeps_its_alarm_visible_and_marked(tmp_path: Path) -> None:
    clock = ManualClock(START)
    async with EventStore(sqlite_url(tmp_path)) as store:
        h = Harness(store, clock, ROOMS)
        await h.start()
        await h.apply(h.ch("door", "gate1"))
        h2 = Harness(store, clock, ROOMS)
        rules = {k: v for k, v in RULES.items() if k != "door"}
        assert await h2.start(rules=rules) == []  # the engine has no rule to seed
        rec = h2.m.get("door@gate1")
        assert rec is not None and rec.orphan and rec.state is AlarmState.UNACKNOWLEDGED
        await h2.m.acknowledge("door@gate1", "op")
        gone = await h2.m.reset("door@gate1", "op", note="rule removed from the site file")
        assert gone.state is AlarmState.NORMAL and h2.m.get("door@gate1") is None


async def test_site_file_maintenance_change_wins_over_an_older_toggle(tmp_path: Path) -> None:
    clock = ManualClock(START)
    async with EventStore(sqlite_url(tmp_path)) as store:
        h = Harness(store, clock, ROOMS)
        await h.start(maintenance=["tx1"])
        await h.m.set_maintenance("tx1", False, "eng")  # operator ends it
        h2 = Harness(store, clock, ROOMS)
        await h2.start(maintenance=["tx1"])  # same site file: the toggle holds
        assert h2.m.maintenance == frozenset()
        h3 = Harness(store, clock, ROOMS)
        await h3.start(maintenance=[])  # file edited since: it wins
        assert h3.m.maintenance == frozenset()
        await h3.m.set_maintenance("tx1", True, "eng", reason="again")
        h4 = Harness(store, clock, ROOMS)
        await h4.start(maintenance=["tx1", "tx9"])  # edited again: the file wins for tx1
        assert h4.m.maintenance == {"tx1", "tx9"}


async def test_flood_and_chattering_survive_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(START)
    async with EventStore(sqlite_url(tmp_path)) as store:
        h = Harness(store, clock, ROOMS)
        await h.start()
        for i in range(11):
            await h.apply(h.ch("door", f"gate{i}"))
        for _ in range(3):
            await h.apply(h.ch("tx-temp", "tx1.temp"), h.ch("tx-temp", "tx1.temp", active=False))
        assert h.m.flood("main").active and h.m.get("tx-temp@tx1.temp").chattering  # type: ignore[union-attr]
        since = h.m.flood("main").since_ns
        await clock.advance(30)
        h2 = Harness(store, clock, ROOMS)
        await h2.start()
        state = h2.m.flood("main")
        assert (state.active, state.since_ns, state.count) == (True, since, 14)
        assert h2.m.get("tx-temp@tx1.temp").chattering  # type: ignore[union-attr]
        await clock.advance(60)
        ended = await h2.m.tick()
        assert [(a.transition, a.data["chattering"]) for a in ended] == [("chattering", False)]
        await clock.advance(600)
        await h2.m.tick()
        assert not h2.m.flood("main").active
        assert [e.type for e in h2.notices] == ["alarm.flood_ended"]
