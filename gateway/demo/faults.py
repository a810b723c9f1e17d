"""Faults the demo injects on its own, so a newcomer sees alarms arrive,
escalate and clear on the control-room page without typing anything.

Every ``every_s`` seconds the next fault of :data:`SCENARIOS` starts; it
lasts ``hold_s`` (long enough for the level-2 escalation at 3 minutes when
nobody acknowledges) and then clears. Runs on the injectable clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.clock import Clock

if TYPE_CHECKING:
    from drivers.modbus.estate import Estate

__all__ = ["SCENARIOS", "FaultScenario", "FaultScheduler"]

log = logging.getLogger("gateway.demo.faults")


@dataclass(frozen=True, slots=True)
class FaultScenario:
    name: str  # a key of the demo.fault.* texts
    start: Callable[[Estate], None]
    clear: Callable[[Estate], None]


def _leak_on(e: Estate) -> None:
    e.set_point("dio1", "di_05", True)


def _leak_off(e: Estate) -> None:
    e.set_point("dio1", "di_05", False)
    e.release("dio1", "di_05")


def _fire_on(e: Estate) -> None:
    e.set_point("dio1", "di_09", True)


def _fire_off(e: Estate) -> None:
    e.set_point("dio1", "di_09", False)
    e.release("dio1", "di_09")


SCENARIOS: tuple[FaultScenario, ...] = (
    FaultScenario("overheat", lambda e: e.overheat("tx1", 140.0), lambda e: e.cool("tx1")),
    FaultScenario("leak", _leak_on, _leak_off),
    FaultScenario("pump_trip", lambda e: e.trip_pump("pump2"), lambda e: e.reset_pump("pump2")),
    FaultScenario("fire", _fire_on, _fire_off),
)


class FaultScheduler:
    def __init__(
        self,
        estate: Estate,
        clock: Clock,
        *,
        every_s: float = 300.0,
        hold_s: float = 200.0,
        first_after_s: float = 30.0,
        on_fault: Callable[[str, bool], None] | None = None,
    ) -> None:
        if hold_s <= 0 or every_s <= 0:
            raise ValueError("every_s and hold_s must be positive")
        self.estate = estate
        self.clock = clock
        self.every_s = every_s
        self.hold_s = hold_s
        self.first_after_s = first_after_s
        self.on_fault = on_fault
        self.injected = 0

    async def run(self) -> None:
        """Start a fault, hold it, clear it, wait for the next; forever."""
        await self.clock.sleep(self.first_after_s)
        i = 0
        while True:
            scenario = SCENARIOS[i % len(SCENARIOS)]
            i += 1
            self._do(scenario, start=True)
            hold = min(self.hold_s, self.every_s)
            await self.clock.sleep(hold)
            self._do(scenario, start=False)
            await self.clock.sleep(max(self.every_s - hold, 1.0))

    def _do(self, scenario: FaultScenario, *, start: bool) -> None:
        action = scenario.start if start else scenario.clear
        action(self.estate)
        if start:
            self.injected += 1
        log.info("demo fault %s %s", scenario.name, "started" if start else "cleared")
        if self.on_fault is not None:
            self.on_fault(scenario.name, start)
