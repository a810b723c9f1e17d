"""Access control for the control room: passages, the daily report, who is
inside, visitor passes, doors (credentials: :mod:`.access_credentials`).

Every call that changes something writes exactly one audit record (``ok``,
``failed``, ``error``; a caller below the route's role is refused and
audited by :func:`require_role`). Neither card UIDs nor visitor tokens go
into the audit trail: it names the credential and what changed.

The reads (passages, report, presence, doors) need only the event store;
what changes credentials goes through the running access service, whose
in-memory index decides the next card read (503 when it does not run).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import AwareDatetime
from sqlalchemy import select

from gateway.access.config import OUTSIDE
from gateway.access.credentials import CredentialError
from gateway.access.passages import PassageLog
from gateway.api.audit import Outcome
from gateway.api.context import ApiContext
from gateway.api.deps import AUTH_RESPONSES, BAD_BODY, client_address, get_ctx, require_role
from gateway.api.principal import Principal
from gateway.api.schemas.access import (
    DoorOut,
    DoorStateOut,
    PassagePageOut,
    PresenceOut,
    ReaderOut,
    ReportOut,
    VisitorIn,
    VisitorPassOut,
    credential_out,
    passage_out,
    report_out,
)
from gateway.model import from_datetime, to_datetime
from gateway.storage.eventstore import EventStoreError
from gateway.storage.tables import access_credentials, access_presence

if TYPE_CHECKING:
    from gateway.access.credentials import CredentialStore
    from gateway.access.service import AccessService

__all__ = [
    "DOWN",
    "MAX_PAGE",
    "OFF",
    "READ",
    "AuditCall",
    "access_service",
    "credential_store",
    "ns",
    "router",
]

router = APIRouter(prefix="/access", tags=["access"])

MAX_PAGE = 500
_INT64_MAX = 2**63 - 1

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Guard = Annotated[Principal, Depends(require_role("guard"))]
Supervisor = Annotated[Principal, Depends(require_role("supervisor"))]

DOWN: dict[int | str, dict[str, str]] = {503: {"description": "The event store is unavailable."}}
READ = {**AUTH_RESPONSES, **DOWN}
OFF: dict[int | str, dict[str, str]] = {
    404: {"description": "Access control is not configured on this site (no doors)."}
}


def access_service(ctx: ApiContext) -> AccessService:
    """The running access service, or 404 (a site without doors runs none)."""
    if ctx.access is None:
        raise HTTPException(
            404, "access control is not configured on this site (access.doors is empty or "
            "access.enabled is false)",
        )  # fmt: skip
    return ctx.access


def credential_store(ctx: ApiContext) -> CredentialStore:
    """The service's credentials (loaded before the API starts), or 404."""
    store = access_service(ctx).credentials
    if store is None:
        raise HTTPException(404, "access control has not loaded its credentials")
    return store


def ns(dt: datetime | None) -> int | None:
    """UTC ns, clamped to what the store holds (int64)."""
    if dt is None:
        return None
    return max(-_INT64_MAX - 1, min(_INT64_MAX, from_datetime(dt)))


class AuditCall:
    """One audit record per state-changing call, with the caller's address."""

    def __init__(self, ctx: ApiContext, request: Request, who: Principal, action: str) -> None:
        self.ctx, self.who, self.action = ctx, who, action
        self.client = client_address(request)

    async def __call__(self, target: str, outcome: Outcome, **detail: Any) -> None:
        await self.ctx.audit.record(self.who, self.action, target, outcome, self.client, detail)

    async def store_down(self, target: str, e: EventStoreError, **detail: Any) -> HTTPException:
        """Audit the failure ("error"); the 503 to raise."""
        await self(target, "error", error=str(e), **detail)
        return HTTPException(503, f"the event store is unavailable: {e}")


# -- passages, report, presence --------------------------------------------------------------


