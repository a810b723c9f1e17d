"""Helpers for the rule tests: build an engine from plain dicts, explicit ns times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from gateway.model import Quality, Reading, Value, from_datetime
from gateway.rules import CalendarConfig, ConditionChange, RuleConfig, RuleEngine

S = 1_000_000_000  # one second in ns
T0 = from_datetime(datetime(2026, 3, 2, tzinfo=UTC))  # a Monday, 08:00 in Shanghai

RULES = TypeAdapter(list[RuleConfig])

POINTS = [
    "tx1.winding_temp",
    "tx2.winding_temp",
    "pump1.outlet_pressure",
    "pump2.outlet_pressure",
    "pump1.fault_code",
    "pump1.running",
    "tank1.level",
    "room1.temp",
]
KINDS = {
    "tx1": "transformer",
    "tx2": "transformer",
    "pump1": "pump",
    "pump2": "pump",
    "tank1": "tank",
    "reader1": "card_reader",
    "reader2": "card_reader",
    "reader3": "card_reader",
    "room1": "sensor",
}


def rules(*specs: Mapping[str, Any]) -> list[RuleConfig]:
    return RULES.validate_python(list(specs))


def engine(
    *specs: Mapping[str, Any],
    start: int = T0,
    points: Sequence[str] = POINTS,
    calendar: CalendarConfig | None = None,
    timezone: str = "Asia/Shanghai",
    units: Mapping[str, str] | None = None,
) -> RuleEngine:
    return RuleEngine(
        rules(*specs),
        known_points=points,
        device_kinds=KINDS,
        timezone=timezone,
        calendar=calendar or CalendarConfig(),
        start_ns=start,
        units=units,
    )


def rd(point: str, value: Value, t: float, quality: Quality = Quality.GOOD) -> Reading:
    """A reading ``t`` seconds after T0."""
    return Reading(point, value, T0 + round(t * S), quality)


def feed(
    eng: RuleEngine, point: str, values: Sequence[tuple[float, Value]]
) -> list[ConditionChange]:
    out: list[ConditionChange] = []
    for t, v in values:
        out.extend(eng.on_reading(rd(point, v, t)))
    return out


def at(t: float) -> int:
    return T0 + round(t * S)


def summary(changes: Sequence[ConditionChange]) -> list[tuple[str, bool, str]]:
    """(source, active, level) of each change: what most assertions look at."""
    return [(c.source, c.active, c.level) for c in changes]
