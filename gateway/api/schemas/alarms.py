"""Alarms as the API shows them, and the bodies of the operator actions.

One shape (:class:`AlarmOut`) for the REST list, the action answers and the
live stream, built either from the manager's record or from the announced
:class:`gateway.model.Alarm` (whose ``data`` is ``AlarmRecord.view()``), so
the page never has to reconcile two views of one alarm.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.alarms.record import AlarmRecord
from gateway.api.context import ApiContext
from gateway.model import Alarm, AlarmState, Priority, to_datetime

__all__ = [
    "SHELVE_MAX_MIN",
    "AcknowledgeIn",
    "AlarmListOut",
    "AlarmOut",
    "FloodOut",
    "MaintenanceIn",
    "MaintenanceOut",
    "NoteIn",
    "OptionalNoteIn",
    "ReasonIn",
    "ShelveIn",
    "alarm_from_message",
    "alarm_from_record",
]

# The ceiling of alarms.shelve.max_hours (31 days); the site's own limit,
# usually lower, is checked by the manager (422 with its reason).
SHELVE_MAX_MIN = 24 * 31 * 60

Scalar = float | int | bool | str


class AlarmOut(BaseModel):
    id: str = Field(description="'<rule>@<source>'")
    rule: str
    source: str = Field(description="The point or device the rule watches.")
    device: str
    device_name: str
    location: str
    state: AlarmState
    priority: Priority
    category: str
    description: str
    value: Scalar | None = Field(description="The value that (last) raised or cleared it.")
    limit: float | str | None
    unit: str
    level: str = Field(description="Which limit: high, high_high, low ... (empty for states).")
    active: bool = Field(description="The process condition is present.")
    acked: bool = Field(description="The present (or last) activation is acknowledged.")
    latched: bool = Field(description="Waits for a reset once cleared and acknowledged.")
    shelved_until: datetime | None
    shelved_by: str
    shelve_reason: str
    out_of_service: bool
    oos_reason: str
    suppressed_by: list[str] = Field(description="'maintenance:<device>', 'upstream:<device>'.")
    chattering: bool
    count: int = Field(description="Activations since it was last plainly normal.")
    control_room: str
    first: datetime | None = Field(description="First activation of this episode.")
    activated: datetime | None = Field(description="The present (or last) activation.")
    cleared: datetime | None
    acked_by: str
    acked_at: datetime | None = Field(description="When it was acknowledged.")
    updated: datetime = Field(description="The last transition.")


class FloodOut(BaseModel):
    control_room: str
    active: bool
    since: datetime | None = Field(None, description="When the present flood started.")
    count: int = Field(0, description="Alarms annunciated within the flood window.")


class AlarmListOut(BaseModel):
    items: list[AlarmOut] = Field(description="Critical to low, then newest update first.")
    floods: list[FloodOut] = Field(description="One per control room.")


class MaintenanceOut(BaseModel):
    device: str
    maintenance: bool = Field(description="The device is in maintenance now.")
    alarms: list[AlarmOut] = Field(description="The device's alarms after the change.")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AcknowledgeIn(_Request):
    note: str = Field("", max_length=1000)


class NoteIn(_Request):
    """A comment: the note is required."""

    note: str = Field(min_length=1, max_length=1000)


class OptionalNoteIn(_Request):
    note: str = Field("", max_length=1000)


class ReasonIn(_Request):
    reason: str = Field(min_length=1, max_length=1000)


class ShelveIn(_Request):
    reason: str = Field(min_length=1, max_length=1000)
    duration_min: int = Field(
        ge=1,
        le=SHELVE_MAX_MIN,
        description="Minutes; the site's alarms.shelve.max_hours is the real limit.",
    )


class MaintenanceIn(_Request):
    on: bool
    reason: str = Field("", max_length=1000, description="Needed to switch maintenance on.")


def alarm_from_message(ctx: ApiContext, alarm: Alarm) -> AlarmOut:
    """The API view of an announced alarm (its ``data`` is ``AlarmRecord.view()``)."""
    d: Mapping[str, Any] = alarm.data
    about = ctx.alerting.describe(alarm)
    return AlarmOut(
        id=alarm.id,
        rule=alarm.rule,
        source=alarm.source,
        device=alarm.device,
        device_name=str(about.get("device_name") or alarm.device),
        location=str(about.get("location") or ""),
        state=alarm.state,
        priority=alarm.priority,
        category=alarm.category,
        description=str(about.get("description") or ""),
        value=_scalar(d.get("value")),
        limit=_limit(d.get("limit")),
        unit=str(about.get("unit") or ""),
        level=str(d.get("level") or ""),
        active=bool(d.get("active")),
        acked=bool(d.get("acked")),
        latched=bool(d.get("latched")),
        shelved_until=_dt(d.get("shelved_until")),
        shelved_by=str(d.get("shelved_by") or ""),
        shelve_reason=str(d.get("shelve_reason") or ""),
        out_of_service=bool(d.get("out_of_service")),
        oos_reason=str(d.get("oos_reason") or ""),
        suppressed_by=[str(s) for s in d.get("suppressed_by") or ()],
        chattering=bool(d.get("chattering")),
        count=_int(d.get("count"), 1),
        control_room=str(d.get("control_room") or "main"),
        first=_dt(d.get("first_ts")),
        activated=_dt(d.get("activated_ts")),
        cleared=_dt(d.get("cleared_ts")),
        acked_by=str(d.get("acked_by") or ""),
        acked_at=_dt(d.get("acked_ts")),
        updated=to_datetime(alarm.ts),
    )


def alarm_from_record(ctx: ApiContext, rec: AlarmRecord) -> AlarmOut:
    """The API view of the manager's record (the same as its announcement's)."""
    return alarm_from_message(ctx, rec.as_alarm())


def _dt(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return to_datetime(value)


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _scalar(value: object) -> Scalar | None:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _limit(value: object) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return str(value)
