"""Supervisor: restart with backoff, crash events, restart limit, clean stop."""

import asyncio
import itertools
import random

from gateway.clock import ManualClock
from gateway.health import DriverState, Health
from gateway.model import Event
from gateway.supervisor import RestartPolicy, Supervisor


def make(policy: RestartPolicy) -> tuple[Supervisor, Health, list[Event], ManualClock]:
    clock = ManualClock()
    events: list[Event] = []

    async def emit(e: Event) -> None:
        events.append(e)

    health = Health(clock, emit)
    return Supervisor(clock, health, emit, policy, random.Random(1)), health, events, clock


async def test_crashing_task_restarts_with_growing_backoff() -> None:
    sup, health, events, clock = make(RestartPolicy(backoff_min=1, backoff_max=8, max_restarts=100))
    runs: list[float] = []

    async def flaky() -> None:
        runs.append(clock.monotonic())
        raise ConnectionError("device unreachable")

    sup.start("modbus1", flaky)
    await clock.advance(60)
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert len(runs) >= 6
    assert all(0.5 <= g <= 8 for g in gaps)
    assert max(gaps[-3:]) > max(gaps[:2])  # backoff grew
    crashed = [e for e in events if e.type == "driver.crashed"]
    assert crashed and crashed[0].data["error"] == "ConnectionError: device unreachable"
    assert health.driver("modbus1").state is DriverState.BACKOFF
    await sup.stop()
    assert health.driver("modbus1").state is DriverState.STOPPED


async def test_restart_limit_marks_failed_and_stops_retrying() -> None:
    sup, health, events, clock = make(
        RestartPolicy(backoff_min=0.1, backoff_max=0.1, max_restarts=3)
    )
    count = 0

    async def broken() -> None:
        nonlocal count
        count += 1
        raise ValueError("bad register map")

    sup.start("bad", broken)
    await clock.advance(30)
    assert count == 4
    assert health.driver("bad").state is DriverState.FAILED
    assert [e.type for e in events].count("driver.failed") == 1
    assert sup.done("bad")
    await sup.stop()


async def test_returning_run_is_a_crash_and_healthy_task_keeps_running() -> None:
    sup, health, events, clock = make(RestartPolicy(backoff_min=1, max_restarts=100))

    async def returns() -> None:
        return None

    async def steady() -> None:
        await asyncio.Event().wait()

    sup.start("returns", returns)
    sup.start("steady", steady)
    await clock.advance(3)
    assert any(e.source == "returns" and e.data["error"] == "run() returned" for e in events)
    assert health.driver("steady").state is DriverState.RUNNING
    await sup.stop()
