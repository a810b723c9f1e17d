"""A real AlarmManager on a real event store, driven by a ManualClock."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.alarms import AlarmManager, AlarmsConfig
from gateway.clock import ManualClock
from gateway.model import Alarm, Category, Event, Priority
from gateway.rules.condition import ConditionChange, RuleInfo
from gateway.storage.eventstore import EventStore

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

RULES: dict[str, RuleInfo] = {
    r.id: r
    for r in (
        RuleInfo("tx-temp", "limit", Priority.HIGH, Category.ELECTRICAL, "electrical"),
        RuleInfo(
            "tx-trip", "state", Priority.CRITICAL, Category.ELECTRICAL, "electrical", latching=True
        ),
        RuleInfo(
            "device-offline",
            "offline",
            Priority.MEDIUM,
            Category.IT,
            "it",
            inhibit_on_upstream_down=True,
            marks_device_down=True,
        ),
        RuleInfo("pressure", "limit", Priority.MEDIUM, Category.WATER, "water"),
        RuleInfo("fire", "event", Priority.HIGH, Category.FIRE, "fire", description="火警"),
        RuleInfo("door", "event", Priority.LOW, Category.SECURITY, "security"),
        RuleInfo(
            "lobby", "event", Priority.LOW, Category.SECURITY, "security", control_room="east"
        ),
    )
}
# feeder1 feeds pump1, which feeds the sensor s1 (transitively: feeder1 -> s1)
UPSTREAM: dict[str, list[str]] = {"pump1": ["feeder1"], "s1": ["pump1"]}


def sqlite_url(tmp: Any) -> str:
    return f"sqlite+aiosqlite:///{tmp}/data/gw.db"


@dataclass
class Harness:
    store: EventStore
    clock: ManualClock
    config: AlarmsConfig
    published: list[Alarm] = field(default_factory=list)
    notices: list[Event] = field(default_factory=list)
    manager: AlarmManager | None = None

    @property
    def m(self) -> AlarmManager:
        assert self.manager is not None
        return self.manager

    async def start(
        self,
        *,
        rules: Mapping[str, RuleInfo] = RULES,
        upstream: Mapping[str, Sequence[str]] = UPSTREAM,
        maintenance: Sequence[str] = (),
    ) -> list[tuple[str, str]]:
        self.manager = AlarmManager(
            self.store,
            self.publish,
            self.clock,
            self.config,
            rules,
            upstream,
            maintenance=maintenance,
            publish_event=self.publish_event,
        )
        return await self.manager.load()

    async def publish(self, alarm: Alarm) -> None:
        # The transition must already be in the events table when it is announced.
        stored = await self.store.query(types=[f"alarm.{alarm.transition}"], source=alarm.source)
        assert any(s.event.ts == alarm.ts and s.event.data["id"] == alarm.id for s in stored), (
            f"{alarm.transition} of {alarm.id} published before it was stored"
        )
        self.published.append(alarm)

    async def publish_event(self, event: Event) -> None:
        self.notices.append(event)

    def ch(
        self,
        rule: str,
        source: str,
        active: bool = True,
        *,
        device: str | None = None,
        priority: Priority | None = None,
        level: str = "",
        value: Any = None,
        level_change: bool = False,
        ts: int | None = None,
    ) -> ConditionChange:
        return ConditionChange(
            rule=rule,
            source=source,
            device=device if device is not None else source.split(".", 1)[0],
            active=active,
            ts=self.clock.time_ns() if ts is None else ts,
            priority=priority or RULES[rule].priority,
            level=level,
            value=value,
            level_change=level_change,
        )

    async def apply(self, *changes: ConditionChange) -> list[Alarm]:
        return await self.m.apply(changes)

    async def events(self, prefix: str = "alarm.") -> list[Event]:
        return [
            s.event for s in await self.store.query(limit=10_000) if s.event.type.startswith(prefix)
        ]

    def transitions(self, alarm_id: str | None = None) -> list[tuple[str, str]]:
        return [
            (a.transition, a.state.value)
            for a in self.published
            if alarm_id is None or a.id == alarm_id
        ]


async def until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait (real time, bounded) for work handed to a database thread."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def pg_backend() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """URL and connect_args of a fresh schema in the local PostgreSQL (skips when
    unreachable); the schema is dropped afterwards, so parallel runs do not collide."""
    asyncpg = pytest.importorskip("asyncpg")
    reasons = []
    for user in PG_USERS:
        try:
            conn = await asyncpg.connect(
                host=PG_HOST, port=PG_PORT, user=user, database=PG_DB, timeout=5
            )
        except (OSError, asyncpg.PostgresError) as exc:
            reasons.append(f"{user}: {type(exc).__name__}: {exc}")
            continue
        break
    else:
        pytest.skip(f"no PostgreSQL at {PG_HOST}:{PG_PORT}/{PG_DB} ({'; '.join(reasons)})")
    schema = f"gw_alarms_{uuid.uuid4().hex[:12]}"
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            f"postgresql+asyncpg://{user}@{PG_HOST}:{PG_PORT}/{PG_DB}",
            {"server_settings": {"search_path": schema}},
        )
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()
