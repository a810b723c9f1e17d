"""EEMUA 191 alarm-system performance figures, computed from the event store.

What is counted: an *alarm* is an activation (``alarm.activated`` or
``alarm.reactivated``) that was annunciated to an operator (not hidden by
shelving, suppression or out-of-service at the time). Rates, floods and the
priority distribution count those. Bad actors and chattering count every
activation, hidden or not: a shelved chattering alarm is exactly the one to
fix. Stale alarms come from the ``alarms`` table (active longer than
``stale_after_h``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.alarms.config import AlarmsConfig
from gateway.alarms.persistence import ACTIVATION_EVENTS, read_rows, scan_events
from gateway.alarms.record import AlarmRecord
from gateway.i18n import t
from gateway.model import Priority
from gateway.storage.eventstore import EventStore

__all__ = [
    "EEMUA_PRIORITY_GUIDE",
    "BadActor",
    "ChatteringAlarm",
    "KpiFigures",
    "PriorityShare",
    "RoomRate",
    "StaleAlarm",
    "compute_kpis",
    "render_text",
]

_S = 1_000_000_000
# EEMUA 191's guide for the share of annunciated alarms per priority (critical
# is the top of its "high" band).
EEMUA_PRIORITY_GUIDE: dict[Priority, float | None] = {
    Priority.CRITICAL: None,
    Priority.HIGH: 5.0,
    Priority.MEDIUM: 15.0,
    Priority.LOW: 80.0,
}


@dataclass(frozen=True, slots=True)
class RoomRate:
    control_room: str
    alarms: int
    mean_per_period: float
    max_per_period: int
    flood_periods: int
    flood_percent: float


@dataclass(frozen=True, slots=True)
class BadActor:
    rule: str
    source: str
    count: int


@dataclass(frozen=True, slots=True)
class ChatteringAlarm:
    id: str
    episodes: int


@dataclass(frozen=True, slots=True)
class StaleAlarm:
    id: str
    rule: str
    source: str
    active_since_ns: int
    hours: float


@dataclass(frozen=True, slots=True)
class PriorityShare:
    priority: Priority
    count: int
    percent: float
    guide_percent: float | None


@dataclass(frozen=True, slots=True)
class KpiFigures:
    start_ns: int
    end_ns: int
    period_s: float
    periods: int  # periods of period_s in [start, end)
    alarms: int  # annunciated activations
    activations: int  # every activation, hidden ones too
    rooms: tuple[RoomRate, ...]
    flood_percent: float  # periods in which any control room was in flood
    flood_above: int
    bad_actors: tuple[BadActor, ...]
    chattering: tuple[ChatteringAlarm, ...]
    stale: tuple[StaleAlarm, ...]
    stale_after_h: float
    priorities: tuple[PriorityShare, ...]


async def compute_kpis(
    store: EventStore,
    start_ns: int,
    end_ns: int,
    *,
    now_ns: int | None = None,
    config: AlarmsConfig | None = None,
    period_s: float = 600.0,
    top: int = 10,
) -> KpiFigures:
    """Figures for ``start_ns <= ts < end_ns``; stale alarms as of ``now_ns``
    (default ``end_ns``). Control rooms, the flood threshold and the stale age
    come from ``config`` (defaults: AlarmsConfig())."""
    if end_ns <= start_ns:
        raise ValueError(f"end ({end_ns}) must be after start ({start_ns})")
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    cfg = config or AlarmsConfig()
    now = end_ns if now_ns is None else now_ns
    period_ns = round(period_s * _S)
    periods = math.ceil((end_ns - start_ns) / period_ns)
    flood_above = cfg.flood.start_above

    per_room: dict[str, Counter[int]] = {room: Counter() for room in cfg.control_rooms}
    actors: Counter[tuple[str, str]] = Counter()
    priorities: Counter[str] = Counter()
    alarms = activations = 0
    for stored in await scan_events(store, ACTIVATION_EVENTS, start_ns, end_ns):
        ev = stored.event
        data = ev.data
        activations += 1
        actors[(str(data.get("rule", "")), ev.source)] += 1
        if not data.get("annunciate"):
            continue
        alarms += 1
        room = str(data.get("control_room", ""))
        per_room.setdefault(room, Counter())[(ev.ts - start_ns) // period_ns] += 1
        priorities[str(data.get("priority", ""))] += 1

    rooms: list[RoomRate] = []
    flooded: set[int] = set()
    order = [*cfg.control_rooms, *sorted(set(per_room) - set(cfg.control_rooms))]
    for room in order:
        counts = per_room[room]
        flood = {p for p, n in counts.items() if n > flood_above}
        flooded |= flood
        total = sum(counts.values())
        rooms.append(
            RoomRate(
                control_room=room,
                alarms=total,
                mean_per_period=total / periods,
                max_per_period=max(counts.values(), default=0),
                flood_periods=len(flood),
                flood_percent=100.0 * len(flood) / periods,
            )
        )

    chatter: Counter[str] = Counter()
    for stored in await scan_events(store, ("alarm.chattering",), start_ns, end_ns):
        if stored.event.data.get("chattering"):
            chatter[str(stored.event.data.get("id", ""))] += 1

    return KpiFigures(
        start_ns=start_ns,
        end_ns=end_ns,
        period_s=period_s,
        periods=periods,
        alarms=alarms,
        activations=activations,
        rooms=tuple(rooms),
        flood_percent=100.0 * len(flooded) / periods,
        flood_above=flood_above,
        bad_actors=tuple(
            BadActor(rule, source, n)
            for (rule, source), n in sorted(actors.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        ),
        chattering=tuple(
            ChatteringAlarm(aid, n)
            for aid, n in sorted(chatter.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        stale=tuple(await _stale(store, now, cfg.stale_after_h)),
        stale_after_h=cfg.stale_after_h,
        priorities=tuple(_shares(priorities, alarms)),
    )


async def _stale(store: EventStore, now: int, after_h: float) -> list[StaleAlarm]:
    limit = now - round(after_h * 3600 * _S)
    out: list[StaleAlarm] = []
    for row in await read_rows(store):
        try:
            rec = AlarmRecord.from_json(row["record"])
        except (ValueError, TypeError):
            continue  # the manager logs unreadable rows when it loads them
        if rec.active and rec.activated_ts <= limit:
            hours = (now - rec.activated_ts) / (3600 * _S)
            out.append(StaleAlarm(rec.id, rec.rule, rec.source, rec.activated_ts, hours))
    return sorted(out, key=lambda s: (s.active_since_ns, s.id))


def _shares(counts: Counter[str], total: int) -> Iterable[PriorityShare]:
    for priority in (Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM, Priority.LOW):
        n = counts.get(priority.value, 0)
        yield PriorityShare(
            priority, n, 100.0 * n / total if total else 0.0, EEMUA_PRIORITY_GUIDE[priority]
        )


def render_text(figures: KpiFigures, locale: str, *, timezone: str = "UTC") -> str:
    """The figures as plain text for the CLI, in ``locale`` (zh-CN or en)."""
    tz = ZoneInfo(timezone)

    def when(ts: int) -> str:
        return datetime.fromtimestamp(ts / _S, tz=tz).strftime("%Y-%m-%d %H:%M")

    f = figures
    lines = [
        t("alarms.kpi.title", locale, start=when(f.start_ns), end=when(f.end_ns), tz=timezone),
        t(
            "alarms.kpi.totals",
            locale,
            periods=f.periods,
            minutes=_num(f.period_s / 60),
            alarms=f.alarms,
            activations=f.activations,
        ),
        t("alarms.kpi.rate_guide", locale),
    ]
    for room in f.rooms:
        lines.append(
            t(
                "alarms.kpi.room",
                locale,
                room=room.control_room,
                alarms=room.alarms,
                mean=f"{room.mean_per_period:.2f}",
                max=room.max_per_period,
                flood_pct=f"{room.flood_percent:.1f}",
            )
        )
    lines.append(t("alarms.kpi.flood", locale, pct=f"{f.flood_percent:.1f}", above=f.flood_above))
    lines.append(t("alarms.kpi.bad_actors", locale, n=len(f.bad_actors)))
    lines.extend(
        t("alarms.kpi.bad_actor", locale, rank=i, rule=b.rule, source=b.source, count=b.count)
        for i, b in enumerate(f.bad_actors, 1)
    )
    if not f.bad_actors:
        lines.append(t("alarms.kpi.none", locale))
    lines.append(t("alarms.kpi.chattering", locale, n=len(f.chattering)))
    lines.extend(
        t("alarms.kpi.chattering_item", locale, id=c.id, episodes=c.episodes) for c in f.chattering
    )
    lines.append(t("alarms.kpi.stale", locale, n=len(f.stale), hours=_num(f.stale_after_h)))
    lines.extend(
        t(
            "alarms.kpi.stale_item",
            locale,
            id=s.id,
            since=when(s.active_since_ns),
            hours=f"{s.hours:.1f}",
        )
        for s in f.stale
    )
    lines.append(t("alarms.kpi.priorities", locale))
    for share in f.priorities:
        guide = (
            t("alarms.kpi.guide", locale, pct=_num(share.guide_percent))
            if share.guide_percent is not None
            else ""
        )
        lines.append(
            t(
                "alarms.kpi.priority",
                locale,
                priority=t(f"alarms.priority.{share.priority.value}", locale),
                count=share.count,
                pct=f"{share.percent:.1f}",
                guide=guide,
            )
        )
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:g}"
