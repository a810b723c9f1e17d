"""What the API says about devices and their points: latest values and history.

Values are what the gateway last saw (live) or, right after a restart, what
the embedded store last kept; ``value`` is null for a point never seen (and
for a non-finite float, which JSON cannot carry).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["DeviceOut", "HistoryOut", "HistoryRowOut", "PointOut", "QualityOut"]

QualityOut = Literal["good", "uncertain", "bad"]


class PointOut(BaseModel):
    point: str = Field(description="Full point name, 'device.point'.")
    device: str
    name: str = Field(description="The point's name within its device.")
    unit: str = Field(description="Engineering unit; empty when it has none.")
    description: str = Field("", description="What the point measures, from the site file.")
    value: bool | int | float | str | None = Field(
        description="Latest value; null when never seen (or not a finite number)."
    )
    quality: QualityOut | None = Field(description="Quality of the latest value; null if none.")
    ts: datetime | None = Field(description="When the latest value was sampled (UTC).")
    age_s: float | None = Field(description="Seconds since ``ts`` on the gateway's clock.")


class DeviceOut(BaseModel):
    id: str
    name: str
    kind: str
    location: str
    online: bool | None = Field(
        description="True online, false offline, null when no driver has reported it yet."
    )
    offline_reason: str = Field(description="Why it is offline; empty when online or unknown.")
    since: datetime | None = Field(description="When the online state last changed (UTC).")
    maintenance: bool = Field(description="In maintenance: its alarms are suppressed.")
    points: list[PointOut]


class HistoryRowOut(BaseModel):
    ts: datetime = Field(description="The sample's time, or the start of the bucket (UTC).")
    value: float | None = Field(
        description="The sample, or the bucket's mean; null when it is not a finite number."
    )
    min: float | None
    max: float | None


class HistoryOut(BaseModel):
    point: str
    unit: str
    since: datetime
    until: datetime
    resolution_s: int = Field(
        description="0 for raw samples; else the width of each bucket in seconds."
    )
    rows: list[HistoryRowOut] = Field(description="Oldest first.")
