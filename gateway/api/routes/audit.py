"""The audit trail, newest first, paged by id (supervisor and admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import AwareDatetime, BeforeValidator

from gateway.api.audit import MAX_LIMIT
from gateway.api.context import ApiContext
from gateway.api.deps import AUTH_RESPONSES, get_ctx, require_role
from gateway.api.principal import Principal
from gateway.api.schemas.audit import AuditOut, AuditPage
from gateway.model import from_datetime

__all__ = ["router"]

router = APIRouter(tags=["audit"])

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Supervisor = Annotated[Principal, Depends(require_role("supervisor"))]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _iso_only(value: object) -> object:
    # pydantic would take "1700000000" as a Unix time; the API speaks ISO 8601 only.
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("an ISO 8601 time with a zone, like 2026-11-21T08:00:00Z")
    return value


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_only)]


def _ns(dt: datetime | None, name: str) -> int | None:
    if dt is None:
        return None
    try:
        ns = from_datetime(dt)
    except ValueError as e:  # naive: no time zone
        raise HTTPException(422, f"{name}: {e}") from e
    # Years 1 or 9999 are valid ISO dates but beyond int64 ns: clamp, they mean "any".
    return min(max(ns, _INT64_MIN), _INT64_MAX)


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="Who did what, when, from where: newest first",
    responses={
        **AUTH_RESPONSES,
        422: {"description": "Bad filter (a time without a zone, a limit out of range)."},
        503: {"description": "The event store is unavailable."},
    },
)
async def query_audit(
    _: Supervisor,
    ctx: Ctx,
    username: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="Exact, or a prefix ending in '*'.")
    ] = None,
    since: Annotated[
        IsoTime | None, Query(description="From this time on (ISO 8601, with zone).")
    ] = None,
    until: Annotated[
        IsoTime | None, Query(description="Before this time (ISO 8601, with zone).")
    ] = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Older than this record id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> AuditPage:
    records = await ctx.audit.query(
        username=username,
        action=action,
        since=_ns(since, "since"),
        until=_ns(until, "until"),
        before_id=before_id,
        limit=limit,
    )
    items = [AuditOut.of(r) for r in records]
    return AuditPage(items=items, next_before_id=items[-1].id if len(items) == limit else None)
