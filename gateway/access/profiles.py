"""Named time profiles: when a group may pass (``access.time_profiles``).

A profile is open when any of its periods is active, which is exactly what a
rule's schedule means, so each period is a compiled
:class:`~gateway.rules.schedule.Schedule`: the same working-day calendar
(holidays, make-up working days), the same windows across midnight (a window
belongs to the day it starts on). On top of that a profile may be limited to
date ranges and closed on the calendar's holidays. ``always`` is built in.

Dates are the local date of the moment asked about, in the site's zone. The
decider asks on every card read, so answers are cached per minute: every
boundary a profile can have falls on a whole minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from gateway.access.config import TimeProfileConfig
from gateway.model import to_datetime
from gateway.rules.schedule import CalendarConfig, Schedule

__all__ = ["ALWAYS", "TimeProfiles", "UnknownProfile"]

ALWAYS = "always"
_MINUTE_NS = 60_000_000_000
_CACHE_MAX = 4_096


class UnknownProfile(KeyError):
    """A time profile that is neither configured nor built in."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    schedules: tuple[Schedule, ...]
    dates: tuple[tuple[date, date], ...]
    closed_on: frozenset[date]  # the calendar's holidays when 'holidays: closed'


class TimeProfiles:
    """``allows(name, ts)``: may a group with profile ``name`` pass at ``ts``."""

    def __init__(
        self,
        profiles: Mapping[str, TimeProfileConfig],
        timezone: str,
        calendar: CalendarConfig,
    ) -> None:
        self._zone = ZoneInfo(timezone)
        self._profiles = {
            name: _Compiled(
                schedules=tuple(Schedule(p, timezone, calendar) for p in cfg.periods),
                dates=tuple((r.start, r.end) for r in cfg.dates),
                closed_on=frozenset(calendar.holidays) if cfg.holidays == "closed" else frozenset(),
            )
            for name, cfg in profiles.items()
        }
        self._cache: dict[tuple[str, int], bool] = {}

    def __contains__(self, name: object) -> bool:
        return name == ALWAYS or name in self._profiles

    def allows(self, name: str, ts: int) -> bool:
        """Whether profile ``name`` is open at ``ts`` (UTC ns). Raises
        :class:`UnknownProfile` for a name that is not configured."""
        if name == ALWAYS:
            return True
        key = (name, ts // _MINUTE_NS)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        profile = self._profiles.get(name)
        if profile is None:
            raise UnknownProfile(name)
        # Whole minutes: the answer at the minute's start holds for all of it.
        result = self._open(profile, key[1] * _MINUTE_NS)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = result
        return result

    def _open(self, profile: _Compiled, ts: int) -> bool:
        if profile.dates or profile.closed_on:
            day = to_datetime(ts).astimezone(self._zone).date()
            if day in profile.closed_on:
                return False
            if profile.dates and not any(a <= day <= b for a, b in profile.dates):
                return False
        return any(s.active_at(ts) for s in profile.schedules)
