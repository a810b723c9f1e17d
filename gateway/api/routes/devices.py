"""Devices and points: latest values with quality and age, and history.

The points are the site's (every driver's points with ``devices[].points``
applied, and the points the site file declares); a point a wildcard driver
learns at run time (``meters.*``) is listed once a reading of it arrived.
Latest values come from the live hub (the newest reading per point on the
bus); right after a restart, before a point's first reading, from the
embedded store when there is one. History comes from the embedded store
only: with another sink the gateway cannot read its history back (409).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError

from gateway.api.context import ApiContext
from gateway.api.deps import AUTH_RESPONSES, get_ctx, require_role
from gateway.api.points import PointMeta
from gateway.api.principal import Principal
from gateway.api.schemas.devices import DeviceOut, HistoryOut, HistoryRowOut, PointOut
from gateway.config.site import DeviceConfig
from gateway.config.storage import EmbeddedSinkConfig
from gateway.model import Reading, from_datetime
from gateway.storage.embedded_query import MAX_TS, MIN_TS, bucket_minutes

__all__ = ["router"]

router = APIRouter(tags=["devices"], responses=AUTH_RESPONSES)

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Viewer = Annotated[Principal, Depends(require_role("viewer"))]

_S = 1_000_000_000
_DAY_NS = 86_400 * _S
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_RANGE = timedelta(hours=1)
DEFAULT_MAX_POINTS = 500
MAX_POINTS = 10_000


def _catalog(ctx: ApiContext) -> dict[str, PointMeta]:
    """Every point the API knows, by full name, in site order."""
    return ctx.points.listing(ctx.hub.latest)


def _exact(ns: int) -> datetime:
    """``ns`` as a UTC datetime, floored to the microsecond (``to_datetime`` goes
    through a float and can land a microsecond off, which breaks a client that
    asks for history since the last timestamp it saw)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _ts(ns: int) -> datetime | None:
    try:
        return _exact(ns)
    except OverflowError:
        return None  # a driver's nonsense timestamp must not break the listing


async def _latest(ctx: ApiContext, points: list[str]) -> dict[str, Reading]:
    """The newest reading of each point: live, else (cold start) the embedded store's."""
    live = ctx.hub.latest
    found = {p: live[p] for p in points if p in live}
    missing = [p for p in points if p not in found]
    if missing and ctx.history is not None:
        stored = await ctx.history.latest(missing)
        found.update({p: r for p, r in stored.items() if p in missing})
    return found


def _point_out(p: PointMeta, reading: Reading | None, now: int) -> PointOut:
    if reading is None:
        return PointOut(
            point=p.point,
            device=p.device,
            name=p.name,
            unit=p.unit,
            description=p.description,
            value=None,
            quality=None,
            ts=None,
            age_s=None,
        )
    value = reading.value
    if isinstance(value, float) and not math.isfinite(value):
        value_out: bool | int | float | str | None = None
    else:
        value_out = value
    return PointOut(
        point=p.point,
        device=p.device,
        name=p.name,
        unit=p.unit,
        description=p.description,
        value=value_out,
        quality=reading.quality.value,
        ts=_ts(reading.ts),
        age_s=round((now - reading.ts) / _S, 3),
    )


async def _points_out(ctx: ApiContext, points: list[PointMeta]) -> list[PointOut]:
    latest = await _latest(ctx, [p.point for p in points])
    now = ctx.clock.time_ns()
    return [_point_out(p, latest.get(p.point), now) for p in points]


async def _devices_out(ctx: ApiContext, devices: list[DeviceConfig]) -> list[DeviceOut]:
    """The devices with their points: one look-up of states and values for all."""
    wanted = {d.id for d in devices}
    points = [p for p in _catalog(ctx).values() if p.device in wanted]
    latest = await _latest(ctx, [p.point for p in points])
    states = ctx.health.snapshot()["devices"]
    maintenance = ctx.alerting.manager.maintenance
    now = ctx.clock.time_ns()
    out: list[DeviceOut] = []
    for dev in devices:
        state = states.get(dev.id)
        out.append(
            DeviceOut(
                id=dev.id,
                name=dev.name or dev.id,
                kind=dev.kind.value,
                location=dev.location,
                online=None if state is None else bool(state["online"]),
                offline_reason="" if state is None else str(state["reason"]),
                since=None if state is None else _ts(int(state["since"])),
                maintenance=dev.id in maintenance,
                points=[
                    _point_out(p, latest.get(p.point), now) for p in points if p.device == dev.id
                ],
            )
        )
    return out


