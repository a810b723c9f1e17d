"""The gateway's health: drivers, devices, the time-series sink and its outbox,
the event store, the bus queues and the alarm counts, with one verdict.

``degraded`` means data is being lost or delayed somewhere (a driver crashed
or gave up, the sink is down, the outbox holds a backlog, the event store
cannot be reached). A device offline is not degradation of the gateway: it
is an alarm, and it shows in ``devices``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import text

from gateway import __version__
from gateway.api.context import ApiContext
from gateway.api.deps import AUTH_RESPONSES, get_ctx, require_role
from gateway.api.principal import Principal
from gateway.api.schemas.health import (
    AlarmCountsOut,
    DeviceStateOut,
    DriverStateOut,
    HealthOut,
    QueueOut,
    SinkOut,
)
from gateway.health import DriverState
from gateway.model import to_datetime
from gateway.storage.eventstore import EventStoreError

__all__ = ["BACKLOG_BATCHES", "STORE_PROBE_TIMEOUT_S", "router"]

router = APIRouter(tags=["health"], responses=AUTH_RESPONSES)

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Viewer = Annotated[Principal, Depends(require_role("viewer"))]

# More than this many full batches waiting in the outbox is a backlog (a
# healthy writer keeps about one there between flushes).
BACKLOG_BATCHES = 2
# A probe of the event store that takes longer than this counts as down.
STORE_PROBE_TIMEOUT_S = 3.0
_FAILING = (DriverState.BACKOFF.value, DriverState.FAILED.value)


async def _event_store_up(ctx: ApiContext) -> bool:
    if ctx.alerting.manager.store_down:
        return False
    try:
        async with asyncio.timeout(STORE_PROBE_TIMEOUT_S), ctx.store.begin() as conn:
            await conn.execute(text("SELECT 1"))
    except (EventStoreError, TimeoutError):
        return False
    return True


def _devices(snapshot: dict[str, Any]) -> dict[str, DeviceStateOut]:
    return {
        k: DeviceStateOut(
            online=bool(v["online"]),
            reason=str(v["reason"]),
            since=to_datetime(int(v["since"])) if v["since"] else None,
        )
        for k, v in snapshot.items()
    }


@router.get("/health", response_model=HealthOut, summary="Drivers, devices, storage and queues")
async def health(ctx: Ctx, _: Viewer) -> HealthOut:
    snap = ctx.health.snapshot()
    reasons = [f"driver:{k}" for k, v in snap["drivers"].items() if v["state"] in _FAILING]
    stats = ctx.writer_stats()
    sink: SinkOut | None = None
    if stats is not None:
        ts_cfg = ctx.site.config.storage.timeseries
        # The sender says up only after its first delivery: before that (nothing
        # to send yet) the sink is not known to be down.
        down = not stats.sink_up and stats.retries > 0
        sink = SinkOut(
            type=ts_cfg.sink.type,
            up=True if stats.sink_up else (False if down else None),
            pending=stats.pending_points,
            written=stats.written,
            retries=stats.retries,
            quarantined=stats.quarantined,
            dropped=stats.dropped,
            last_error=stats.last_error,
        )
        if down:
            reasons.append("sink_down")
        if stats.pending_points > BACKLOG_BATCHES * ts_cfg.batch_size:
            reasons.append("outbox_backlog")
    store_up = await _event_store_up(ctx)
    if not store_up:
        reasons.append("event_store_down")
    records = ctx.alerting.manager.records()
    now = ctx.clock.time_ns()
    return HealthOut(
        status="degraded" if reasons else "ok",
        reasons=reasons,
        version=__version__,
        uptime_s=round(max(0, now - ctx.started_ns) / 1e9, 3),
        drivers={
            k: DriverStateOut(
                state=str(v["state"]), restarts=int(v["restarts"]), last_error=str(v["last_error"])
            )
            for k, v in snap["drivers"].items()
        },
        devices=_devices(snap["devices"]),
        sink=sink,
        event_store_up=store_up,
        queues=[
            QueueOut(
                name=q.name,
                depth=q.depth,
                high_water=q.high_water,
                maxsize=q.maxsize,
                delivered=q.delivered,
                coalesced=q.coalesced,
                blocked_publishes=q.blocked_publishes,
            )
            for q in ctx.bus.stats()
        ],
        alarms=AlarmCountsOut(
            active=sum(1 for r in records if r.active),
            unacked=sum(1 for r in records if not r.acked),
        ),
    )
