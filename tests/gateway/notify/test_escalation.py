"""Escalation on a real event store (SQLite) and the real Dispatcher, driven by
a ManualClock: levels on time, certification, nobody qualified, stop at the
first acknowledgement, cleared while unacknowledged, a restart in the middle,
a digest during a flood, a store that is down.

The channels are :class:`Recorder`, a real Channel (the dispatcher renders the
messages through the real templates and records the deliveries) that keeps
what it is sent instead of posting it anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import select

from gateway.clock import ManualClock
from gateway.model import Alarm, AlarmState, Priority, from_datetime
from gateway.notify.acklink import AckLinks
from gateway.notify.channels.base import Channel
from gateway.notify.dispatcher import Dispatcher
from gateway.notify.escalation import Escalator
from gateway.notify.message import Notification, Rendered
from gateway.notify.oncall_config import OnCallConfig
from gateway.notify.roster import Roster
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import deliveries, escalations

SH = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 3, 2, 9, 0, tzinfo=SH)  # zhang (HV electrician) on the day shift
NIGHT = datetime(2026, 3, 2, 21, 0, tzinfo=SH)  # li (no HV certificate) on the night shift
SECRET = b"k" * 32
TX = "tx1-winding_h@tx1.winding_temp_a"
MIN = 60

CONFIG: dict[str, Any] = {
    "people": {
        "zhang": {"name": "张伟", "wecom_userid": "zhangwei", "certifications": ["hv_electrician"]},
        "li": {"name": "李娜", "wecom_userid": "lina", "mobile": "+8613900000001"},
        "wang": {"name": "王强", "wecom_userid": "wangq", "certifications": ["hv_electrician"]},
        "chen": {"name": "Chen Jie", "locale": "en", "email": "chen@example.cn"},
    },
    "teams": {
        "electrical": {
            "members": ["zhang", "li", "wang"],
            "roster": {
                "shifts": [
                    {"name": "day", "start": "08:00", "hours": 12},
                    {"name": "night", "start": "20:00", "hours": 12},
                ],
                "rotation": [["zhang"], ["li"]],
                "start_date": "2026-03-01",
            },
        },
        "security": {"members": ["li"]},
        "management": {"members": ["chen"]},
    },
    "policies": {
        "default": {
            "levels": [
                {"after_min": 0, "notify": "on_duty", "channels": ["wecom"]},
                {"after_min": 3, "notify": "team", "channels": ["wecom", "sms"]},
                {"after_min": 10, "notify": "team", "team": "management", "channels": ["email"]},
            ],
            "repeat_every_min": 5,
            "max_repeats": 2,
        }
    },
    "public_url": "https://gw.example.cn",
    "digest_window_s": 60,
}


class Recorder(Channel):
    """A real channel that keeps what it is sent."""

    kind = "recorder"

    def __init__(self, name: str, outbox: list[Sent]) -> None:
        super().__init__(name)
        self.outbox = outbox

    async def send(self, n: Notification, rendered: Rendered) -> None:
        self.outbox.append(Sent(self.name, n, rendered))


@dataclass(frozen=True)
class Sent:
    channel: str
    n: Notification
    rendered: Rendered

    @property
    def who(self) -> tuple[str, str, str, int]:
        return (self.channel, self.n.kind, self.n.recipient.id, self.n.level)


def describe(alarm: Alarm) -> Mapping[str, Any]:
    return {
        "rule": alarm.rule,
        "description": "1#变压器绕组温度高",
        "priority": alarm.priority.value,
        "category": alarm.category,
        "state": alarm.state.value,
        "device": alarm.device,
        "device_name": "1#变压器",
        "location": "B1配电房",
        "source": alarm.source,
        "value": 128.4,
        "limit": 120,
        "unit": "°C",
        "level": "H",
        "ts": alarm.ts,
        "count": 1,
        "control_room": "main",
    }


def alarm(
    transition: str,
    state: AlarmState,
    alarm_id: str = TX,
    *,
    category: str = "electrical",
    user: str = "",
    ts: int = 0,
) -> Alarm:
    rule, source = alarm_id.split("@")
    return Alarm(
        id=alarm_id,
        rule=rule,
        source=source,
        state=state,
        priority=Priority.HIGH,
        ts=ts,
        transition=transition,
        category=category,
        route=category,
        device=source.split(".")[0],
        user=user,
        data={"control_room": "main"},
    )


@dataclass
class Rig:
    store: EventStore
    clock: ManualClock
    config: OnCallConfig
    flooding: set[str] = field(default_factory=set)
    sent: list[Sent] = field(default_factory=list)
    dispatchers: list[Dispatcher] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    live: list[Escalator] = field(default_factory=list)
    describe: Callable[[Alarm], Mapping[str, Any]] = describe

    def escalator(self, *, run: bool = True) -> Escalator:
        channels = {name: Recorder(name, self.sent) for name in ("wecom", "sms", "email")}
        dispatcher = Dispatcher(channels, self.store, self.clock)
        self.dispatchers.append(dispatcher)
        links = AckLinks(self.store, SECRET, self.clock, public_url=self.config.public_url)
        esc = Escalator(
            self.store,
            Roster(self.config, "Asia/Shanghai"),
            self.config,
            dispatcher,
            links,
            self.clock,
            self.describe,
            lambda room: room in self.flooding,
            site="demo",
        )
        if run:
            self.start(esc)
        return esc

    def start(self, esc: Escalator) -> None:
        self.live.append(esc)
        self.tasks.append(asyncio.create_task(esc.run()))

    async def settle(self) -> None:
        """Wait for the work time set off: the store runs in aiosqlite's thread,
        which ManualClock.advance does not wait for."""
        while True:
            await asyncio.sleep(0)
            if any(e.busy for e in self.live):
                await asyncio.sleep(0.001)
                continue
            if any(d.pending for d in self.dispatchers):
                for d in self.dispatchers:
                    await d.drain()
                continue
            return

    async def advance(self, seconds: float) -> list[Sent]:
        """Move time deadline by deadline (each woken step finishes before time
        moves on, as it would in real time); returns what was sent meanwhile."""
        before = len(self.sent)
        target = self.clock.time_ns() + round(seconds * 1e9)
        while True:
            await self.settle()
            now = self.clock.time_ns()
            due = [d for e in self.live if (d := e.next_deadline()) is not None and now < d]
            step_to = min([*due, target])
            await self.clock.advance(max(0, step_to - now) / 1e9)
            if step_to >= target:
                await self.settle()
                return self.sent[before:]

    async def feed(self, esc: Escalator, a: Alarm) -> list[Sent]:
        before = len(self.sent)
        await esc.on_alarm(a)
        await self.settle()
        return self.sent[before:]

    async def stop(self) -> None:
        await self.settle()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        self.live.clear()

    async def events(self, *types: str) -> list[tuple[int, str, dict[str, Any]]]:
        rows = await self.store.query(types=list(types), limit=1000)
        return [(r.event.ts, r.event.type, dict(r.event.data)) for r in rows]

    async def row(self, alarm_id: str = TX) -> Any:
        async with self.store.begin() as conn:
            return (
                await conn.execute(select(escalations).where(escalations.c.alarm_id == alarm_id))
            ).one()


@pytest_asyncio.fixture(loop_scope="function")
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    s = EventStore(f"sqlite+aiosqlite:///{tmp_path}/gw.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def config() -> OnCallConfig:
    return OnCallConfig.model_validate(CONFIG)


@pytest_asyncio.fixture(loop_scope="function")
async def day(store: EventStore, config: OnCallConfig) -> AsyncIterator[Rig]:
    rig = Rig(store, ManualClock(DAY), config)
    yield rig
    await rig.stop()


@pytest_asyncio.fixture(loop_scope="function")
async def night(store: EventStore, config: OnCallConfig) -> AsyncIterator[Rig]:
    rig = Rig(store, ManualClock(NIGHT), config)
    yield rig
    await rig.stop()


def whos(sent: list[Sent]) -> list[tuple[str, str, str, int]]:
    """(channel, kind, person, level) of each message, sorted: deliveries run concurrently."""
    return sorted(s.who for s in sent)


def ns(dt: datetime, plus_s: float = 0) -> int:
    return from_datetime(dt) + round(plus_s * 1e9)


async def test_levels_on_time_then_reminders(day: Rig) -> None:
    esc = day.escalator()
    t0 = ns(DAY)
    first = await day.feed(esc, alarm("activated", AlarmState.UNACKNOWLEDGED, ts=t0))
    # Level 1 at once, to who is on duty and holds the HV certificate: zhang only.
    assert whos(first) == [("wecom", "alarm", "zhang", 1)]
    msg = first[0]
    assert msg.n.ts == t0 and msg.n.site == "demo" and msg.n.timezone == "Asia/Shanghai"
    assert msg.rendered.subject == "【高】报警：1#变压器绕组温度高 - 1#变压器（B1配电房）"
    assert msg.n.ack_url.startswith("https://gw.example.cn/ack/")
    assert msg.n.ack_url in msg.rendered.text
    assert esc.next_deadline() == t0 + 3 * MIN * 10**9

    assert await day.advance(3 * MIN - 1) == []
    second = await day.advance(1)  # exactly 3 minutes: level 2, the whole team
    assert whos(second) == [
        ("wecom", "escalated", "li", 2),
        ("wecom", "escalated", "wang", 2),
        ("wecom", "escalated", "zhang", 2),
    ]
    assert all(s.n.ts == t0 + 3 * MIN * 10**9 for s in second)
    assert "报警升级（第2级）" in second[1].rendered.subject
    assert len({s.n.ack_url for s in [*first, *second]}) == 4  # one link each

    assert await day.advance(7 * MIN - 1) == []
    third = await day.advance(1)  # 10 minutes: management, in English, by e-mail
    assert whos(third) == [("email", "escalated", "chen", 3)]
    assert third[0].rendered.subject.startswith("[HIGH] Escalated (level 3)")

    reminders = await day.advance(5 * MIN)
    assert whos(reminders) == [
        ("email", "reminder", "chen", 3),
        ("wecom", "reminder", "li", 3),
        ("wecom", "reminder", "wang", 3),
        ("wecom", "reminder", "zhang", 3),
    ]
    assert len(await day.advance(5 * MIN)) == 4  # second and last reminder
    assert await day.advance(60 * MIN) == []
    assert esc.next_deadline() is None

    # Who was called when, for the control room.
    escalated = await day.events("notify.escalated")
    assert [(ts - t0, d["level"], d["people"], d["channels"]) for ts, _, d in escalated] == [
        (0, 1, ["zhang"], ["wecom"]),
        (3 * MIN * 10**9, 2, ["zhang", "li", "wang"], ["wecom", "sms"]),
        (10 * MIN * 10**9, 3, ["chen"], ["email"]),
    ]
    assert all(d["alarm_id"] == TX for _, _, d in escalated)
    by_alarm = await day.store.query(types=["notify.escalated"], source=TX)
    assert len(by_alarm) == 3  # the event's source is the alarm id
    assert [d["repeat"] for _, _, d in await day.events("notify.reminded")] == [1, 2]
    row = await day.row()
    assert (row.status, row.level, row.next_ts, row.policy) == ("running", 3, None, "default")
    assert row.record["notified"]["li"] == {"level": 2, "channels": ["wecom", "sms"]}
    # The dispatcher recorded every delivery.
    async with day.store.begin() as conn:
        statuses = (await conn.execute(select(deliveries.c.status))).scalars().all()
    assert statuses == ["sent"] * 13


async def test_stop_at_the_first_acknowledgement(day: Rig) -> None:
    esc = day.escalator()
    await day.feed(esc, alarm("activated", AlarmState.UNACKNOWLEDGED))
    assert len(await day.advance(3 * MIN)) == 3  # level 2 went out
    acked = alarm("acknowledged", AlarmState.ACKNOWLEDGED, user="li")
    assert await day.feed(esc, acked) == []
    assert await day.advance(3 * 60 * MIN) == []  # no level 3, no reminders
    assert esc.next_deadline() is None and esc.running == ()
    row = await day.row()
    assert row.status == "stopped" and row.next_ts is None
    assert (row.record["stopped_by"], row.record["stopped_reason"]) == ("li", "acknowledged")
    ((_, _, data),) = await day.events("notify.escalation_stopped")
    assert data == {
        "alarm_id": TX,
        "policy": "default",
        "by": "li",
        "reason": "acknowledged",
        "level": 2,
    }
    # The acknowledged alarm clearing later sends nothing either.
    assert await day.feed(esc, alarm("cleared", AlarmState.NORMAL)) == []


async def test_nobody_qualified_goes_to_level_2_at_once(night: Rig) -> None:
    esc = night.escalator()
    t0 = ns(NIGHT)
    sent = await night.feed(esc, alarm("activated", AlarmState.UNACKNOWLEDGED))
    # li is on duty but holds no HV certificate: nobody at level 1, the team at once.
    assert whos(sent) == [
        ("wecom", "escalated", "li", 2),
        ("wecom", "escalated", "wang", 2),
        ("wecom", "escalated", "zhang", 2),
    ]
    ((ts, _, data),) = await night.events("oncall.nobody_qualified")
    assert ts == t0
    assert data == {
        "alarm_id": TX,
        "policy": "default",
        "level": 1,
        "team": "electrical",
        "certification": "hv_electrician",
        "candidates": ["li"],
        "reason": "not_certified",
    }
    # Level 3 keeps its own time (10 minutes after the alarm).
    assert await night.advance(10 * MIN - 1) == []
    assert whos(await night.advance(1)) == [("email", "escalated", "chen", 3)]

    # A security alarm needs no certificate: li gets it at level 1.
    door = alarm("activated", AlarmState.UNACKNOWLEDGED, "door-forced@gate1", category="security")
    assert whos(await night.feed(esc, door)) == [("wecom", "alarm", "li", 1)]


async def test_cleared_while_unacknowledged_sends_one_notice(day: Rig) -> None:
    esc = day.escalator()
    await day.feed(esc, alarm("activated", AlarmState.UNACKNOWLEDGED))
    await day.advance(2 * MIN)
    cleared = await day.feed(esc, alarm("cleared", AlarmState.RTN_UNACKNOWLEDGED))
    assert whos(cleared) == [("wecom", "cleared", "zhang", 1)]
    assert cleared[0].n.ack_url == ""
    assert cleared[0].n.alarm["state"] == "rtn_unacknowledged"
    assert cleared[0].rendered.subject.startswith("【高】报警已恢复")
    assert await day.advance(60 * MIN) == []
    row = await day.row()
    assert (row.status, row.record["stopped_reason"]) == ("stopped", "cleared")
    assert [d["people"] for _, _, d in await day.events("notify.cleared_notice")] == [["zhang"]]
    # The operator acknowledging the returned alarm later: nothing more.
    assert await day.feed(esc, alarm("acknowledged", AlarmState.NORMAL, user="zhang")) == []


async def test_latched_alarm_keeps_escalating_after_its_condition_clears(day: Rig) -> None:
    esc = day.escalator()
    await day.feed(esc, alarm("activated", AlarmState.UNACKNOWLEDGED))
    # A latched alarm stays unacknowledged when the condition goes away.
    assert await day.feed(esc, alarm("cleared", AlarmState.UNACKNOWLEDGED)) == []
    assert len(await day.advance(3 * MIN)) == 3


async def test_higher_level_restarts_and_reactivation_does_not(day: Rig) -> None:
    esc = day.escalator()
    await day.feed(esc, alarm("activated", AlarmState.UNACKNOWLEDGED))
    await day.advance(2 * MIN)
    assert await day.feed(esc, alarm("reactivated", AlarmState.UNACKNOWLEDGED)) == []
    again = await day.feed(esc, alarm("level_changed", AlarmState.UNACKNOWLEDGED))
    assert whos(again) == [("wecom", "alarm", "zhang", 1)]
    assert await day.advance(3 * MIN - 1) == []  # level 2 counts from the restart
    assert len(await day.advance(1)) == 3
    # Shelving stops; unshelving an unacknowledged alarm starts again.
    await day.feed(esc, alarm("shelved", AlarmState.SHELVED, user="zhang"))
    assert await day.advance(30 * MIN) == []
    back = await day.feed(esc, alarm("unshelved", AlarmState.UNACKNOWLEDGED))
    assert whos(back) == [("wecom", "alarm", "zhang", 1)]


async def test_restart_in_the_middle_resumes_on_time(day: Rig) -> None:
    first = day.escalator()
    t0 = ns(DAY)
    await day.feed(first, alarm("activated", AlarmState.UNACKNOWLEDGED))
    await day.advance(MIN)
    await day.stop()  # the gateway goes down one minute into the escalation
    del first

    second = day.escalator(run=False)
    assert await second.load() == 1
    assert second.next_deadline() == t0 + 3 * MIN * 10**9
    day.start(second)
    assert await day.advance(2 * MIN - 1) == []  # level 1 is not sent again
    resumed = await day.advance(1)
    assert whos(resumed) == [
        ("wecom", "escalated", "li", 2),
        ("wecom", "escalated", "wang", 2),
        ("wecom", "escalated", "zhang", 2),
    ]
    assert {s.n.ts for s in resumed} == {t0 + 3 * MIN * 10**9}  # on time, not late
    assert whos(await day.advance(7 * MIN)) == [("email", "escalated", "chen", 3)]
    # The new instance stops at the first acknowledgement like the old one would.
    await day.feed(second, alarm("acknowledged", AlarmState.ACKNOWLEDGED, user="wang"))
    assert await day.advance(60 * MIN) == []


async def test_down_past_a_level_sends_it_at_once_after_restart(day: Rig) -> None:
    first = day.escalator()
    t0 = ns(DAY)
    await day.feed(first, alarm("activated", AlarmState.UNACKNOWLEDGED))
    await day.stop()
    await day.advance(5 * MIN)  # down while level 2 was due
    second = day.escalator()
    await second.load()
    late = await day.advance(0)
    assert [s.n.level for s in late] == [2, 2, 2]
    assert whos(await day.advance(5 * MIN)) == [("email", "escalated", "chen", 3)]
    assert [ts - t0 for ts, _, _ in await day.events("notify.escalated")] == [
        0,
        5 * MIN * 10**9,
        10 * MIN * 10**9,
    ]


async def test_digest_during_a_flood(day: Rig) -> None:
    esc = day.escalator()
    day.flooding.add("main")
    ids = [f"tx{i}-winding_h@tx{i}.winding_temp_a" for i in range(1, 9)]
    for alarm_id in ids:  # 8 alarms within 40 s, all for zhang
        assert await day.feed(esc, alarm("activated", AlarmState.UNACKNOWLEDGED, alarm_id)) == []
        await day.advance(5)
    assert await day.advance(19) == []
    (digest,) = await day.advance(1)  # the window (60 s after the first) closes: one message
    assert digest.who == ("wecom", "digest", "zhang", 0)
    items = digest.n.items
    assert [i["id"] for i in items] == ids
    assert all(i["ack_url"].startswith("https://gw.example.cn/ack/") for i in items)
    assert len({i["ack_url"] for i in items}) == 8  # one link per alarm
    assert digest.rendered.subject == "【高】报警汇总：共8条"
    assert all(i["ack_url"] in digest.rendered.text for i in items)
    ((_, _, data),) = await day.events("notify.digest")
    assert data["person"] == "zhang" and data["count"] == 8 and data["alarms"] == ids
    # Who was called is still recorded per alarm, marked as digested.
    escalated = await day.events("notify.escalated")
    assert len(escalated) == 8 and all(d["digest"] for _, _, d in escalated)

    # Level 2 (3 minutes after each alarm) comes as one digest per person too.
    # ids[2] is acknowledged before its level 2; ids[5] after its level 2 went
    # into the digests, which then leave it out: nothing about it after the ack.
    await day.advance(40)  # t0 + 100 s
    await day.feed(esc, alarm("acknowledged", AlarmState.ACKNOWLEDGED, ids[2], user="zhang"))
    assert await day.advance(110) == []  # t0 + 210 s: level 2 of ids[5] is in the digests
    await day.feed(esc, alarm("acknowledged", AlarmState.ACKNOWLEDGED, ids[5], user="li"))
    assert await day.advance(29) == []
    batch = await day.advance(1)  # t0 + 240 s: 60 s after the first level 2 (t0 + 180 s)
    assert whos(batch) == [
        ("wecom", "digest", "li", 0),
        ("wecom", "digest", "wang", 0),
        ("wecom", "digest", "zhang", 0),
    ]
    left = [a for a in ids if a not in (ids[2], ids[5])]
    assert all([i["id"] for i in s.n.items] == left for s in batch)
    assert all(i["kind"] == "escalated" for s in batch for i in s.n.items)
    # Once the flood is over, messages go out one by one again.
    day.flooding.clear()
    single = await day.feed(esc, alarm("activated", AlarmState.UNACKNOWLEDGED, "pump1-fault@pump1"))
    assert whos(single) == [("wecom", "alarm", "zhang", 1)]


async def test_steps_wait_for_the_store(day: Rig) -> None:
    esc = day.escalator()
    await day.store.close()  # the store is unavailable
    assert await day.feed(esc, alarm("activated", AlarmState.UNACKNOWLEDGED)) == []
    await day.store.open()
    assert await day.advance(4) == []  # the retry comes after its backoff (5 s)
    (sent,) = await day.advance(1)
    assert sent.who == ("wecom", "alarm", "zhang", 1)
    assert len(await day.events("notify.escalated")) == 1
    assert (await day.row()).level == 1


async def test_odd_values_in_the_alarm_view_are_stored(day: Rig) -> None:
    day.describe = lambda a: {**describe(a), "value": float("nan"), "extra": {1, 2}}
    esc = day.escalator()
    (sent,) = await day.feed(esc, alarm("activated", AlarmState.UNACKNOWLEDGED))
    assert sent.n.alarm["value"] == "nan"
    assert (await day.row()).record["view"]["value"] == "nan"


async def test_a_batch_of_transitions_is_applied_in_order(day: Rig) -> None:
    esc = day.escalator()
    other = "tx2-winding_alarm@tx2.winding_temp_max"
    batch = [
        alarm("activated", AlarmState.UNACKNOWLEDGED),
        alarm("activated", AlarmState.UNACKNOWLEDGED, other),
        alarm("acknowledged", AlarmState.ACKNOWLEDGED, other, user="li"),
    ]
    await esc.on_alarms(batch)
    await day.settle()
    # The first alarm escalates; the second was acknowledged within the same
    # batch, before any step of it was stored or sent.
    assert whos(day.sent) == [("wecom", "alarm", "zhang", 1)]
    assert esc.running == (TX,)
    assert await day.advance(3 * MIN) != []  # level 2 of the first only
    assert {s.n.alarm_id for s in day.sent} == {TX}
