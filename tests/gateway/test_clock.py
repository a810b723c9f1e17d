"""ManualClock runs schedules in virtual time."""

import asyncio
from datetime import UTC, datetime

from gateway.clock import ManualClock, SystemClock


async def test_a_day_of_two_hourly_checks_runs_in_virtual_time() -> None:
    clock = ManualClock(datetime(2026, 11, 21, tzinfo=UTC))
    ticks: list[datetime] = []

    async def every_two_hours() -> None:
        while True:
            await clock.sleep(7200)
            ticks.append(clock.now())

    task = asyncio.create_task(every_two_hours())
    await clock.advance(24 * 3600)
    task.cancel()
    assert len(ticks) == 12
    assert ticks[0] == datetime(2026, 11, 21, 2, tzinfo=UTC)
    assert ticks[-1] == datetime(2026, 11, 22, tzinfo=UTC)


async def test_sleepers_wake_in_deadline_order_and_time_ns_follows() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    order: list[str] = []

    async def sleeper(name: str, s: float) -> None:
        await clock.sleep(s)
        order.append(name)

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3), ("a", 1), ("b", 2))]
    await clock.advance(2.5)
    assert order == ["a", "b"]
    assert clock.monotonic() == 2.5
    assert (
        clock.time_ns() == int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1e9) + 2_500_000_000
    )
    await clock.advance(1)
    assert order == ["a", "b", "c"]
    await asyncio.gather(*tasks)


async def test_cancelled_sleeper_is_skipped() -> None:
    clock = ManualClock()
    t = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    t.cancel()
    await clock.advance(10)
    assert clock.sleepers == 0


def test_system_clock_is_utc() -> None:
    c = SystemClock()
    assert c.now().tzinfo is UTC
    assert abs(c.time_ns() / 1e9 - c.now().timestamp()) < 5
