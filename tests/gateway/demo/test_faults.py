"""The demo's fault scheduler against the real simulated estate, on a ManualClock."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("pymodbus", reason="the demo's estate needs estate-gateway[modbus]")

from drivers.modbus.estate import Estate
from gateway.clock import ManualClock
from gateway.demo.faults import SCENARIOS, FaultScheduler


async def test_faults_start_hold_clear_and_cycle() -> None:
    clock = ManualClock()
    seen: list[tuple[str, bool]] = []
    async with Estate() as estate:
        sched = FaultScheduler(
            estate,
            clock,
            every_s=300,
            hold_s=200,
            first_after_s=30,
            on_fault=lambda n, s: seen.append((n, s)),
        )
        task = asyncio.create_task(sched.run())
        await clock.advance(29)
        assert seen == []
        await clock.advance(1)
        assert seen == [("overheat", True)]
        await clock.advance(200)
        assert seen[-1] == ("overheat", False)
        await clock.advance(100)  # the next fault: the pump room leak, on DI 5
        assert seen[-1] == ("leak", True)
        assert estate.read_point("dio1", "di_05") is True
        await clock.advance(200)
        assert seen[-1] == ("leak", False)
        assert estate.read_point("dio1", "di_05") is False
        await clock.advance(100 + 300 * (len(SCENARIOS) - 2))
        assert [n for n, s in seen if s] == [s.name for s in SCENARIOS] + ["overheat"]
        assert sched.injected == len(SCENARIOS) + 1
        task.cancel()


def test_bad_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        FaultScheduler(None, ManualClock(), every_s=0)  # type: ignore[arg-type]
