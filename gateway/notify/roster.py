"""Who is on duty: shifts, rotations and leave, in the site's time zone.

A team's day is cut into shifts (``08:00`` for 12 h, ``20:00`` for 12 h);
handover is exactly at a shift's start, local time: at 07:59:59 the night
shift is on duty, at 08:00:00 the day shift. Shift slots take the entries of
the rotation in turn, counted from the first shift of ``start_date``, so a
rotation of four crews over two shifts repeats every two days. Overrides
(leave, swaps) replace a person by someone else, or by nobody, for a span of
local time. Everything here is pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.model import from_datetime, to_datetime
from gateway.notify.oncall_config import (
    LevelConfig,
    NotifyWho,
    OnCallConfig,
    PersonConfig,
    RosterConfig,
    TeamConfig,
)

__all__ = ["Person", "Roster", "RosterError", "Slot", "UnknownPerson", "UnknownTeam"]

_NS_PER_H = 3_600_000_000_000


class RosterError(LookupError):
    """Base of roster look-up failures."""


class UnknownTeam(RosterError):
    def __init__(self, team: str) -> None:
        super().__init__(f"unknown team {team!r}")
        self.team = team


class UnknownPerson(RosterError):
    def __init__(self, person: str) -> None:
        super().__init__(f"unknown person {person!r}")
        self.person = person


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who can be called, as the escalator and the ack page see them."""

    id: str
    name: str
    locale: str
    addresses: Mapping[str, str]  # email, mobile, wecom_userid, dingtalk_userid, feishu_open_id
    certifications: frozenset[str]

    def holds(self, certification: str | None) -> bool:
        return certification is None or certification in self.certifications

    @classmethod
    def from_config(cls, pid: str, cfg: PersonConfig) -> Person:
        return cls(
            id=pid,
            name=cfg.name,
            locale=cfg.locale,
            addresses=cfg.addresses(),
            certifications=frozenset(cfg.certifications),
        )


@dataclass(frozen=True, slots=True)
class Slot:
    """One shift of one day, with the people the rotation gives it (before leave)."""

    team: str
    shift: str
    start_ns: int  # handover in, UTC ns
    end_ns: int  # handover out (exclusive)
    people: tuple[str, ...]


class Roster:
    """On-duty look-ups over an :class:`OnCallConfig`, in ``timezone`` (the site's)."""

    def __init__(self, config: OnCallConfig, timezone: str = "Asia/Shanghai") -> None:
        self.config = config
        self.tz = ZoneInfo(timezone)
        self.people: Mapping[str, Person] = {
            pid: Person.from_config(pid, cfg) for pid, cfg in config.people.items()
        }

    def person(self, pid: str) -> Person:
        try:
            return self.people[pid]
        except KeyError:
            raise UnknownPerson(pid) from None

    def members(self, team: str) -> list[Person]:
        return [self.people[pid] for pid in self._team(team).members]

    def slots(self, team: str, at_ns: int) -> list[Slot]:
        """The shift slots of ``team`` covering ``at_ns`` (overlapping shifts give several)."""
        cfg = self._team(team)
        if cfg.roster is None:
            return []
        return [
            s
            for s in self._slots_around(team, cfg.roster, cfg.members, at_ns)
            if s.start_ns <= at_ns < s.end_ns
        ]

    def on_duty(self, team: str, at_ns: int) -> list[Person]:
        """Who of ``team`` is on duty at ``at_ns``, leave applied, in roster order.

        A team without a roster is on duty as a whole; a time no shift covers
        has nobody on duty.
        """
        cfg = self._team(team)
        if cfg.roster is None:
            ids: Sequence[str] = cfg.members
        else:
            ids = [pid for slot in self.slots(team, at_ns) for pid in slot.people]
            ids = self._apply_overrides(cfg.roster, ids, at_ns)
        seen: dict[str, Person] = {}
        for pid in ids:
            if pid not in seen:
                seen[pid] = self.people[pid]
        return list(seen.values())

    def callable(
        self, level: LevelConfig, team: str | None, certification: str | None, at_ns: int
    ) -> tuple[list[Person], dict[str, Any]]:
        """Who an escalation level calls at ``at_ns`` for an alarm served by ``team``
        whose category needs ``certification``; with the reasons, for the record
        (``reason``: no_team, nobody_on_duty or not_certified when nobody is left).
        """
        team = level.team or team
        if level.notify is NotifyWho.PEOPLE:
            candidates = [self.people[p] for p in level.people if p in self.people]
        elif team is None or team not in self.config.teams:
            candidates = []
        elif level.notify is NotifyWho.ON_DUTY:
            candidates = self.on_duty(team, at_ns)
        else:
            candidates = self.members(team)
        cert = certification if level.certified_only else None
        people = [p for p in candidates if p.holds(cert)]
        if candidates:
            reason = "not_certified"
        elif level.notify is not NotifyWho.PEOPLE and team not in self.config.teams:
            reason = "no_team"
        else:
            reason = "nobody_on_duty"
        why = {
            "team": team,
            "certification": cert,
            "candidates": [p.id for p in candidates],
            "reason": reason,
        }
        return people, why

    def next_handover(self, team: str, at_ns: int) -> int | None:
        """UTC ns of the next shift start after ``at_ns`` (None without a roster)."""
        cfg = self._team(team)
        if cfg.roster is None:
            return None
        starts = [
            s.start_ns
            for s in self._slots_around(team, cfg.roster, cfg.members, at_ns, days=(0, 1))
            if s.start_ns > at_ns
        ]
        return min(starts) if starts else None

    # -- internals --------------------------------------------------------

    def _team(self, team: str) -> TeamConfig:
        try:
            return self.config.teams[team]
        except KeyError:
            raise UnknownTeam(team) from None

    def _local_date(self, at_ns: int) -> date:
        return to_datetime(at_ns).astimezone(self.tz).date()

    def _slots_around(
        self,
        team: str,
        roster: RosterConfig,
        members: Sequence[str],
        at_ns: int,
        days: Sequence[int] = (-1, 0),
    ) -> list[Slot]:
        shifts = roster.ordered_shifts()
        today = self._local_date(at_ns)
        out = []
        for offset in days:
            day = today + timedelta(days=offset)
            for i, shift in enumerate(shifts):
                start = datetime.combine(day, shift.start_time, tzinfo=self.tz)
                start_ns = from_datetime(start)
                end_ns = start_ns + round(shift.hours * _NS_PER_H)
                if roster.rotation:
                    k = (day - roster.start_date).days * len(shifts) + i
                    people = tuple(roster.rotation[k % len(roster.rotation)])
                else:
                    people = tuple(members)
                out.append(Slot(team, shift.name, start_ns, end_ns, people))
        return out

    def _apply_overrides(self, roster: RosterConfig, ids: Sequence[str], at_ns: int) -> list[str]:
        active: dict[str, str | None] = {}
        for ov in roster.overrides:
            start, end = ov.span()
            if (
                from_datetime(start.replace(tzinfo=self.tz))
                <= at_ns
                < from_datetime(end.replace(tzinfo=self.tz))
            ):
                active.setdefault(ov.person, ov.replaced_by)
        out = []
        for pid in ids:
            # Follow replacements (A's stand-in may be on leave too); a cycle means nobody.
            current: str | None = pid
            visited: set[str] = set()
            while current is not None and current in active:
                if current in visited:
                    current = None
                    break
                visited.add(current)
                current = active[current]
            if current is not None:
                out.append(current)
        return out