@router.get("/devices", response_model=list[DeviceOut], summary="Every device with its points")
async def list_devices(ctx: Ctx, _: Viewer) -> list[DeviceOut]:
    return await _devices_out(ctx, list(ctx.site.config.devices))


@router.get(
    "/devices/{device_id}",
    response_model=DeviceOut,
    summary="One device with its points",
    responses={404: {"description": "Unknown device."}},
)
async def get_device(
    device_id: str,
    ctx: Ctx,
    _: Viewer,
) -> DeviceOut:
    dev = ctx.site.config.device_map().get(device_id)
    if dev is None:
        raise HTTPException(404, f"unknown device {device_id!r}")
    (out,) = await _devices_out(ctx, [dev])
    return out


@router.get("/points", response_model=list[PointOut], summary="Points with their latest values")
async def list_points(
    ctx: Ctx,
    _: Viewer,
    device: Annotated[str | None, Query(description="Only this device's points.")] = None,
    match: Annotated[
        str | None,
        Query(description="Only points whose full name matches this glob ('tx*.winding_*')."),
    ] = None,
) -> list[PointOut]:
    points = [
        p
        for p in _catalog(ctx).values()
        if (device is None or p.device == device) and (match is None or fnmatchcase(p.point, match))
    ]
    return await _points_out(ctx, points)


def _invalid(field: str, value: object, msg: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own, so the OpenAPI's 422 schema holds."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": msg, "input": str(value)}]
    )


def _ns(field: str, dt: datetime) -> int:
    if dt.tzinfo is None:
        raise _invalid(field, dt, "needs a time zone, e.g. 2026-11-21T08:00:00Z")
    ns = from_datetime(dt)
    if not MIN_TS <= ns <= MAX_TS:
        raise _invalid(field, dt, "is outside the years 1678-2262 the store can hold")
    return ns


@router.get(
    "/points/{point}/history",
    response_model=HistoryOut,
    summary="History of one point, raw or in buckets",
    description=(
        "Numeric history from the embedded store over [since, until) (default: the last "
        "hour), at most max_points rows: raw samples when they fit and lie within raw "
        "retention (resolution_s 0), else 1-minute rollups merged into buckets of "
        "resolution_s seconds (mean, min, max). Text and bad-quality samples are left out."
    ),
    responses={
        404: {"description": "Unknown point."},
        409: {"description": "The time-series sink is not the embedded store: no history here."},
    },
)
async def point_history(
    point: str,
    ctx: Ctx,
    _: Viewer,
    since: Annotated[
        datetime | None, Query(description="Start (inclusive); default until - 1 h.")
    ] = None,
    until: Annotated[datetime | None, Query(description="End (exclusive); default now.")] = None,
    max_points: Annotated[int, Query(ge=1, le=MAX_POINTS)] = DEFAULT_MAX_POINTS,
) -> HistoryOut:
    p = _catalog(ctx).get(point)
    if p is None:
        raise HTTPException(404, f"unknown point {point!r}")
    end = _ns("until", until) if until is not None else ctx.clock.time_ns()
    if since is not None:
        start = _ns("since", since)
    else:
        start = max(MIN_TS, end - int(DEFAULT_RANGE.total_seconds()) * _S)
    if end <= start:
        raise _invalid("until", until, "must be after since")
    sink = ctx.site.config.storage.timeseries.sink
    if ctx.history is None or not isinstance(sink, EmbeddedSinkConfig):
        raise HTTPException(
            409,
            f"no history here: the time-series sink is {sink.type!r}, not the embedded store; "
            "query that database directly",
        )
    if end - start > round(sink.rollup_retention_days * _DAY_NS):
        raise _invalid(
            "since",
            since,
            f"the range is longer than the store keeps ({sink.rollup_retention_days:g} days)",
        )
    rows = await ctx.history.history(point, start, end, max_points)
    raw_since = ctx.clock.time_ns() - round(sink.raw_retention_days * _DAY_NS)
    # The store answers raw samples (each of count 1) only for a range within raw
    # retention that holds at most max_points of them; else buckets, and then more
    # samples than rows, so some bucket counts more than one.
    raw = start >= raw_since and all(r.count == 1 for r in rows)
    resolution_s = 0 if raw else bucket_minutes(start, end, max_points)[0] * 60
    return HistoryOut(
        point=point,
        unit=p.unit,
        since=_exact(start),
        until=_exact(end),
        resolution_s=resolution_s,
        rows=[
            HistoryRowOut(
                ts=_exact(r.ts),
                value=_finite(r.value_or_mean),
                min=_finite(r.min),
                max=_finite(r.max),
            )
            for r in rows
        ],
    )


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
