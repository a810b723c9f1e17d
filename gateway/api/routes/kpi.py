"""EEMUA 191 alarm-system figures over the last N days, from the event store.

The same figures as ``gateway kpi`` on the command line; the control room
reads them to see whether the alarm system is usable (rate, floods, bad
actors, stale alarms, priority distribution).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from gateway.alarms.kpi import compute_kpis
from gateway.api.context import ApiContext
from gateway.api.deps import AUTH_RESPONSES, get_ctx, require_role
from gateway.api.principal import Principal
from gateway.api.schemas.kpi import (
    BadActorOut,
    ChatteringOut,
    KpiOut,
    PriorityShareOut,
    RoomRateOut,
    StaleAlarmOut,
)
from gateway.model import to_datetime

__all__ = ["router"]

router = APIRouter(tags=["kpi"], responses=AUTH_RESPONSES)

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Viewer = Annotated[Principal, Depends(require_role("viewer"))]

_DAY_NS = 86_400 * 1_000_000_000


@router.get(
    "/kpi",
    response_model=KpiOut,
    summary="EEMUA 191 alarm figures over the last days",
    responses={503: {"description": "The event store is unavailable."}},
)
async def kpi(
    ctx: Ctx,
    _: Viewer,
    days: Annotated[int, Query(ge=1, le=366, description="How many days back from now.")] = 7,
) -> KpiOut:
    end = ctx.clock.time_ns()
    start = end - days * _DAY_NS
    f = await compute_kpis(ctx.store, start, end, config=ctx.site.config.alarms)
    return KpiOut(
        since=to_datetime(f.start_ns),
        until=to_datetime(f.end_ns),
        days=days,
        period_s=f.period_s,
        periods=f.periods,
        alarms=f.alarms,
        activations=f.activations,
        rooms=[
            RoomRateOut(
                control_room=r.control_room,
                alarms=r.alarms,
                mean_per_period=r.mean_per_period,
                max_per_period=r.max_per_period,
                flood_periods=r.flood_periods,
                flood_percent=r.flood_percent,
            )
            for r in f.rooms
        ],
        flood_percent=f.flood_percent,
        flood_above=f.flood_above,
        bad_actors=[BadActorOut(rule=b.rule, source=b.source, count=b.count) for b in f.bad_actors],
        chattering=[ChatteringOut(id=c.id, episodes=c.episodes) for c in f.chattering],
        stale=[
            StaleAlarmOut(
                id=s.id,
                rule=s.rule,
                source=s.source,
                active_since=to_datetime(s.active_since_ns),
                hours=s.hours,
            )
            for s in f.stale
        ],
        stale_after_h=f.stale_after_h,
        priorities=[
            PriorityShareOut(
                priority=p.priority.value,
                count=p.count,
                percent=p.percent,
                guide_percent=p.guide_percent,
            )
            for p in f.priorities
        ],
    )
