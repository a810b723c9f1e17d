"""The access service with a real SQLite event store, the real bus and decider:
commands after the commit, deny reasons, monitor mode, a store that fails."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from drivers.cards.events import card_presented, read_error
from gateway.access.credentials import CredentialStore
from gateway.access.passages import Passage
from gateway.access.service import AccessService
from gateway.bus import Bus, Subscription
from gateway.clock import ManualClock
from gateway.config.loader import load_site
from gateway.model import Command, Event, Reading
from gateway.registry import load_registry
from gateway.storage.eventstore import EventStore

HOUR = 3600 * 10**9
OUT = ("access.", "door.forced", "door.held", "door.closed")  # what the service emits

SITE: dict[str, Any] = {
    "version": 1,
    "site": {"id": "svc", "timezone": "Asia/Shanghai"},
    "devices": [
        {"id": "gate1", "kind": "gate"},
        {"id": "room1", "kind": "door"},
        {"id": "mon1", "kind": "door"},
        {"id": "bar1", "kind": "barrier"},
        {"id": "rd1", "kind": "card_reader"},
        {"id": "rd2", "kind": "card_reader"},
        {"id": "rd3", "kind": "card_reader"},
        {"id": "ctl1", "kind": "card_reader"},
        {"id": "cam1", "kind": "camera"},
        {"id": "dio1", "kind": "other", "points": {"do_02": {}, "di_03": {}}},
    ],
    "access": {
        "areas": [
            {"id": "estate", "anti_passback": "hard"},
            {"id": "plant", "anti_passback": "off"},
            {"id": "car_park", "no_card_no_exit": True},
        ],
        "doors": [
            {
                "id": "gate1",
                "area": "estate",
                "readers": [
                    {"device": "rd1", "direction": "in"},
                    {"device": "rd2", "direction": "out", "reader_no": 1},
                ],
                "relay": {"device": "rd1", "output": 2, "seconds": 4},
                "contact": {"device": "gate1"},
                "passages": {"device": "gate1"},
            },
            {
                "id": "room1",
                "area": "plant",
                "from_area": "estate",
                "readers": [{"device": "rd3", "direction": "in"}],
                "relay": {"device": "dio1", "point": "dio1.do_02"},
                "contact": {"point": "dio1.di_03"},
            },
            {
                "id": "mon1",
                "mode": "monitor",
                "area": "plant",
                "from_area": "estate",
                "readers": [{"device": "ctl1", "direction": "in"}],
            },
            {
                "id": "bar1",
                "area": "car_park",
                "vehicle": True,
                "readers": [
                    {"device": "cam1", "direction": "in", "reader_no": 0},
                    {"device": "cam1", "direction": "out", "reader_no": 1},
                ],
                "relay": {"device": "bar1"},
            },
        ],
        "groups": {
            "residents": {"doors": ["gate1", "mon1"]},
            "engineers": {"doors": ["*"]},
            "visitors": {"doors": ["gate1"]},
            "cars": {"doors": ["bar1"]},
        },
        "decision_batch": 64,
    },
}


class Rig:
    def __init__(self, svc: AccessService, bus: Bus, store: EventStore, clock: ManualClock) -> None:
        self.svc, self.bus, self.store, self.clock = svc, bus, store, clock
        self.commands = bus.subscribe("test-commands", (Command,))
        self.events = bus.subscribe(
            "test-events",
            (Event,),
            accept=lambda m: isinstance(m, Event) and m.type.startswith(OUT),
        )
        self.task: asyncio.Task[None] | None = None

    @property
    def creds(self) -> CredentialStore:
        assert self.svc.credentials is not None
        return self.svc.credentials

    def now(self) -> int:
        return self.clock.time_ns()

    async def card(self, reader: str, uid: str, **kw: Any) -> None:
        await self.bus.publish(card_presented(reader, self.now(), uid, "wiegand26", **kw))

    async def take(self, sub: Subscription, n: int) -> list[Any]:
        out: list[Any] = []
        async with asyncio.timeout(30):
            while len(out) < n:
                if self.task is not None and self.task.done():
                    self.task.result()  # the service died: show why
                    raise AssertionError("the service stopped")
                out += sub.get_nowait(n - len(out))
                await asyncio.sleep(0.005)
        return out

    async def settle(self) -> None:
        """Let the service take everything queued (bounded)."""
        async with asyncio.timeout(30):
            while self.svc._sub.depth:  # noqa: ASYNC110 (in-process queue)
                await asyncio.sleep(0.005)
        for _ in range(50):
            await asyncio.sleep(0)

    async def passages(self) -> list[Passage]:
        return list(reversed(await self.svc.passages.query(limit=1000)))


@pytest_asyncio.fixture(loop_scope="function")
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    doc = {**SITE, "data_dir": str(tmp_path / "var")}
    (tmp_path / "site.yaml").write_text(json.dumps(doc), encoding="utf-8")
    site = load_site(tmp_path / "site.yaml", load_registry())
    clock = ManualClock()
    bus = Bus()
    store = EventStore(f"sqlite+aiosqlite:///{tmp_path}/gw.db")
    await store.open()
    svc = AccessService(site, bus, store, clock)
    await svc.open()
    r = Rig(svc, bus, store, clock)
    c = r.creds
    await c.upsert(
        [
            c.make(id="R1", kind="resident", holder="张三", group="residents", card="0A0001"),
            c.make(id="R2", kind="resident", holder="李四", group="residents", card="0A0002"),
            c.make(id="E1", kind="staff", holder="王工", group="engineers", card="0E0001"),
            c.make(id="B1", kind="resident", holder="x", group="residents", card="0B0001"),
            c.make(
                id="X1", kind="resident", holder="y", group="residents", card="0C0001",
                valid_until=clock.time_ns() - HOUR,
            ),
            c.make(id="V1", kind="vehicle", holder="车主", group="cars", plate="沪A12345"),
            c.make(id="P1", kind="visitor", holder="访客", group="visitors", qr="GWV1:tok",
                   uses_left=1),
        ]
    )  # fmt: skip
    await c.set_blacklisted("B1", True)
    r.task = asyncio.create_task(svc.run())
    try:
        yield r
    finally:
        await svc.close(r.task)
        await store.close()


async def test_grant_pulses_the_relay_then_gives_feedback_and_stores_the_passage(rig: Rig) -> None:
    await rig.card("rd1", "0A0001")
    pulse, feedback = await rig.take(rig.commands, 2)
    assert pulse == Command(
        target="rd1", action="pulse", args={"output": 2, "seconds": 4.0}, origin="access"
    )
    assert feedback == Command(
        target="rd1", action="feedback", args={"result": "grant"}, origin="access"
    )
    (granted,) = await rig.take(rig.events, 1)
    assert granted.type == "access.granted" and granted.source == "gate1"
    assert granted.data["credential"] == "R1" and granted.data["holder"] == "张三"
    assert granted.data["card"] == "**0001" and granted.data["area"] == "estate"
    assert "0A0001" not in json.dumps(granted.data)
    (p,) = await rig.passages()
    assert (p.door, p.reader, p.direction, p.granted, p.reason) == (
        "gate1", "rd1", "in", True, "granted"
    )  # fmt: skip
    assert (p.credential_id, p.kind, p.card_masked, p.mode) == (
        "R1",
        "resident",
        "**0001",
        "decide",
    )
    assert rig.svc.presence.area_of("R1") == "estate"
    async with rig.store.begin() as conn:
        rows = (await conn.exec_driver_sql("select area from access_presence")).all()
    assert rows == [("estate",)]


async def test_deny_reasons_and_their_alarm_events(rig: Rig) -> None:
    await rig.card("rd1", "0A0001")  # R1 enters
    await rig.take(rig.commands, 2)
    await rig.take(rig.events, 1)
    cases = [
        ("rd1", "FFFF01", "unknown", []),
        ("rd1", "0B0001", "blacklisted", ["access.blacklisted"]),
        ("rd1", "0C0001", "expired", []),
        ("rd3", "0A0002", "no_permission", []),
        ("rd1", "0A0001", "antipassback", ["access.antipassback"]),  # already inside (hard)
    ]
    for reader, uid, reason, alarms in cases:
        await rig.card(reader, uid)
        (fb,) = await rig.take(rig.commands, 1)
        assert fb.action == "feedback" and fb.args == {"result": "deny"} and fb.target == reader
        evs = await rig.take(rig.events, 1 + len(alarms))
        assert evs[0].type == "access.denied" and evs[0].data["reason"] == reason, evs
        assert [e.type for e in evs[1:]] == alarms
    anti = evs[1]
    assert anti.data["mode"] == "hard" and anti.source == "gate1"
    reasons = [p.reason for p in await rig.passages()]
    assert reasons == [
        "granted",
        "unknown",
        "blacklisted",
        "expired",
        "no_permission",
        "antipassback",
    ]


async def test_read_error_is_denied_and_logged_without_an_access_event(rig: Rig) -> None:
    await rig.bus.publish(read_error("rd1", rig.now(), "parity", bits=26, raw="ab"))
    (fb,) = await rig.take(rig.commands, 1)
    assert fb.args == {"result": "deny"}
    await rig.settle()
    assert rig.events.depth == 0
    (p,) = await rig.passages()
    assert (p.reason, p.granted, p.kind, p.data["error"]) == (
        "read_error",
        False,
        "unknown",
        "parity",
    )


async def test_reader_number_direction_and_coil_relay(rig: Rig) -> None:
    await rig.card("rd1", "0E0001")  # the engineer enters the estate ...
    await rig.take(rig.commands, 2)
    await rig.card("rd3", "0E0001")  # ... and the plant room: its strike is a Modbus coil
    write, fb = await rig.take(rig.commands, 2)
    assert write == Command(
        target="dio1", action="write", args={"point": "do_02", "value": True},
        role="access", origin="access",
    )  # fmt: skip
    assert fb.target == "rd3"
    assert rig.svc.presence.area_of("E1") == "plant"
    await rig.card("rd1", "0A0002")
    await rig.take(rig.commands, 2)
    await rig.card("rd2", "0A0002", reader_no=1)  # out through gate1, head 1
    pulse, fb = await rig.take(rig.commands, 2)
    assert pulse.action == "pulse" and fb.args == {"result": "grant", "reader_no": 1}
    *_, p = await rig.passages()
    assert (p.door, p.direction, p.credential_id) == ("gate1", "out", "R2")
    assert rig.svc.presence.area_of("R2") == "outside"


async def test_visitor_pass_uses_are_consumed_in_the_transaction(rig: Rig) -> None:
    await rig.bus.publish(
        Event("card.presented", "rd1", rig.now(), {"format": "qr", "value": "GWV1:tok"})
    )
    await rig.bus.publish(
        Event(
            "card.presented",
            "rd2",
            rig.now(),
            {"format": "qr", "value": "GWV1:tok", "reader_no": 1},
        )
    )
    await rig.bus.publish(
        Event("card.presented", "rd1", rig.now(), {"format": "qr", "value": "GWV1:tok"})
    )
    await rig.take(rig.commands, 5)  # grant (2), exit grant (2), deny (1)
    reasons = [(p.direction, p.reason) for p in await rig.passages()]
    assert reasons == [("in", "granted"), ("out", "granted"), ("in", "used_up")]
    fresh = CredentialStore(rig.store, rig.creds.hasher, rig.clock)
    await fresh.load()
    used = fresh.get("P1")
    assert used is not None and used.uses_left == 0


async def test_plates_at_a_vehicle_barrier_only(rig: Rig) -> None:
    await rig.bus.publish(
        Event("plate.read", "cam1", rig.now(), {"plate": "沪A 12345", "reader_no": 0})
    )
    pulse, fb = await rig.take(rig.commands, 2)
    assert pulse.target == "bar1" and fb.target == "cam1"
    (ev,) = await rig.take(rig.events, 1)
    assert ev.data["plate"] == "沪A12345" and ev.data["card"] == "沪A***45"
    # leaving without an entry is refused for a car that never came in? V1 did come in:
    await rig.bus.publish(
        Event("plate.read", "cam1", rig.now(), {"plate": "沪A12345", "reader_no": 1})
    )
    _, fb = await rig.take(rig.commands, 2)
    assert fb.args["result"] == "grant"
    await rig.bus.publish(Event("plate.read", "rd1", rig.now(), {"plate": "沪A12345"}))  # a door
    await rig.settle()
    assert len(await rig.passages()) == 2
    assert [p.plate for p in await rig.passages()] == ["沪A12345", "沪A12345"]


async def test_unbound_reader_is_counted_and_logged_once(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(20):
        await rig.card("stray", "0A0001")
    await rig.settle()
    assert rig.svc.unbound == 20
    assert sum("no door has this reader" in r.message for r in caplog.records) == 1
    assert rig.commands.depth == 0 and await rig.passages() == []


async def test_monitor_mode_records_what_the_controller_decided(rig: Rig) -> None:
    data = {"uid": "0A0001", "format": "wiegand26", "granted": True, "reason": "ok"}
    await rig.bus.publish(Event("card.decision", "ctl1", rig.now(), data))
    deny = {"uid": "0A0002", "format": "wiegand26", "granted": False, "reason": "time zone 3"}
    await rig.bus.publish(Event("card.decision", "ctl1", rig.now(), deny))
    await rig.card("ctl1", "0A0001")  # the raw read of a monitor door: the controller decides
    evs = await rig.take(rig.events, 2)
    assert [e.type for e in evs] == ["access.granted", "access.denied"]
    assert evs[1].data["controller_reason"] == "time zone 3"
    await rig.settle()
    assert rig.commands.depth == 0
    ps = await rig.passages()
    assert [(p.reason, p.granted, p.mode, p.data["controller_reason"]) for p in ps] == [
        ("controller", True, "monitor", "ok"),
        ("controller", False, "monitor", "time zone 3"),
    ]
    assert rig.svc.presence.area_of("R1") == "plant"
    assert rig.svc.presence.area_of("R2") == "outside"


async def test_store_down_fails_secure_and_the_next_batch_works(rig: Rig) -> None:
    await rig.store.close()  # the store goes away under the running service
    await rig.card("rd1", "0A0001")
    (fb,) = await rig.take(rig.commands, 1)
    assert fb == Command(target="rd1", action="feedback", args={"result": "deny"}, origin="access")
    (down,) = await rig.take(rig.events, 1)
    assert down.type == "access.store_down" and down.data["reads"] == 1
    assert down.data["doors"] == ["gate1"]
    assert rig.svc.presence.area_of("R1") == "outside"  # memory put back
    assert rig.svc.store_failures == 1
    await rig.store.open()
    await rig.card("rd1", "0A0001")  # anti-passback does not think R1 is inside
    pulse, fb = await rig.take(rig.commands, 2)
    assert pulse.action == "pulse" and fb.args == {"result": "grant"}
    (p,) = await rig.passages()
    assert p.granted and p.credential_id == "R1"


async def test_a_locked_store_keeps_doors_shut_and_keeps_monitor_passages(rig: Rig) -> None:
    db = rig.store.url.split("///", 1)[1]
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another writer holds the database (busy timeout runs out)
    try:
        await rig.bus.publish(
            Event("card.decision", "ctl1", rig.now(), {"uid": "0A0001", "granted": True})
        )
        await rig.bus.publish(
            Event("plate.read", "cam1", rig.now(), {"plate": "沪A12345", "reader_no": 0})
        )
        (fb,) = await rig.take(rig.commands, 1)
        assert fb.target == "cam1" and fb.args == {"result": "deny", "reader_no": 0}
        (down,) = await rig.take(rig.events, 1)
        assert down.type == "access.store_down" and down.data["kept"] == 1
        assert "locked" in down.data["error"]
        assert rig.svc.credentials is not None
        v1 = rig.svc.credentials.get("V1")
        assert v1 is not None and rig.svc.presence.area_of("V1") == "outside"
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    await rig.bus.publish(
        Event("plate.read", "cam1", rig.now(), {"plate": "沪A12345", "reader_no": 0})
    )
    pulse, _ = await rig.take(rig.commands, 2)
    assert pulse.target == "bar1"
    ps = await rig.passages()
    assert [(p.door, p.granted) for p in ps] == [("mon1", True), ("bar1", True)]  # retried


async def test_supervision_through_the_service(rig: Rig) -> None:
    # a grant and the opening in the same batch: the grant is known first
    await rig.card("rd1", "0A0001")
    await rig.bus.publish(Event("door.contact", "gate1", rig.now(), {"open": True}))
    await rig.bus.publish(Event("door.contact", "gate1", rig.now(), {"open": False}))
    await rig.take(rig.commands, 2)
    await rig.settle()
    await rig.clock.advance(2)
    assert [e.type for e in await rig.take(rig.events, 1)] == ["access.granted"]
    assert rig.events.depth == 0
    # opened with no grant: forced, from a DI point of the Modbus module
    await rig.bus.publish(Reading("dio1.di_03", False, rig.now()))
    await rig.bus.publish(Reading("dio1.di_03", True, rig.now()))
    await rig.settle()
    await rig.clock.advance(1.5)
    (forced,) = await rig.take(rig.events, 1)
    assert (forced.type, forced.source) == ("door.forced", "room1")
    await rig.bus.publish(Reading("dio1.di_03", False, rig.now()))
    (closed,) = await rig.take(rig.events, 1)
    assert (closed.type, closed.source) == ("door.closed", "room1")
    # two people on one grant at gate1 (after the first grant's window)
    await rig.clock.advance(20)
    await rig.card("rd2", "0A0001", reader_no=1)
    await rig.bus.publish(Event("gate.passage", "gate1", rig.now(), {"count": 2}))
    await rig.take(rig.commands, 2)
    evs = await rig.take(rig.events, 2)
    assert [e.type for e in evs] == ["access.granted", "access.tailgate"]
    assert evs[1].data == {"door": "gate1", "passages": 2, "grants": 1, "unauthorised": 1}
