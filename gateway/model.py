"""The gateway's vocabulary: what flows on the bus.

Every message is a frozen, slotted dataclass. Timestamps are UTC nanoseconds
since the Unix epoch (``int``): exact, cheap to compare, and what line
protocol wants, so a point's timestamp survives a round trip to a historian
unchanged. Use :func:`to_datetime` when a human needs to read one.

Points are named ``device.point`` (``tx1.winding_temp_a``). Event types are
dotted (``access.denied``, ``device.offline``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

__all__ = [
    "Alarm",
    "AlarmState",
    "Category",
    "Command",
    "Event",
    "Message",
    "Priority",
    "Quality",
    "Reading",
    "Value",
    "from_datetime",
    "split_point",
    "to_datetime",
]

Value: TypeAlias = float | int | bool | str
"""What a point can hold. ``bool`` and ``str`` are first-class (a breaker is
open or closed; a pump reports a fault text)."""


class Quality(enum.StrEnum):
    """OPC-style quality of a reading."""

    GOOD = "good"
    UNCERTAIN = "uncertain"  # stale, substituted, or out of the sensor's range
    BAD = "bad"  # the device answered, but the value cannot be trusted


class Priority(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Category(enum.StrEnum):
    """What an alarm is about; decides the team, the certification and the route."""

    FIRE = "fire"
    SECURITY = "security"
    ELECTRICAL = "electrical"
    WATER = "water"
    LIFT = "lift"
    HVAC = "hvac"
    IT = "it"


class AlarmState(enum.StrEnum):
    """ISA-18.2 alarm states (the alarm engine owns the transitions)."""

    NORMAL = "normal"
    UNACKNOWLEDGED = "unacknowledged"
    ACKNOWLEDGED = "acknowledged"
    RTN_UNACKNOWLEDGED = "rtn_unacknowledged"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample of one point."""

    point: str
    value: Value
    ts: int  # UTC, ns since the epoch
    quality: Quality = Quality.GOOD

    @property
    def device(self) -> str:
        return split_point(self.point)[0]


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened: a card swipe, a device going offline."""

    type: str
    source: str  # the device or service that saw it
    ts: int  # UTC, ns since the epoch
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Alarm:
    """A transition of one alarm, as the alarm engine announces it (after it
    is stored: see gateway/alarms/).

    ``state`` is the ISA-18.2 state after the transition; ``transition`` says
    what happened (``activated``, ``cleared``, ``acknowledged``, ``shelved``
    ...: :data:`gateway.alarms.TRANSITIONS`). ``user`` and ``note`` say who did
    it and why, for operator actions.
    """

    id: str  # one alarm per (rule, source) at a time: "<rule>@<source>"
    rule: str
    source: str  # a point ('tx1.winding_temp_a') or a device ('tx1')
    state: AlarmState
    priority: Priority
    ts: int  # UTC, ns since the epoch
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    transition: str = ""
    category: str = ""  # a Category value
    route: str = ""  # the escalation route (a key of oncall.policies)
    device: str = ""
    user: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Command:
    """A request to a device, executed by the driver that owns ``target``."""

    target: str  # a device id
    action: str  # "open", "snapshot", "write"
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""  # correlation id, echoed in the driver's answer event
    user: str = ""  # who asked (the API fills it from the session); kept in the audit record
    role: str = ""  # the role the user acted in; a driver refuses a role the config does not allow
    origin: str = ""  # where the request came from (an address, "api", "mqtt", "rule")


Message: TypeAlias = Reading | Event | Alarm | Command


def split_point(point: str) -> tuple[str, str]:
    """``"tx1.winding_temp_a"`` -> ``("tx1", "winding_temp_a")``."""
    device, sep, name = point.partition(".")
    if not sep or not device or not name:
        raise ValueError(f"point {point!r} is not named 'device.point'")
    return device, name


def to_datetime(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1e9, tz=UTC)


def from_datetime(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("naive datetime: timestamps must carry a time zone")
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
