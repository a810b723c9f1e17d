"""The gateway's health as the control room and monitoring see it.

``status`` is ``degraded`` when something loses or delays data: a driver
crashed or gave up, the time-series sink is down, the outbox holds a
backlog, or the event store cannot be reached; ``reasons`` says which.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "AlarmCountsOut",
    "DeviceStateOut",
    "DriverStateOut",
    "HealthOut",
    "QueueOut",
    "SinkOut",
]


class DriverStateOut(BaseModel):
    state: str = Field(description="starting, running, backoff, failed, stopped or disabled.")
    restarts: int
    last_error: str


class DeviceStateOut(BaseModel):
    online: bool
    reason: str = Field(description="Why it is offline; empty when online.")
    since: datetime | None = Field(description="When the state last changed (UTC).")


class SinkOut(BaseModel):
    type: str = Field(description="embedded, influxdb or influxdb1.")
    up: bool | None = Field(
        description="True after a delivery, false while retrying, null before the first write."
    )
    pending: int = Field(description="Points waiting in the outbox.")
    written: int = Field(description="Points the sink accepted since the start.")
    retries: int
    quarantined: int = Field(description="Points the sink rejected, set aside in the outbox.")
    dropped: int = Field(description="Points dropped because the outbox was full.")
    last_error: str


class QueueOut(BaseModel):
    name: str
    depth: int
    high_water: int
    maxsize: int
    delivered: int
    coalesced: int
    blocked_publishes: int


class AlarmCountsOut(BaseModel):
    active: int = Field(description="Alarms whose condition is present.")
    unacked: int = Field(description="Alarms waiting for an acknowledgement.")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    reasons: list[str] = Field(
        description=(
            "Why degraded: 'driver:<id>' (crashed or given up), 'sink_down', "
            "'outbox_backlog', 'event_store_down'; empty when ok."
        )
    )
    version: str
    uptime_s: float
    drivers: dict[str, DriverStateOut]
    devices: dict[str, DeviceStateOut] = Field(description="Devices a driver has reported.")
    sink: SinkOut | None = Field(description="Null when the gateway writes no time series.")
    event_store_up: bool
    queues: list[QueueOut] = Field(description="Bus subscriptions, one per consumer.")
    alarms: AlarmCountsOut
