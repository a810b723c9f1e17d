"""CircuitBreaker on a ManualClock."""

from __future__ import annotations

import random

import pytest

from drivers.modbus.breaker import BreakerState, CircuitBreaker
from gateway.clock import ManualClock


def make(clock: ManualClock, jitter: float = 0.0) -> CircuitBreaker:
    return CircuitBreaker(
        min_delay_s=1.0, max_delay_s=8.0, jitter=jitter, clock=clock, rng=random.Random(1)
    )


async def test_closed_allows_everything() -> None:
    breaker = make(ManualClock())
    assert all(breaker.allow() for _ in range(5))
    assert breaker.state is BreakerState.CLOSED


async def test_failure_opens_then_one_probe_after_delay() -> None:
    clock = ManualClock()
    breaker = make(clock)
    assert breaker.failure(TimeoutError("x")) == 1.0
    assert breaker.state is BreakerState.OPEN
    assert breaker.next_try == 1.0
    assert not breaker.allow()
    await clock.advance(0.99)
    assert not breaker.allow()
    await clock.advance(0.01)
    assert breaker.allow()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # only one probe at a time
    breaker.success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert breaker.allow()


async def test_backoff_doubles_up_to_max() -> None:
    clock = ManualClock()
    breaker = make(clock)
    delays = []
    for _ in range(6):
        delays.append(breaker.failure())
        await clock.advance(delays[-1])
        assert breaker.allow()  # probe, which fails again
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


async def test_jitter_stays_within_bounds() -> None:
    breaker = make(ManualClock(), jitter=0.5)
    for failures in range(1, 6):
        base = min(8.0, 2.0 ** (failures - 1))
        delay = breaker.delay_for(failures)
        assert base * 0.5 <= delay <= base
    assert len({breaker.delay_for(3) for _ in range(10)}) > 1


def test_long_outage_does_not_overflow() -> None:
    assert make(ManualClock()).delay_for(10_000) == 8.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_delay_s": 0}, "min_delay_s"),
        ({"min_delay_s": 5, "max_delay_s": 1}, "min_delay_s"),
        ({"factor": 0.5}, "factor"),
        ({"jitter": 1.0}, "jitter"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CircuitBreaker(**kwargs)
