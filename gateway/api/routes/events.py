"""The event log: newest first, paged backwards by id, masked by role.

Paging by id (not by time or offset) is stable while new events arrive: the
next page starts below the smallest id already shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from gateway.api.context import ApiContext
from gateway.api.deps import AUTH_RESPONSES, get_ctx, require_role
from gateway.api.principal import Principal
from gateway.api.schemas.events import EventPageOut, event_out
from gateway.model import from_datetime

__all__ = ["MAX_PAGE", "router", "split_types"]

router = APIRouter(tags=["events"])

MAX_PAGE = 500
_INT64_MAX = 2**63 - 1

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Viewer = Annotated[Principal, Depends(require_role("viewer"))]
AwareDatetimeQ = AwareDatetime | None


def split_types(types: list[str]) -> tuple[list[str], list[str]]:
    """``["access.denied", "alarm.*"]`` -> exact types and prefixes (``"alarm."``).

    A lone ``*`` is the empty prefix: every type.
    """
    exact = [t for t in types if not t.endswith("*")]
    prefixes = [t[:-1] for t in types if t.endswith("*")]
    return exact, prefixes


def _ns(dt: datetime | None) -> int | None:
    """UTC ns, clamped to what the store holds (int64: the years 1677..2262);
    a bound beyond that range filters as if at its edge."""
    if dt is None:
        return None
    return max(-_INT64_MAX - 1, min(_INT64_MAX, from_datetime(dt)))


@router.get(
    "/events",
    response_model=EventPageOut,
    responses={**AUTH_RESPONSES, 503: {"description": "The event store is unavailable."}},
    summary="Stored events, newest first",
)
async def list_events(
    principal: Viewer,
    ctx: Ctx,
    type: Annotated[
        list[str] | None,
        Query(description="Any of these types; 'alarm.*' matches every type starting 'alarm.'."),
    ] = None,
    source: Annotated[str | None, Query(description="Only events of this source.")] = None,
    since: Annotated[AwareDatetimeQ, Query(description="At or after (ISO, with zone).")] = None,
    until: Annotated[AwareDatetimeQ, Query(description="Before (ISO, with zone).")] = None,
    before_id: Annotated[
        int | None,
        Query(ge=1, le=_INT64_MAX, description="Only ids below this: next_before_id of a page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> EventPageOut:
    exact: list[str] | None = None
    prefixes: list[str] | None = None
    if type:
        exact, prefixes = split_types(type)
    rows = await ctx.store.query(
        exact,
        source=source,
        since=_ns(since),
        until=_ns(until),
        limit=limit + 1,  # one more tells whether an older page exists
        type_prefixes=prefixes,
        before_id=before_id,
        descending=True,
    )
    page = rows[:limit]
    return EventPageOut(
        items=[event_out(s.id, s.event, principal.role) for s in page],
        next_before_id=page[-1].id if len(rows) > limit else None,
    )
