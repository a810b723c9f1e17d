"""What the rule engine tells the alarm manager: a condition of one rule on
one source became present or went away.

The rule engine (``gateway.rules``) is pure and synchronous: it turns readings,
events and the passing of time into :class:`ConditionChange` values. The alarm
manager (``gateway.alarms``) owns everything after that: the ISA-18.2 state,
acknowledgements, shelving, suppression, persistence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.model import Category, Priority, Value

__all__ = ["ConditionChange", "RuleInfo", "alarm_id"]


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What the alarm manager and the notifier need to know about a rule."""

    id: str
    kind: str  # limit, rate, stale, state, event, offline, combo
    priority: Priority  # the rule's priority (a limit level may raise it: ConditionChange.priority)
    category: Category
    route: str  # key of oncall.policies
    description: str = ""  # shown to people; any language
    latching: bool = False  # stays until acknowledged and reset (default: critical rules)
    control_room: str = "main"
    # Suppressed by design while an upstream of the source's device is down
    # (offline and stale rules, and the low levels of limit rules, are).
    inhibit_on_upstream_down: bool = False
    # This rule's alarm on a device means the device is down for its dependants
    # (an offline rule, a feeder-breaker-tripped state rule).
    marks_device_down: bool = False
    origin: str = ""  # 'site', 'profile dry_type_tc', 'default'


@dataclass(frozen=True, slots=True)
class ConditionChange:
    """The condition of ``rule`` on ``source`` became active or cleared at ``ts``."""

    rule: str
    source: str  # a point ('tx1.winding_temp_a') or a device ('tx1'), or an event's source
    device: str  # the device the source belongs to ('' when there is none)
    active: bool
    ts: int  # UTC ns
    priority: Priority  # priority of the present level (HH may be above the rule's H)
    level: str = ""  # limit level: 'HH', 'H', 'L', 'LL'; '' for other kinds
    value: Value | None = None  # the value that crossed (or cleared)
    limit: float | str | None = None  # what it was compared against
    unit: str = ""
    # Not a clear: the level changed while active (H -> HH re-annunciates).
    level_change: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)  # kind-specific details (count, window)


def alarm_id(rule: str, source: str) -> str:
    """One alarm per (rule, source): ``"tx1-winding_alarm@tx1.winding_temp_max"``."""
    return f"{rule}@{source}"
