"""The daily access report: entries and exits per door on one local day,
denials by reason, and who is inside now.

A "day" is a calendar day in the site's time zone (00:00 to 00:00 local,
23 or 25 hours on a daylight-saving change), because that is what a
property manager means by "yesterday". The counts come from
``access_passages``; "inside now" comes from ``access_presence`` joined
with the credentials (vehicles and people counted apart, per area), so it is
the state at the time the report is made, whatever the day asked for.

:func:`render_text` gives the report as plain text in a locale (headings and
reasons from the i18n catalogue), for a mail body or the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from gateway.access.config import OUTSIDE, AccessConfig
from gateway.i18n import t
from gateway.model import from_datetime
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import access_credentials, access_passages, access_presence

__all__ = ["DailyReport", "DoorDay", "daily_report", "day_bounds", "render_text"]


@dataclass(frozen=True, slots=True)
class DoorDay:
    """One door's day: granted passages in and out, and denials."""

    door: str
    entries: int = 0
    exits: int = 0
    denied: int = 0


@dataclass(frozen=True, slots=True)
class DailyReport:
    day: date
    timezone: str
    since: int  # UTC ns, local midnight (inclusive)
    until: int  # UTC ns, the next local midnight (exclusive)
    doors: tuple[DoorDay, ...]
    denials: Mapping[str, int] = field(default_factory=dict)  # reason -> count
    vehicles_inside: Mapping[str, int] = field(default_factory=dict)  # area -> vehicles
    people_inside: Mapping[str, int] = field(default_factory=dict)  # area -> people

    @property
    def entries(self) -> int:
        return sum(d.entries for d in self.doors)

    @property
    def exits(self) -> int:
        return sum(d.exits for d in self.doors)


def day_bounds(day: date, timezone: str) -> tuple[int, int]:
    """UTC ns of local midnight of ``day`` and of the day after."""
    tz = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return from_datetime(start), from_datetime(end)


async def daily_report(
    store: EventStore, cfg: AccessConfig, day: date, timezone: str
) -> DailyReport:
    """The report of ``day`` (local to ``timezone``). Every configured door is
    listed, with zeros when nothing happened; a door no longer configured
    still appears if it has passages that day. Raises
    :class:`~gateway.storage.eventstore.EventStoreUnavailable` when the
    store cannot be reached."""
    since, until = day_bounds(day, timezone)
    p = access_passages
    counts = (
        select(p.c.door, p.c.direction, p.c.granted, p.c.reason, func.count())
        .where(p.c.ts >= since, p.c.ts < until)
        .group_by(p.c.door, p.c.direction, p.c.granted, p.c.reason)
    )
    pr, cr = access_presence, access_credentials
    inside = (
        select(pr.c.area, cr.c.kind, func.count())
        .select_from(pr.join(cr, cr.c.id == pr.c.credential_id))
        .where(pr.c.area != OUTSIDE)
        .group_by(pr.c.area, cr.c.kind)
    )
    async with store.begin() as conn:
        passage_rows = (await conn.execute(counts)).all()
        inside_rows = (await conn.execute(inside)).all()
    doors: dict[str, dict[str, int]] = {
        d.id: {"entries": 0, "exits": 0, "denied": 0} for d in cfg.doors
    }
    denials: dict[str, int] = {}
    for door, direction, granted, reason, n in passage_rows:
        row = doors.setdefault(door, {"entries": 0, "exits": 0, "denied": 0})
        if granted:
            row["entries" if direction == "in" else "exits"] += n
        else:
            row["denied"] += n
            denials[reason] = denials.get(reason, 0) + n
    vehicles: dict[str, int] = {}
    people: dict[str, int] = {}
    for area, kind, n in inside_rows:
        target = vehicles if kind == "vehicle" else people
        target[area] = target.get(area, 0) + n
    return DailyReport(
        day=day,
        timezone=timezone,
        since=since,
        until=until,
        doors=tuple(DoorDay(door, **c) for door, c in doors.items()),
        denials=dict(sorted(denials.items(), key=lambda kv: (-kv[1], kv[0]))),
        vehicles_inside=dict(sorted(vehicles.items())),
        people_inside=dict(sorted(people.items())),
    )


def render_text(report: DailyReport, locale: str = "en") -> str:
    """The report as plain text, headings and reasons in ``locale``."""

    def h(key: str, **fields: object) -> str:
        return t(f"access.report.{key}", locale, **fields)

    lines = [h("title", day=report.day.isoformat(), timezone=report.timezone), ""]
    lines.append(f"{h('door')}\t{h('entries')}\t{h('exits')}\t{h('denied')}")
    for d in report.doors:
        lines.append(f"{d.door}\t{d.entries}\t{d.exits}\t{d.denied}")
    lines.append(f"{h('total')}\t{report.entries}\t{report.exits}\t{sum(report.denials.values())}")
    lines += ["", h("denials")]
    if not report.denials:
        lines.append(h("none"))
    for reason, n in report.denials.items():
        lines.append(f"{t(f'access.reason.{reason}', locale)}\t{n}")
    for key, counts in (
        ("vehicles_inside", report.vehicles_inside),
        ("people_inside", report.people_inside),
    ):
        lines += ["", h(key)]
        if not counts:
            lines.append(h("none"))
        for area, n in counts.items():
            lines.append(f"{area}\t{n}")
    return "\n".join(lines) + "\n"
