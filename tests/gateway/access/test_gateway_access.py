"""Access control end to end through the real Gateway: a door contact on a
real Modbus DI/DO module (the pymodbus simulator), its strike on a coil of the
same module, the default alarm rules, and 10,000 card reads while the
time-series database is down.

One gateway for the module: its site has a Modbus driver polling the
simulated ``dio_module_16ch`` (door contact on ``di_03``, strike on
``do_02``), a time-series sink on the shared InfluxDB 1.x, and two doors.
Card reads are put on the gateway's bus, as a reader driver would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from drivers.cards.events import card_presented
from drivers.modbus.estate import sim_device
from drivers.modbus.profiles import LIBRARY_DIR, ProfileLibrary
from drivers.modbus.simulator import ModbusSimulator, SimulatedDevice
from gateway.access.service import AccessService
from gateway.config.loader import load_site
from gateway.model import Command
from gateway.registry import load_registry
from gateway.runtime import Gateway
from gateway.storage.tables import access_passages, events
from tests.fixtures.servers import Server

pytestmark = pytest.mark.asyncio(loop_scope="module")

RESIDENTS = 300
BLACKLISTED = 20


def site_document(tmp: Path, modbus_port: int, influx_url: str) -> dict[str, Any]:
    return {
        "version": 1,
        "site": {"id": "acc", "name": "门禁测试", "timezone": "Asia/Shanghai"},
        "data_dir": str(tmp / "var"),
        "api": {"enabled": False},
        "devices": [
            {"id": "gate1", "kind": "gate", "name": "南门"},
            {"id": "room1", "kind": "door", "name": "配电房门"},
            {"id": "rd1", "kind": "card_reader"},
            {"id": "rd3", "kind": "card_reader"},
            {"id": "dio1", "kind": "other"},
        ],
        "drivers": [
            {
                "type": "modbus",
                "id": "plant",
                "offline_min_s": 0.2,
                "offline_max_s": 1.0,
                "connections": [
                    {
                        "host": "127.0.0.1",
                        "port": modbus_port,
                        "timeout_s": 0.5,
                        "devices": [
                            {
                                "device": "dio1",
                                "unit": 1,
                                "profile": "dio_module_16ch",
                                "interval_s": 0.1,
                                "points": {
                                    "do_02": {
                                        "table": "coil",
                                        "address": 1,
                                        "description": "power room door strike",
                                        "write": {"roles": ["access"], "pulse_s": 1},
                                    }
                                },
                            }
                        ],
                    }
                ],
            }
        ],
        "storage": {
            "timeseries": {
                "sink": {"type": "influxdb1", "url": influx_url, "database": "access_e2e"},
                "flush_interval_s": 0.1,
                "default_heartbeat_s": None,
            }
        },
        "access": {
            "areas": [{"id": "estate"}, {"id": "plant"}],
            "doors": [
                {
                    "id": "gate1",
                    "area": "estate",
                    "readers": [{"device": "rd1", "direction": "in"}],
                    "relay": {"device": "rd1"},
                },
                {
                    "id": "room1",
                    "area": "plant",
                    "from_area": "estate",
                    "readers": [{"device": "rd3", "direction": "in"}],
                    "relay": {"device": "dio1", "point": "dio1.do_02"},
                    "contact": {"point": "dio1.di_03"},
                    "prealarm_s": 1,
                    "held_open_s": 2,
                },
            ],
            "groups": {
                "residents": {"doors": ["gate1"]},
                "engineers": {"doors": ["*"]},
                "visitors": {"doors": ["gate1"]},
            },
        },
    }


@dataclass
class Estate:
    gw: Gateway
    dio: SimulatedDevice
    influx: Server

    @property
    def access(self) -> AccessService:
        assert self.gw.access is not None
        return self.gw.access

    async def wait_for(self, cond: Callable[[], bool], what: str, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while not cond():  # noqa: ASYNC110 (in-process state, no event to wait on)
                await asyncio.sleep(0.02)

    async def count(self, stmt: Any) -> int:
        assert self.gw.store is not None
        async with self.gw.store.begin() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    def alarm_active(self, alarm_id: str) -> bool:
        assert self.gw.alerting is not None
        rec = self.gw.alerting.manager.get(alarm_id)
        return rec is not None and rec.active


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def estate(
    tmp_path_factory: pytest.TempPathFactory, influxdb1: Server
) -> AsyncIterator[Estate]:
    tmp = tmp_path_factory.mktemp("access-gw")
    dio = sim_device(ProfileLibrary([LIBRARY_DIR]).load("dio_module_16ch"), 1)
    async with ModbusSimulator([dio]) as sim:
        doc = site_document(tmp, sim.port, influxdb1.url)
        (tmp / "site.yaml").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        gw = Gateway(load_site(tmp / "site.yaml", load_registry()), load_registry())
        stop = asyncio.Event()
        runner = asyncio.create_task(gw.run(stop))
        h = Estate(gw, dio, influxdb1)
        try:
            await h.wait_for(lambda: "access" in gw._services or runner.done(), "start", 30)
            if runner.done():
                runner.result()
            creds = h.access.credentials
            assert creds is not None
            people = (
                [
                    creds.make(
                        id=f"R{i:04d}",
                        kind="resident",
                        holder=f"住户{i}",
                        group="residents",
                        card=f"{0x100000 + i:X}",
                    )
                    for i in range(RESIDENTS)
                ]
                + [
                    creds.make(
                        id=f"B{i:04d}",
                        kind="resident",
                        holder=f"黑名单{i}",
                        group="residents",
                        card=f"{0x200000 + i:X}",
                        blacklisted=True,
                    )
                    for i in range(BLACKLISTED)
                ]
                + [creds.make(id="E1", kind="staff", holder="电工", group="engineers", card="E1E1")]
            )
            await creds.upsert(people)
            yield h
        finally:
            stop.set()
            await runner


async def test_door_forced_and_held_open_from_a_modbus_di_module(estate: Estate) -> None:
    gw, dio = estate.gw, estate.dio
    await estate.wait_for(lambda: estate.access.supervisors["room1"].is_open is False, "contact")
    # the electrician's card opens the strike: a real coil write on the module
    await gw.bus.publish(card_presented("rd3", gw.clock.time_ns(), "E1E1", "wiegand26"))
    await estate.wait_for(lambda: dio.get("do_02") is True, "strike released")
    dio.set("di_03", True)  # the door opens after the grant: not forced
    await estate.wait_for(lambda: estate.access.supervisors["room1"].is_open is True, "open")
    dio.set("di_03", False)
    await estate.wait_for(lambda: estate.access.supervisors["room1"].is_open is False, "shut")
    await estate.wait_for(lambda: dio.get("do_02") is False, "strike pulse ends")
    assert estate.access.supervisors["room1"].forced == 0

    dio.set("di_03", True)  # now without a card: forced, then held open
    await estate.wait_for(lambda: estate.alarm_active("access-door-forced@room1"), "forced")
    await estate.wait_for(lambda: estate.alarm_active("access-door-held@room1"), "held open")
    assert gw.alerting is not None
    forced = gw.alerting.manager.get("access-door-forced@room1")
    assert forced is not None and forced.priority == "high" and forced.category == "security"
    dio.set("di_03", False)
    await estate.wait_for(
        lambda: (
            not estate.alarm_active("access-door-forced@room1")
            and not estate.alarm_active("access-door-held@room1")
            and not estate.alarm_active("access-door-held-prealarm@room1")
        ),
        "cleared by door.closed",
    )
    stored = events.c.type.in_(["door.forced", "door.held_prealarm", "door.held_open"])
    assert await _eventually(estate, select(func.count()).where(stored), 3)
    passages = await estate.access.passages.query(door="room1")
    assert [(p.granted, p.credential_id) for p in passages] == [(True, "E1")]


async def _eventually(estate: Estate, stmt: Any, want: int) -> bool:
    async with asyncio.timeout(30):
        while await estate.count(stmt) < want:  # noqa: ASYNC110 (polls the database)
            await asyncio.sleep(0.05)
    return await estate.count(stmt) == want


async def test_ten_thousand_reads_with_the_timeseries_database_down(estate: Estate) -> None:
    gw = estate.gw
    commands = gw.bus.subscribe(
        "test-rd1",
        (Command,),
        maxsize=100_000,
        accept=lambda m: isinstance(m, Command) and m.target == "rd1",
    )
    before = await estate.count(select(func.count()).select_from(access_passages))
    await asyncio.to_thread(estate.influx.stop)
    try:
        n = 10_000
        kinds = {"granted": 0, "unknown": 0, "blacklisted": 0}
        for i in range(n):
            if i % 20 == 7:
                uid, kind = f"{0x300000 + i:X}", "unknown"
            elif i % 20 == 13:
                uid, kind = f"{0x200000 + i % BLACKLISTED:X}", "blacklisted"
            else:
                uid, kind = f"{0x100000 + i % RESIDENTS:X}", "granted"
            kinds[kind] += 1
            await gw.bus.publish(card_presented("rd1", gw.clock.time_ns(), uid, "wiegand26"))
        total = select(func.count()).select_from(access_passages)
        assert await _eventually(estate, total, before + n)
    finally:
        await asyncio.to_thread(estate.influx.start)

    p = access_passages.c
    gate = access_passages.c.door == "gate1"
    for reason, want in kinds.items():
        got = await estate.count(select(func.count()).where(gate, p.reason == reason))
        assert got == want, reason
    # every alarm event of the batch is in the event store, the passages are not doubled there
    assert await _eventually(
        estate,
        select(func.count()).where(events.c.type == "access.blacklisted"),
        kinds["blacklisted"],
    )
    assert (
        await estate.count(
            select(func.count()).where(events.c.type.in_(["access.granted", "access.denied"]))
        )
        == 0
    )
    assert estate.alarm_active("access-blacklisted@gate1")
    assert estate.alarm_active("access-denied-repeated@gate1")
    # a pulse then a feedback for each grant, a deny feedback for each denial
    sent: list[Command] = []
    async with asyncio.timeout(30):
        while len(sent) < 2 * kinds["granted"] + kinds["unknown"] + kinds["blacklisted"]:
            sent += [c for c in await commands.get_batch(10_000) if isinstance(c, Command)]
    pulses = [i for i, c in enumerate(sent) if c.action == "pulse"]
    assert len(pulses) == kinds["granted"]
    assert all(sent[i + 1].args == {"result": "grant"} for i in pulses)
    denies = sum(c.args.get("result") == "deny" for c in sent)
    assert denies == kinds["unknown"] + kinds["blacklisted"]
    gw.bus.unsubscribe(commands)
