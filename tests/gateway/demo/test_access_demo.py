"""The access part of the demo: the seed, the traffic curve, and incidents
staged on the real simulators (libosdp PDs on a socat pty, the Modbus estate,
Mosquitto) through a real Gateway running config/demo-estate.yaml."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from gateway.access.cards import CardHasher
from gateway.access.credentials import CredentialStore
from gateway.clock import ManualClock
from gateway.demo.access_seed import SeedResult, make_roster, seed_access
from gateway.demo.access_traffic import (
    Direction,
    TrafficCurve,
    TrafficScheduler,
    Trip,
    Whereabouts,
)
from gateway.storage.eventstore import EventStore
from tests.fixtures.servers import Server, free_port

SITE = Path(__file__).resolve().parents[3] / "config" / "demo-estate.yaml"
ZONE = "Asia/Shanghai"


# --- the seed ----------------------------------------------------------------------


async def test_the_seed_is_made_once_and_is_idempotent(tmp_path: Path) -> None:
    roster = make_roster()
    assert roster == make_roster() and roster != make_roster(seed=7)
    assert (len(roster.residents), len(roster.vehicles), len(roster.staff)) == (300, 60, 6)
    assert [s.id for s in roster.electricians] == ["stf-01", "stf-02"]
    cards = [h.card for h in roster if h.card is not None]
    assert len(set(cards)) == len(cards) == 307
    assert all(len(c) == 6 and c.startswith("12") for c in cards)  # 26-bit, facility 18
    clock, hasher = ManualClock(), CardHasher(b"demo-test-key-32-bytes-long-0000")
    async with EventStore(f"sqlite+aiosqlite:///{tmp_path}/gw.db") as store:
        creds = CredentialStore(store, hasher, clock)
        await creds.load()
        assert await seed_access(creds, roster) == SeedResult(added=367, present=0, skipped=0)
        assert creds.lookup("card", roster.blacklisted.card or "").blacklisted  # type: ignore[union-attr]
        car = roster.vehicles[0]
        assert creds.lookup("plate", car.plate or "").id == car.id  # type: ignore[union-attr]
        # An operator lifts the blacklisting; a second demo run adds nothing and undoes nothing.
        await creds.set_blacklisted(roster.blacklisted.id, False)
        again = CredentialStore(store, hasher, clock)
        await again.load()
        assert await seed_access(again, make_roster()) == SeedResult(0, 367, 0)
        assert again.get(roster.blacklisted.id).blacklisted is False  # type: ignore[union-attr]
        assert len(await again.query(limit=1000)) == 367


# --- the traffic curve on a ManualClock --------------------------------------------


async def test_passages_per_hour_follow_the_daily_curve() -> None:
    zone = ZoneInfo(ZONE)
    start = datetime(2026, 3, 2, tzinfo=zone).astimezone(UTC)  # local midnight, a Monday
    clock = ManualClock(start)
    curve = TrafficCurve(ZONE, peak_per_hour=360)
    trips: list[Trip] = []

    async def perform(trip: Trip) -> bool:
        trips.append(trip)
        return True

    sched = TrafficScheduler(make_roster(), curve, clock, perform, first_after_s=0)
    task = asyncio.create_task(sched.run())
    for _ in range(24):
        await clock.advance(3600)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    per_hour = Counter(t.at.astimezone(zone).hour for t in trips)
    for hour in range(24):
        t0 = start + timedelta(hours=hour)
        expected = curve.expected(t0, t0 + timedelta(hours=1))
        assert abs(per_hour[hour] - expected) <= 0.15 * expected + 3, (hour, per_hour, expected)
    assert per_hour[8] > 10 * per_hour[3] and per_hour[18] > 10 * per_hour[2]
    modes = Counter(t.mode for t in trips)
    assert modes["walk"] > modes["drive"] > modes["power_room"] > 0
    assert sched.where.busy == set()


@pytest.mark.parametrize(("hour", "more"), [(7, "out"), (18, "in")])
async def test_people_leave_in_the_morning_and_come_home_in_the_evening(
    hour: int, more: Direction
) -> None:
    roster = make_roster()
    half_in = {h.id: "estate" for h in roster.walkers[::2]}
    clock = ManualClock(datetime(2026, 3, 2, hour, tzinfo=ZoneInfo(ZONE)).astimezone(UTC))
    trips: list[Trip] = []

    async def perform(trip: Trip) -> bool:
        trips.append(trip)
        return True

    sched = TrafficScheduler(
        roster,
        TrafficCurve(ZONE, peak_per_hour=120),
        clock,
        perform,
        whereabouts=Whereabouts(half_in),
        vehicle_share=0,
        power_room_share=0,
        first_after_s=0,
    )
    task = asyncio.create_task(sched.run())
    await clock.advance(3600)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    directions = Counter(t.direction for t in trips)
    less: Direction = "in" if more == "out" else "out"
    assert directions[more] > 2 * directions[less]


# --- incidents on the real simulators, through a real Gateway -----------------------

pytestmark_real = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Live:
    gw: Any
    stage: Any
    field: Any


async def _until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory, mosquitto: Server) -> AsyncIterator[Live]:
    pytest.importorskip("osdp", reason="needs estate-gateway[cards] (libosdp)")
    pytest.importorskip("pymodbus", reason="needs estate-gateway[modbus]")
    from drivers.modbus.estate import Estate
    from gateway.config.loader import load_site
    from gateway.demo.access_field import AccessField, MqttLink, reader_rig
    from gateway.demo.access_incidents import Stage
    from gateway.demo.run import DEMO_OSDP_KEY
    from gateway.registry import load_registry
    from gateway.runtime import Gateway

    tmp = tmp_path_factory.mktemp("access-demo")
    old_key = os.environ.get("DEMO_OSDP_KEY")
    os.environ["DEMO_OSDP_KEY"] = DEMO_OSDP_KEY  # the osdp driver reads it when it starts
    async with contextlib.AsyncExitStack() as stack:
        estate = await stack.enter_async_context(Estate())
        rig = await stack.enter_async_context(
            reader_rig(tmp / "osdp", bytes.fromhex(DEMO_OSDP_KEY))
        )
        env = {
            **os.environ,
            "DEMO_MQTT_PORT": str(mosquitto.port),
            "DEMO_DATA_DIR": str(tmp / "data"),
            "DEMO_MODBUS_POWER_PORT": str(estate.ports["power_room"]),
            "DEMO_MODBUS_PUMP_PORT": str(estate.ports["pump_room"]),
            "DEMO_API_PORT": str(free_port()),
            **rig.env,
        }
        site = load_site(SITE, env=env)
        gw = Gateway(site, load_registry())
        stop = asyncio.Event()
        runner = asyncio.create_task(gw.run(stop))

        async def ready() -> bool:
            access = gw.access
            online = all(r.online and r.sc_active for r in rig.readers.values())
            return access is not None and access.decider is not None and online

        await _until(ready, "the access service and three readers in secure channel", 30)
        assert gw.access is not None and gw.access.credentials is not None
        roster = make_roster()
        await seed_access(gw.access.credentials, roster)
        link = MqttLink("127.0.0.1", mosquitto.port, f"sim/{site.config.site.id}", gw.clock)
        link_task = asyncio.create_task(link.run())
        await asyncio.wait_for(link.connected.wait(), 10)
        relays = {d.id: d.relay.device for d in site.config.access.doors if d.relay}
        field = AccessField(rig.readers, relays, link, estate, gw.clock)
        stage = Stage(field, roster, Whereabouts(), gw.clock, random.Random(1), 30.0, 3.0)
        try:
            yield Live(gw, stage, field)
        finally:
            link_task.cancel()
            await asyncio.gather(link_task, return_exceptions=True)
            stop.set()
            await runner
    if old_key is None:
        os.environ.pop("DEMO_OSDP_KEY", None)
    else:
        os.environ["DEMO_OSDP_KEY"] = old_key


async def _stored(gw: Any, etype: str, source: str) -> list[Any]:
    stored = await gw.store.query(types=[etype], source=source)
    return [s.event for s in stored]


@pytestmark_real
async def test_a_blacklisted_card_at_a_real_reader_is_denied(live: Live) -> None:
    from gateway.demo.access_incidents import INCIDENTS, IncidentScheduler

    sched = IncidentScheduler(live.stage)
    assert await sched.play(INCIDENTS[0])  # blacklisted: the gate stayed shut
    passages = await live.gw.access.passages.query(door="gate_n1", reason="blacklisted")
    assert [(p.credential_id, p.granted, p.reader) for p in passages] == [
        ("blk-001", False, "gate_n1_in")
    ]
    events = await _until(
        lambda: _stored(live.gw, "access.blacklisted", "gate_n1"), "access.blacklisted stored"
    )
    assert events[0].data["credential"] == "blk-001"


@pytestmark_real
async def test_a_tailgate_after_a_real_grant(live: Live) -> None:
    from gateway.demo.access_incidents import INCIDENTS, IncidentScheduler

    assert await IncidentScheduler(live.stage).play(INCIDENTS[2])  # two through on one card
    granted = await live.gw.access.passages.query(door="gate_n1", granted=True)
    assert len(granted) == 1 and granted[0].kind == "resident"
    assert granted[0].credential_id in live.stage.where.inside
    events = await _until(
        lambda: _stored(live.gw, "access.tailgate", "gate_n1"), "access.tailgate stored"
    )
    assert (events[0].data["passages"], events[0].data["grants"]) == (2, 1)


@pytestmark_real
async def test_the_power_room_door_forced_on_the_modbus_contact(live: Live) -> None:
    from gateway.demo.access_incidents import INCIDENTS, IncidentScheduler

    assert await IncidentScheduler(live.stage).play(INCIDENTS[1])
    await _until(lambda: _stored(live.gw, "door.forced", "power_room_door"), "door.forced stored")
    await _until(lambda: _stored(live.gw, "door.closed", "power_room_door"), "door.closed stored")