@router.get(
    "/passages",
    response_model=PassagePageOut,
    responses=READ,
    summary="Passages and denials at the doors, newest first (guard and above)",
)
async def list_passages(
    principal: Guard,
    ctx: Ctx,
    door: Annotated[str | None, Query(max_length=255, description="Only this door.")] = None,
    credential: Annotated[
        str | None, Query(max_length=64, description="Only this credential id.")
    ] = None,
    granted: Annotated[bool | None, Query(description="Only grants, or only denials.")] = None,
    reason: Annotated[
        str | None, Query(max_length=32, description="Only this reason (expired, unknown ...).")
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="At or after (ISO, zone).")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Before (ISO, zone).")] = None,
    before_id: Annotated[
        int | None,
        Query(ge=1, le=_INT64_MAX, description="Only ids below this: next_before_id of a page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> PassagePageOut:
    rows = await PassageLog(ctx.store).query(
        door=door,
        credential_id=credential,
        granted=granted,
        reason=reason,
        since=ns(since),
        until=ns(until),
        before_id=before_id,
        limit=limit + 1,  # one more tells whether an older page exists
    )
    page = rows[:limit]
    return PassagePageOut(
        items=[passage_out(p, principal.role) for p in page],
        next_before_id=page[-1].id if len(rows) > limit else None,
    )


@router.get(
    "/report",
    response_model=ReportOut,
    responses={**READ, 422: {"description": "Not a day (YYYY-MM-DD, years 1970 to 2200)."}},
    summary="The daily report: entries and exits per door, denials, who is inside",
)
async def report(
    _: Guard,
    ctx: Ctx,
    day: Annotated[
        date | None, Query(description="YYYY-MM-DD in the site's time zone (default: today).")
    ] = None,
) -> ReportOut:
    from gateway.access.report import daily_report

    tz = ctx.site.config.site.timezone
    if day is None:
        day = datetime.fromtimestamp(ctx.clock.time_ns() / 1e9, ZoneInfo(tz)).date()
    if not 1970 <= day.year <= 2200:
        raise HTTPException(422, f"no passages on {day}: ask for a day from 1970 to 2200")
    rep = await daily_report(ctx.store, ctx.site.config.access, day, tz)
    return report_out(rep)


@router.get(
    "/presence",
    response_model=list[PresenceOut],
    responses=READ,
    summary="Who is inside, by area (supervisor and above)",
)
async def presence(
    _: Supervisor,
    ctx: Ctx,
    area: Annotated[str | None, Query(max_length=64, description="Only this area.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[PresenceOut]:
    p, c = access_presence, access_credentials
    stmt = (
        select(p, c.c.holder, c.c.kind)
        .select_from(p.outerjoin(c, c.c.id == p.c.credential_id))
        .where(p.c.area != OUTSIDE)
        .order_by(p.c.area, p.c.ts.desc(), p.c.credential_id)
        .limit(limit)
    )
    if area is not None:
        stmt = stmt.where(p.c.area == area)
    async with ctx.store.begin() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        PresenceOut(
            credential_id=r.credential_id,
            holder=r.holder,
            kind=r.kind,
            area=r.area,
            door=r.door,
            since=to_datetime(int(r.ts)),
        )
        for r in rows
    ]


# -- visitors and doors ----------------------------------------------------------------------


@router.post(
    "/visitors",
    name="visitor.issue",
    status_code=201,
    response_model=VisitorPassOut,
    responses={**BAD_BODY, **READ, **OFF, 422: {"description": "Invalid body."}},
    summary="Issue a visitor pass: its QR code is in this answer only (guard and above)",
)
async def issue_visitor_pass(
    body: VisitorIn, request: Request, principal: Guard, ctx: Ctx
) -> VisitorPassOut:
    """The token (the QR code's text) and the SVG are not stored: there is no
    later download of the code. The pass is a ``visitor`` credential of the
    site's visitor group, valid for ``hours`` from now."""
    from gateway.access.visitors import issue_pass, qr_svg

    audit = AuditCall(ctx, request, principal, "visitor.issue")
    store = credential_store(ctx)
    cfg = ctx.site.config.access
    hours = body.hours if body.hours is not None else cfg.visitors.default_hours
    detail = {"holder": body.holder, "host": body.host, "hours": hours, "uses": body.uses}
    try:
        cred, token = await issue_pass(
            store, cfg, ctx.clock, holder=body.holder, host=body.host, hours=hours,
            uses=body.uses,
        )  # fmt: skip
    except CredentialError as e:  # a name the table cannot hold
        await audit("", "failed", reason=str(e), **detail)
        raise HTTPException(422, str(e)) from e
    except EventStoreError as e:
        raise await audit.store_down("", e, **detail) from e
    await audit(cred.id, "ok", **detail)
    return VisitorPassOut(
        credential=credential_out(cred, principal.role), token=token, qr_svg=qr_svg(token)
    )


@router.get(
    "/doors",
    response_model=list[DoorOut],
    responses=READ,
    summary="The doors, gates and barriers, with their live state",
)
async def doors(_: Viewer, ctx: Ctx) -> list[DoorOut]:
    devices = ctx.site.config.device_map()
    out: list[DoorOut] = []
    for d in ctx.site.config.access.doors:
        dev = devices.get(d.id)
        out.append(
            DoorOut(
                id=d.id,
                name=(dev.name if dev is not None else "") or d.id,
                location=dev.location if dev is not None else "",
                kind=str(dev.kind) if dev is not None else "door",
                mode=d.mode,
                area=d.area,
                from_area=d.from_area,
                vehicle=d.vehicle,
                readers=[ReaderOut(device=r.device, direction=r.direction) for r in d.readers],
                state=_door_state(ctx, d.id),
            )
        )
    return out


def _door_state(ctx: ApiContext, door_id: str) -> DoorStateOut | None:
    """The contact as the door's supervisor last saw it; forced and held as the
    alarms of the default access rules say (they clear on ``door.closed``)."""
    svc = ctx.access
    sup = svc.supervisors.get(door_id) if svc is not None else None
    if sup is None:
        return None

    def active(rule: str) -> bool:
        rec = ctx.alerting.manager.get(f"{rule}@{door_id}")
        return rec is not None and rec.active

    return DoorStateOut(
        open=sup.is_open,
        forced=active("access-door-forced"),
        held=active("access-door-held") or active("access-door-held-prealarm"),
    )
