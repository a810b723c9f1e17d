"""What every rule has in common: id, priority, category, route, schedule; and
the checks of point and event-type patterns shared by the rule kinds."""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, PrivateAttr

from gateway.driver import StrictModel
from gateway.model import Category, Priority
from gateway.rules.schedule import ScheduleConfig

__all__ = ["ConditionValue", "RuleBase", "check_point_pattern", "check_type_pattern"]

ConditionValue = bool | int | float | str
"""A value a state or combo rule compares with (YAML true/0/1.5/'tripped' keep their type)."""

_ID = r"^[A-Za-z0-9_-]+$"
_GLOB_OK = re.compile(r"^[^\s.]+\.\S+$")


def check_point_pattern(pattern: str) -> str:
    """``'pump*.outlet_pressure'`` is fine; ``'pump1'`` or ``'pump[1.x'`` is not."""
    if not _GLOB_OK.match(pattern):
        raise ValueError(
            f"point pattern {pattern!r} is not of the form '<device>.<point>' "
            "(globs allowed, e.g. 'pump*.outlet_pressure')"
        )
    if pattern.count("[") != pattern.count("]"):
        raise ValueError(f"point pattern {pattern!r} has an unclosed '[' ... ']'")
    return pattern


def check_type_pattern(pattern: str) -> str:
    """An event type or a glob of event types: ``'access.denied'``, ``'fire.*'``."""
    if not pattern or any(c.isspace() for c in pattern):
        raise ValueError(f"event type {pattern!r} must be a dotted name such as 'access.denied'")
    return pattern


class RuleBase(StrictModel):
    """Fields every rule has."""

    id: str = Field(description="Unique rule id (letters, digits, '_' and '-').", pattern=_ID)
    enabled: bool = Field(True, description="Set to false to keep the rule but not evaluate it.")
    priority: Priority = Field(
        Priority.MEDIUM, description="critical, high, medium or low (ISA-18.2)."
    )
    category: Category | None = Field(
        None,
        description="fire, security, electrical, water, lift, hvac or it; "
        "default: from the kind of the watched device.",
    )
    route: str | None = Field(
        None,
        description="Escalation route (a key of oncall.policies); default: the category.",
        pattern=_ID,
    )
    description: str = Field("", description="What the alarm means, shown to people.")
    latching: bool | None = Field(
        None,
        description="Stays until acknowledged and reset; default: true for critical rules.",
    )
    control_room: str = Field(
        "main", description="Control room whose operators see this alarm.", pattern=_ID
    )
    schedule: ScheduleConfig | None = Field(
        None,
        description="When the rule is evaluated (site time zone); outside it, "
        "its alarms clear. Default: always.",
    )
    _origin: str = PrivateAttr("site")

    @property
    def origin(self) -> str:
        """Where the rule comes from: 'site', 'profile <name>', 'default'."""
        return self._origin

    def with_origin(self, origin: str) -> Self:
        """A copy of this rule marked as coming from ``origin``."""
        copy = self.model_copy()
        copy._origin = origin
        return copy

    def point_patterns(self) -> list[str]:
        """The point patterns this rule watches (none for event-driven rules)."""
        return []
