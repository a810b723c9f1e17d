"""When a rule is evaluated: days of the week or working days, and an optional
time window that may cross midnight, in the site's time zone.

Working days follow the site calendar: Monday to Friday, minus ``holidays``,
plus ``workdays`` (make-up working days on a weekend, 调休). A window that
crosses midnight belongs to the day it starts on: ``days: workdays,
between: ["22:00", "06:00"]`` covers Friday 22:00 to Saturday 06:00, not
Sunday night.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from gateway.driver import StrictModel
from gateway.model import from_datetime, to_datetime

__all__ = ["CalendarConfig", "Schedule", "ScheduleConfig", "Weekday"]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_HORIZON_DAYS = 400  # look this far ahead for the next boundary (covers any holiday list)


class CalendarConfig(StrictModel):
    """The site's working-day calendar (public holidays and make-up working days)."""

    holidays: list[date] = Field(
        default_factory=list,
        description="Days off although they fall on Monday to Friday, e.g. 2026-10-01.",
    )
    workdays: list[date] = Field(
        default_factory=list,
        description="Make-up working days (调休) although they fall on a Saturday or Sunday.",
    )

    @model_validator(mode="after")
    def _disjoint(self) -> CalendarConfig:
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            shown = ", ".join(d.isoformat() for d in both)
            raise ValueError(f"{shown} listed both as holiday and as make-up working day")
        return self

    def is_workday(self, day: date) -> bool:
        """Monday to Friday unless a holiday; a make-up working day on a weekend."""
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays


class ScheduleConfig(StrictModel):
    """When a rule is evaluated; outside it the rule's conditions clear."""

    days: list[Weekday] | Literal["workdays", "non_workdays", "any"] = Field(
        "any",
        description="Days the rule runs: a list such as [sat, sun], or 'workdays', "
        "'non_workdays' (per the site calendar) or 'any'.",
    )
    between: tuple[str, str] | None = Field(
        None,
        description="Local time window ['HH:MM', 'HH:MM'], start inclusive, end exclusive; "
        "may cross midnight (['22:00', '06:00']). Omit for whole days.",
    )

    @field_validator("days")
    @classmethod
    def _some_days(cls, v: list[Weekday] | str) -> list[Weekday] | str:
        if isinstance(v, list) and not v:
            raise ValueError("'days' is empty: list days such as [mon, tue], or use 'any'")
        return v

    @field_validator("between")
    @classmethod
    def _window(cls, v: tuple[str, str] | None) -> tuple[str, str] | None:
        if v is None:
            return v
        for part in v:
            if not _HHMM.match(part):
                raise ValueError(f"time {part!r} is not 'HH:MM' (00:00 to 23:59)")
        if v[0] == v[1]:
            raise ValueError("'between' start and end are equal: omit 'between' for whole days")
        return v


class Schedule:
    """A compiled :class:`ScheduleConfig`: is a moment inside, and when does that change."""

    def __init__(self, cfg: ScheduleConfig, timezone: str, calendar: CalendarConfig) -> None:
        self._zone = ZoneInfo(timezone)
        self._calendar = calendar
        self._days = cfg.days
        self._weekdays = (
            frozenset(_WEEKDAYS.index(d) for d in cfg.days) if isinstance(cfg.days, list) else None
        )
        if cfg.between is None:
            self._start, self._end = time(0, 0), time(0, 0)
            self._span = 1  # whole day: ends at 00:00 next day
        else:
            self._start, self._end = (_parse(s) for s in cfg.between)
            self._span = 1 if self._end <= self._start else 0

    def _day_matches(self, day: date) -> bool:
        if self._weekdays is not None:
            return day.weekday() in self._weekdays
        if self._days == "any":
            return True
        workday = self._calendar.is_workday(day)
        return workday if self._days == "workdays" else not workday

    def _interval(self, day: date) -> tuple[datetime, datetime]:
        """Local naive start and end of the window that starts on ``day``."""
        start = datetime.combine(day, self._start)
        end = datetime.combine(day + timedelta(days=self._span), self._end)
        return start, end

    def active_at(self, ts: int) -> bool:
        local = to_datetime(ts).astimezone(self._zone).replace(tzinfo=None)
        today = local.date()
        for day in (today - timedelta(days=1), today):
            if self._day_matches(day):
                start, end = self._interval(day)
                if start <= local < end:
                    return True
        return False

    def next_change(self, ts: int) -> int | None:
        """The first instant after ``ts`` where :meth:`active_at` differs from now (None: never)."""
        now = self.active_at(ts)
        today = to_datetime(ts).astimezone(self._zone).date()
        for offset in range(-1, _HORIZON_DAYS):
            day = today + timedelta(days=offset)
            if not self._day_matches(day):  # its window's edges are no boundaries
                continue
            for edge in self._interval(day):
                at = self._to_ns(edge)
                if at > ts and self.active_at(at) != now:
                    return at
        return None

    def _to_ns(self, local: datetime) -> int:
        return from_datetime(local.replace(tzinfo=self._zone))


def _parse(hhmm: str) -> time:
    h, m = hhmm.split(":")
    return time(int(h), int(m))
