"""EEMUA 191 alarm-system figures (:func:`gateway.alarms.kpi.compute_kpis`) for the API.

Times are ISO UTC; rates are per ``period_s`` (10 minutes, EEMUA's unit).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = [
    "BadActorOut",
    "ChatteringOut",
    "KpiOut",
    "PriorityShareOut",
    "RoomRateOut",
    "StaleAlarmOut",
]


class RoomRateOut(BaseModel):
    control_room: str
    alarms: int = Field(description="Annunciated activations in the range.")
    mean_per_period: float
    max_per_period: int
    flood_periods: int = Field(description="Periods with more alarms than the flood threshold.")
    flood_percent: float


class BadActorOut(BaseModel):
    rule: str
    source: str
    count: int = Field(description="Activations, hidden ones included.")


class ChatteringOut(BaseModel):
    id: str
    episodes: int


class StaleAlarmOut(BaseModel):
    id: str
    rule: str
    source: str
    active_since: datetime
    hours: float


class PriorityShareOut(BaseModel):
    priority: str
    count: int
    percent: float
    guide_percent: float | None = Field(description="EEMUA's guide share; null for critical.")


class KpiOut(BaseModel):
    since: datetime
    until: datetime
    days: int
    period_s: float
    periods: int
    alarms: int = Field(description="Annunciated activations (what operators saw).")
    activations: int = Field(description="Every activation, hidden ones too.")
    rooms: list[RoomRateOut]
    flood_percent: float = Field(description="Share of periods in which any room was in flood.")
    flood_above: int = Field(description="The flood threshold: alarms per period.")
    bad_actors: list[BadActorOut] = Field(description="Most frequent alarms, at most 10.")
    chattering: list[ChatteringOut]
    stale: list[StaleAlarmOut] = Field(description="Alarms active longer than stale_after_h.")
    stale_after_h: float
    priorities: list[PriorityShareOut]
