"""The alarm record: everything the manager knows about one alarm, and its
ISA-18.2 state derived from it.

A record is immutable; the lifecycle functions (:mod:`gateway.alarms.lifecycle`)
return new ones. The annunciated state is derived, never stored on its own:
out of service, shelved and suppressed override the underlying
active/acknowledged state, which the record keeps so that the proper state
returns when the override ends.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.model import Alarm, AlarmState, Priority, Value

__all__ = ["RECORD_VERSION", "AlarmRecord", "jsonable"]

RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """One alarm (one per rule and source) that is not plainly normal."""

    id: str  # "<rule>@<source>"
    rule: str
    source: str
    device: str
    priority: Priority  # present priority (a level may raise it above the rule's)
    category: str
    route: str
    control_room: str
    description: str = ""
    active: bool = False  # the process condition is present
    acked: bool = True  # the present (or last) activation is acknowledged
    latched: bool = False  # waits for a reset (latching alarm that activated)
    annunciated: bool = False  # the present activation was shown to an operator
    level: str = ""
    value: Value | None = None
    limit: float | str | None = None
    unit: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)  # the last ConditionChange.data
    count: int = 0  # activations since the alarm was last plainly normal
    first_ts: int = 0
    activated_ts: int = 0
    cleared_ts: int | None = None
    updated_ts: int = 0
    acked_by: str = ""
    acked_ts: int | None = None
    shelved_until: int | None = None
    shelved_by: str = ""
    shelve_reason: str = ""
    out_of_service: bool = False
    oos_by: str = ""
    oos_reason: str = ""
    suppressed_by: tuple[str, ...] = ()  # "maintenance:<device>", "upstream:<device>"
    chattering: bool = False
    orphan: bool = False  # its rule no longer exists

    @property
    def state(self) -> AlarmState:
        if self.out_of_service:
            return AlarmState.OUT_OF_SERVICE
        if self.shelved_until is not None:
            return AlarmState.SHELVED
        if self.suppressed_by:
            return AlarmState.SUPPRESSED
        return self.underlying_state

    @property
    def underlying_state(self) -> AlarmState:
        """The state without shelving, suppression and out-of-service."""
        if self.active or (self.latched and self.acked):
            return AlarmState.ACKNOWLEDGED if self.acked else AlarmState.UNACKNOWLEDGED
        return AlarmState.NORMAL if self.acked else AlarmState.RTN_UNACKNOWLEDGED

    @property
    def hidden(self) -> bool:
        """Not shown to operators: out of service, shelved or suppressed."""
        return self.out_of_service or self.shelved_until is not None or bool(self.suppressed_by)

    @property
    def removable(self) -> bool:
        """Plainly normal: nothing to remember once the transition is stored."""
        return (
            not self.active
            and self.acked
            and not self.latched
            and self.shelved_until is None
            and not self.out_of_service
        )

    def view(self) -> dict[str, Any]:
        """The ``data`` of the :class:`gateway.model.Alarm` announcing this record
        (the ConditionChange data first, the manager's keys over it)."""
        out: dict[str, Any] = dict(jsonable(self.data))
        out.update(
            active=self.active,
            acked=self.acked,
            latched=self.latched,
            shelved_until=self.shelved_until,
            shelved_by=self.shelved_by,
            shelve_reason=self.shelve_reason,
            out_of_service=self.out_of_service,
            oos_by=self.oos_by,
            oos_reason=self.oos_reason,
            level=self.level,
            value=jsonable(self.value),
            limit=jsonable(self.limit),
            unit=self.unit,
            count=self.count,
            chattering=self.chattering,
            suppressed_by=list(self.suppressed_by),
            description=self.description,
            control_room=self.control_room,
            first_ts=self.first_ts,
            activated_ts=self.activated_ts,
            cleared_ts=self.cleared_ts,
            acked_by=self.acked_by,
            acked_ts=self.acked_ts,
            orphan=self.orphan,
        )
        return out

    def as_alarm(self) -> Alarm:
        """The record's current state as an :class:`~gateway.model.Alarm` (what a
        screen or a message shows; no transition, unlike an announcement)."""
        return Alarm(
            self.id,
            self.rule,
            self.source,
            self.state,
            self.priority,
            self.updated_ts,
            self.description,
            self.view(),
            category=self.category,
            route=self.route,
            device=self.device,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": RECORD_VERSION}
        for f in fields(self):
            out[f.name] = jsonable(getattr(self, f.name))
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AlarmRecord:
        """Rebuild a record stored by :meth:`to_json`; unknown keys are ignored
        (a newer version wrote them), missing ones take their defaults.
        Raises ValueError on a record that cannot be used."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"record is a {type(raw).__name__}, not an object")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in raw:
                kwargs[f.name] = raw[f.name]
        for name in ("id", "rule", "source", "priority", "category", "route", "control_room"):
            if not isinstance(kwargs.get(name), str):
                raise ValueError(f"record field {name!r} is missing or not a string")
        try:
            kwargs["priority"] = Priority(kwargs["priority"])
        except ValueError as exc:
            raise ValueError(f"record priority {kwargs['priority']!r} is unknown") from exc
        kwargs["suppressed_by"] = tuple(str(s) for s in kwargs.get("suppressed_by") or ())
        if not isinstance(kwargs.get("data", {}), Mapping):
            raise ValueError("record field 'data' is not an object")
        for name in ("count", "first_ts", "activated_ts", "updated_ts"):
            if not isinstance(kwargs.get(name, 0), int):
                raise ValueError(f"record field {name!r} is not an integer")
        for name in ("cleared_ts", "acked_ts", "shelved_until"):
            value = kwargs.get(name)
            if value is not None and not isinstance(value, int):
                raise ValueError(f"record field {name!r} is not an integer")
        return cls(**kwargs)


def jsonable(value: Any) -> Any:
    """``value`` as something every backend stores as the same JSON: floats that
    JSON cannot hold (NaN, infinities) become their text, enums their value,
    NUL characters and lone surrogates are replaced, unknown objects become text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, Mapping):
        return {_clean_text(str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return _clean_text(str(value))


def _clean_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
