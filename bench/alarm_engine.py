"""Alarm transitions per second through the rule engine and the alarm manager,
in one process on one event loop (part 3 of bench/alarm_latency.py).

``points`` points ``p00000.v`` ... under one limit rule (H 50, no deadband,
no delays). Round k sends every point 60 (k even) or 40 (k odd), so every
reading crosses the limit: activated, cleared (returned to normal
unacknowledged), reactivated, cleared, ... Readings go in batches of
``batch`` (as RuleService hands them on): the engine's changes of a batch
go to ``AlarmManager.apply`` at once (one transaction), which stores every
transition (``alarms`` rows + ``alarm.<transition>`` events) and then
publishes each ``model.Alarm`` (here to a counting coroutine).

Figures: engine only (RuleEngine.on_reading on a fresh engine, changes
counted, nothing stored); engine + manager with chattering and flood
detection out of reach; engine + manager with the default detection (3
activations in 60 s make a point chatter: its re-activations are stored but
not announced; more than 10 new alarms in 10 minutes start a flood). CPU is
the process's user + system time over the wall time (SQLite runs in
aiosqlite's thread, so it can pass 100 %).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from gateway.alarms import AlarmManager, AlarmsConfig
from gateway.clock import SystemClock
from gateway.model import Alarm, Event, Reading
from gateway.rules import RuleEngine
from gateway.rules.config import LimitRuleConfig
from gateway.rules.schedule import CalendarConfig
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import events as events_table

__all__ = ["EngineFigures", "run_engine"]

_QUIET = {
    "chattering": {"count": 1_000_000, "window_s": 60},
    "flood": {"start_above": 1_000_000_000, "end_below": 1, "window_s": 600},
}


@dataclass
class Run:
    name: str
    readings: int
    transitions: int  # stored (engine-only: condition changes)
    published: int
    wall_s: float
    cpu_s: float
    changes: int = 0  # condition changes the engine handed on

    def row(self) -> str:
        return (
            f"  {self.name:<42} {self.readings / self.wall_s:>11,.0f} "
            f"{self.transitions / self.wall_s:>14,.0f} {self.published / self.wall_s:>12,.0f} "
            f"{self.cpu_s / self.wall_s * 100:>6.0f}"
        )


@dataclass
class EngineFigures:
    runs: list[Run]

    def table(self) -> str:
        head = (
            f"\n  {'engine run':<42} {'readings/s':>11} {'transitions/s':>14} "
            f"{'published/s':>12} {'CPU %':>6}"
        )
        return "\n".join([head, *(r.row() for r in self.runs)])


def _engine(points: Sequence[str]) -> RuleEngine:
    rule = LimitRuleConfig.model_validate(
        {"id": "hi", "points": ["p*.v"], "h": 50, "priority": "high", "category": "it"}
    )
    return RuleEngine(
        [rule],
        known_points=points,
        device_kinds={p.split(".")[0]: "sensor" for p in points},
        timezone="Asia/Shanghai",
        calendar=CalendarConfig(),
        start_ns=time.time_ns(),
    )


def _batches(points: Sequence[str], readings: int, batch: int) -> list[list[Reading]]:
    """All readings, made up front (their ts is refreshed per batch at send time)."""
    out: list[list[Reading]] = []
    cur: list[Reading] = []
    n = 0
    k = 0
    while n < readings:
        value = 60.0 if k % 2 == 0 else 40.0
        for p in points:
            cur.append(Reading(p, value, 0))
            n += 1
            if len(cur) == batch:
                out.append(cur)
                cur = []
            if n == readings:
                break
        k += 1
    if cur:
        out.append(cur)
    return out


def _stamp(batch: list[Reading]) -> list[Reading]:
    ts = time.time_ns()
    return [Reading(r.point, r.value, ts, r.quality) for r in batch]


def engine_only(points: Sequence[str], batches: list[list[Reading]]) -> Run:
    engine = _engine(points)
    stamped = [_stamp(b) for b in batches]
    changes = 0
    c0, t0 = time.process_time(), time.perf_counter()
    for b in stamped:
        for r in b:
            found = engine.on_reading(r)
            if found:
                changes += len(found)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = sum(len(b) for b in batches)
    return Run("engine only (RuleEngine.on_reading)", n, changes, 0, wall, cpu)


async def with_manager(
    name: str,
    url: str,
    points: Sequence[str],
    batches: list[list[Reading]],
    alarms: dict[str, object],
) -> Run:
    store = EventStore(url)
    await store.open()
    published = 0
    notices = 0

    async def publish(_a: Alarm) -> None:
        nonlocal published
        published += 1

    async def publish_event(_e: Event) -> None:
        nonlocal notices
        notices += 1

    try:
        clock = SystemClock()
        engine = _engine(points)
        manager = AlarmManager(
            store,
            publish,
            clock,
            AlarmsConfig.model_validate(alarms),
            engine.infos,
            {},
            publish_event=publish_event,
        )
        engine.seed(await manager.load())
        transitions = 0
        c0, t0 = time.process_time(), time.perf_counter()
        for b in batches:
            changes = []
            for r in _stamp(b):
                found = engine.on_reading(r)
                if found:
                    changes.extend(found)
            if changes:
                transitions += len(changes)
                await manager.apply(changes)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        async with store.begin() as conn:
            stored = await conn.scalar(
                select(func.count())
                .select_from(events_table)
                .where(events_table.c.type.like("alarm.%"))
            )
    finally:
        await store.close()
    n = sum(len(b) for b in batches)
    return Run(name, n, int(stored or 0), published, wall, cpu, changes=transitions)


async def run_engine(workdir: Path, points: int, readings: int, batch: int) -> EngineFigures:
    names = [f"p{i:05d}.v" for i in range(points)]
    batches = _batches(names, readings, batch)
    runs = [engine_only(names, batches)]
    print(runs[-1].row(), flush=True)
    for i, (name, cfg) in enumerate(
        (
            ("engine + manager (stored, published)", _QUIET),
            ("engine + manager, default chattering/flood", {}),
        )
    ):
        url = f"sqlite+aiosqlite:///{workdir}/engine{i}.db"
        runs.append(await with_manager(name, url, names, batches, dict(cfg)))
        print(runs[-1].row(), flush=True)
    return EngineFigures(runs)
