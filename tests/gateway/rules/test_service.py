"""RuleService on a real Bus, driven by a ManualClock."""

import asyncio
from datetime import UTC, datetime

from gateway.bus import Bus
from gateway.clock import ManualClock
from gateway.model import Event, Reading, from_datetime
from gateway.rules import RuleService
from gateway.rules.condition import ConditionChange

from .rutil import engine

TEMP = "tx1.winding_temp"
START = datetime(2026, 3, 2, tzinfo=UTC)  # 08:00 in Shanghai


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[ConditionChange]] = []

    async def __call__(self, changes: list[ConditionChange]) -> None:
        self.calls.append(list(changes))

    @property
    def changes(self) -> list[ConditionChange]:
        return [c for call in self.calls for c in call]


async def test_a_delayed_activation_is_delivered_when_the_clock_reaches_it() -> None:
    clock = ManualClock(START)
    bus = Bus()
    eng = engine({"id": "hot", "point": TEMP, "h": 100, "on_delay_s": 30}, start=clock.time_ns())
    rec = Recorder()
    service = RuleService(eng, bus.subscribe("rules", (Reading, Event)), clock, rec)
    task = asyncio.create_task(service.run())
    await clock.advance(1)
    t_high = clock.time_ns()
    await bus.publish(Reading(TEMP, 120, t_high))
    await clock.advance(29)
    assert rec.calls == []
    await clock.advance(1)  # exactly 30 s after the reading
    assert [(c.rule, c.active, c.level) for c in rec.changes] == [("hot", True, "H")]
    assert rec.changes[0].ts == t_high + 30_000_000_000
    await bus.publish(Reading(TEMP, 20, clock.time_ns()))
    await clock.advance(0)
    assert [c.active for c in rec.changes] == [True, False]
    bus.close()
    await asyncio.wait_for(task, 5)  # a closed subscription ends run()
    assert service.messages == 2 and service.changes == 2


async def test_one_call_per_batch_with_the_changes_in_order() -> None:
    clock = ManualClock(START)
    bus = Bus()
    eng = engine(
        {"id": "hot", "point": TEMP, "h": 100},
        {"id": "burst", "type": "event", "event": "access.denied", "count": 2},
        start=clock.time_ns(),
    )
    rec = Recorder()
    sub = bus.subscribe("rules", (Reading, Event))
    now = clock.time_ns()
    await bus.publish_many(
        [
            Reading(TEMP, 120, now),
            Reading("tank1.level", 5, now),  # no rule
            Event("access.denied", "reader1", now),
            Event("access.denied", "reader1", now + 1),
            Reading(TEMP, 20, now + 2),
        ]
    )
    task = asyncio.create_task(RuleService(eng, sub, clock, rec).run())
    await clock.advance(0)
    assert [[(c.rule, c.active) for c in call] for call in rec.calls] == [
        [("hot", True), ("burst", True), ("hot", False)]
    ]
    await clock.advance(61)  # the burst clears a minute after its last event
    assert [(c.rule, c.active) for c in rec.calls[-1]] == [("burst", False)]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert clock.sleepers == 0


async def test_a_schedule_edge_hours_away_runs_in_virtual_time() -> None:
    clock = ManualClock(START)
    bus = Bus()
    eng = engine(
        {
            "id": "night-run",
            "type": "state",
            "point": "pump1.running",
            "equals": True,
            "schedule": {"between": ["22:00", "06:00"]},
        },
        start=clock.time_ns(),
    )
    rec = Recorder()
    task = asyncio.create_task(
        RuleService(eng, bus.subscribe("rules", (Reading,)), clock, rec).run()
    )
    await bus.publish(Reading("pump1.running", True, clock.time_ns()))
    await clock.advance(13 * 3600)  # 21:00
    assert rec.calls == []
    await clock.advance(3600)  # 22:00 Shanghai
    assert [(c.active, c.data["reason"]) for c in rec.changes] == [(True, "schedule")]
    assert rec.changes[0].ts == from_datetime(datetime(2026, 3, 2, 14, tzinfo=UTC))
    await clock.advance(8 * 3600)  # 06:00
    assert [c.active for c in rec.changes] == [True, False]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
