"""Alarms: the board (list, one alarm, its history) and the operator actions.

Every action goes through :meth:`AlarmManager.handle_command` as a bus
command would, so the manager's role table decides (a guard may not shelve a
fire alarm) and a refusal is stored as ``alarm.command_refused`` there. This
module adds the HTTP answer and exactly one audit record per call: ``ok``,
``denied`` (a role refused), ``failed`` (unknown alarm, wrong state, bad
argument) or ``error`` (the event store is down). Callers below the route's
minimum role are refused (and audited) by :func:`require_role` before this.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import AwareDatetime

from gateway.alarms import (
    ActionNotAllowed,
    AlarmActionError,
    AlarmNotFound,
    AlarmStoreUnavailable,
    InvalidAction,
)
from gateway.alarms.commands import COMMAND_REFUSED
from gateway.alarms.lifecycle import PRIORITY_RANK
from gateway.api.audit import Outcome
from gateway.api.context import ApiContext
from gateway.api.deps import AUTH_RESPONSES, client_address, get_ctx, require_role
from gateway.api.principal import Principal
from gateway.api.schemas.alarms import (
    AcknowledgeIn,
    AlarmListOut,
    AlarmOut,
    FloodOut,
    MaintenanceIn,
    MaintenanceOut,
    NoteIn,
    OptionalNoteIn,
    ReasonIn,
    ShelveIn,
    alarm_from_message,
    alarm_from_record,
)
from gateway.api.schemas.events import EventOut, event_out
from gateway.model import Alarm, AlarmState, Command, Priority, from_datetime, to_datetime
from gateway.storage.eventstore import EventStoreError

__all__ = ["ROLE_REFUSALS", "refusal_status", "router"]

router = APIRouter(tags=["alarms"])

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Guard = Annotated[Principal, Depends(require_role("guard"))]
Engineer = Annotated[Principal, Depends(require_role("engineer"))]

# The keys of ActionNotAllowed that mean "this role may not" (403); every other
# ActionNotAllowed means "not in the alarm's present state" (409).
ROLE_REFUSALS = frozenset(
    {"alarms.error.role", "alarms.error.role_scope", "alarms.error.unknown_role"}
)
_HISTORY_PAGE = 500

_READ = {**AUTH_RESPONSES, 503: {"description": "The event store is unavailable."}}
_ONE = {**_READ, 404: {"description": "No such alarm (it is normal, or never existed)."}}
_ACTION = {
    **_ONE,
    400: {"description": "The body is not valid JSON."},
    403: {"description": "The role may not do this (to this alarm), or the CSRF header is wrong."},
    409: {"description": "The action does not apply in the alarm's present state."},
    422: {"description": "Invalid body (missing reason, duration out of range ...)."},
}


# -- reading ---------------------------------------------------------------------


@router.get(
    "/alarms",
    response_model=AlarmListOut,
    responses=AUTH_RESPONSES,
    summary="Alarms that are not plainly normal, most urgent first",
)
async def list_alarms(
    _: Viewer,
    ctx: Ctx,
    state: Annotated[list[AlarmState] | None, Query(description="Any of these states.")] = None,
    priority: Annotated[list[Priority] | None, Query(description="Any of these.")] = None,
    category: Annotated[list[str] | None, Query(description="Any of these.")] = None,
    device: Annotated[str | None, Query(description="Only this device's alarms.")] = None,
    since: Annotated[AwareDatetime | None, Query(description="Updated at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Updated before.")] = None,
) -> AlarmListOut:
    manager = ctx.alerting.manager
    since_ns = from_datetime(since) if since is not None else None
    until_ns = from_datetime(until) if until is not None else None
    records = [
        r
        for r in manager.records()
        if (not state or r.state in state)
        and (not priority or r.priority in priority)
        and (not category or r.category in category)
        and (device is None or r.device == device)
        and (since_ns is None or r.updated_ts >= since_ns)
        and (until_ns is None or r.updated_ts < until_ns)
    ]
    records.sort(key=lambda r: (-PRIORITY_RANK[r.priority], -r.updated_ts, r.id))
    floods = []
    for room in ctx.site.config.alarms.control_rooms:
        f = manager.flood(room)
        since_dt = to_datetime(f.since_ns) if f.since_ns is not None else None
        floods.append(FloodOut(control_room=room, active=f.active, since=since_dt, count=f.count))
    return AlarmListOut(items=[alarm_from_record(ctx, r) for r in records], floods=floods)


@router.get("/alarms/{alarm_id}", response_model=AlarmOut, responses=_ONE, summary="One alarm")
async def get_alarm(
    alarm_id: str,
    _: Viewer,
    ctx: Ctx,
) -> AlarmOut:
    rec = ctx.alerting.manager.get(alarm_id)
    if rec is None:
        raise HTTPException(404, f"no alarm {alarm_id}: it is back to normal, or never existed")
    return alarm_from_record(ctx, rec)


@router.get(
    "/alarms/{alarm_id}/history",
    response_model=list[EventOut],
    responses=_ONE,
    summary="The alarm's stored transitions and refused actions, newest first",
)
async def alarm_history(
    alarm_id: str,
    principal: Viewer,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[EventOut]:
    """Also answers for an alarm that is normal again (no longer on the board)."""
    _, at, source = alarm_id.partition("@")
    if not at or not source:
        raise HTTPException(404, f"no alarm {alarm_id}: alarm ids look like '<rule>@<source>'")
    found: list[EventOut] = []
    before: int | None = None
    while len(found) < limit:
        page = await ctx.store.query(
            source=source,
            type_prefixes=["alarm."],
            before_id=before,
            descending=True,
            limit=_HISTORY_PAGE,
        )
        for s in page:
            if _concerns(s.event.type, s.event.data, alarm_id) and len(found) < limit:
                found.append(event_out(s.id, s.event, principal.role))
        if len(page) < _HISTORY_PAGE:
            break
        before = page[-1].id
    if not found and ctx.alerting.manager.get(alarm_id) is None:
        raise HTTPException(404, f"no alarm {alarm_id} and no stored history of it")
    return found


def _concerns(type_: str, data: Mapping[str, Any], alarm_id: str) -> bool:
    key = "alarm" if type_ == COMMAND_REFUSED else "id"
    return data.get(key) == alarm_id


# -- actions ---------------------------------------------------------------------


@router.post(
    "/alarms/{alarm_id}/acknowledge",
    name="alarm.acknowledge",
    response_model=AlarmOut,
    responses=_ACTION,
    summary="Acknowledge (guard and above)",
)
async def acknowledge(
    alarm_id: str,
    body: AcknowledgeIn,
    request: Request,
    principal: Guard,
    ctx: Ctx,
) -> AlarmOut:
    return await _act(ctx, request, principal, alarm_id, "acknowledge", {"note": body.note})


@router.post(
    "/alarms/{alarm_id}/reset",
    name="alarm.reset",
    response_model=AlarmOut,
    responses=_ACTION,
    summary="Release a latched alarm once cleared and acknowledged (engineer and above)",
)
async def reset(
    alarm_id: str,
    body: OptionalNoteIn,
    request: Request,
    principal: Guard,
    ctx: Ctx,
) -> AlarmOut:
    return await _act(ctx, request, principal, alarm_id, "reset", {"note": body.note})


@router.post(
    "/alarms/{alarm_id}/shelve",
    name="alarm.shelve",
    response_model=AlarmOut,
    responses=_ACTION,
    summary="Hide an alarm for a while, with a reason (fire: supervisor and above)",
)
async def shelve(
    alarm_id: str,
    body: ShelveIn,
    request: Request,
    principal: Guard,
    ctx: Ctx,
) -> AlarmOut:
    args = {"reason": body.reason, "duration_min": body.duration_min}
    return await _act(ctx, request, principal, alarm_id, "shelve", args)


@router.post(
    "/alarms/{alarm_id}/unshelve",
    name="alarm.unshelve",
    response_model=AlarmOut,
    responses=_ACTION,
    summary="Show a shelved alarm again",
)
async def unshelve(
    alarm_id: str,
    body: OptionalNoteIn,
    request: Request,
    principal: Guard,
    ctx: Ctx,
) -> AlarmOut:
    return await _act(ctx, request, principal, alarm_id, "unshelve", {"note": body.note})


@router.post(
    "/alarms/{alarm_id}/comment",
    name="alarm.comment",
    response_model=AlarmOut,
    responses=_ACTION,
    summary="Add a note to the alarm's history",
)
async def comment(
    alarm_id: str,
    body: NoteIn,
    request: Request,
    principal: Guard,
    ctx: Ctx,
) -> AlarmOut:
    return await _act(ctx, request, principal, alarm_id, "comment", {"note": body.note})


@router.post(
    "/alarms/{alarm_id}/out-of-service",
    name="alarm.out_of_service",
    response_model=AlarmOut,
    responses=_ACTION,
    summary="Take an alarm out of service (a broken instrument; engineer and above)",
)
async def out_of_service(
    alarm_id: str,
    body: ReasonIn,
    request: Request,
    principal: Guard,
    ctx: Ctx,
) -> AlarmOut:
    return await _act(ctx, request, principal, alarm_id, "out_of_service", {"reason": body.reason})


@router.post(
    "/alarms/{alarm_id}/return-to-service",
    name="alarm.return_to_service",
    response_model=AlarmOut,
    responses=_ACTION,
    summary="Return an alarm to service (engineer and above)",
)
async def return_to_service(
    alarm_id: str,
    body: OptionalNoteIn,
    request: Request,
    principal: Guard,
    ctx: Ctx,
) -> AlarmOut:
    return await _act(ctx, request, principal, alarm_id, "return_to_service", {"note": body.note})


@router.post(
    "/devices/{device_id}/maintenance",
    name="device.maintenance",
    tags=["devices"],
    response_model=MaintenanceOut,
    responses={**_ACTION, 404: {"description": "No such device."}},
    summary="Put a device in maintenance (its alarms suppressed) or take it out",
)
async def maintenance(
    device_id: str,
    body: MaintenanceIn,
    request: Request,
    principal: Engineer,
    ctx: Ctx,
) -> MaintenanceOut:
    client = client_address(request)
    detail: dict[str, Any] = {"on": body.on, "reason": body.reason}
    if device_id not in ctx.site.config.device_map():
        missing = f"no device {device_id} in the site file"
        await ctx.audit.record(
            principal, "device.maintenance", device_id, "failed", client, detail | _why(missing)
        )
        raise HTTPException(404, missing)
    args = {"device": device_id, "on": body.on, "reason": body.reason}
    await _command(ctx, client, principal, "maintenance", device_id, args, detail)
    manager = ctx.alerting.manager
    return MaintenanceOut(
        device=device_id,
        maintenance=device_id in manager.maintenance,
        alarms=[alarm_from_record(ctx, r) for r in manager.records() if r.device == device_id],
    )


async def _act(
    ctx: ApiContext,
    request: Request,
    principal: Principal,
    alarm_id: str,
    action: str,
    args: dict[str, Any],
) -> AlarmOut:
    """Run one alarm action; the alarm as it is afterwards (or 4xx/503)."""
    client = client_address(request)
    alarms = await _command(
        ctx, client, principal, action, alarm_id, {"id": alarm_id, **args}, dict(args)
    )
    rec = ctx.alerting.manager.get(alarm_id)
    if rec is not None:
        return alarm_from_record(ctx, rec)
    # The action made it plainly normal (the manager forgot it): its announcement.
    announced = [a for a in alarms if a.id == alarm_id]
    if not announced:
        raise HTTPException(404, f"no alarm {alarm_id}: it is back to normal")
    return alarm_from_message(ctx, announced[-1])


async def _command(
    ctx: ApiContext,
    client: str,
    principal: Principal,
    action: str,
    target: str,
    args: dict[str, Any],
    detail: dict[str, Any],
) -> tuple[Alarm, ...]:
    """Hand the command to the manager, audit the outcome once, map a refusal."""
    audit_action = "device.maintenance" if action == "maintenance" else f"alarm.{action}"
    cmd = Command(
        target="alarms",
        action=action,
        args=args,
        user=principal.username,
        role=principal.role,
        origin=f"api:{client}",
    )
    try:
        outcome = await ctx.alerting.manager.handle_command(cmd)
    except EventStoreError as e:  # a store failure the manager does not classify
        await ctx.audit.record(principal, audit_action, target, "error", client, detail | _why(e))
        raise HTTPException(503, f"the event store failed: {e}") from e
    if outcome.ok:
        await ctx.audit.record(principal, audit_action, target, "ok", client, detail)
        return outcome.alarms
    error = outcome.error
    assert error is not None  # a refused outcome always carries its error
    status, result = refusal_status(error)
    await ctx.audit.record(principal, audit_action, target, result, client, detail | _why(error))
    raise HTTPException(status, str(error))


def refusal_status(error: AlarmActionError) -> tuple[int, Outcome]:
    """The HTTP status and the audit outcome of a refused action."""
    if isinstance(error, AlarmNotFound):
        return 404, "failed"
    if isinstance(error, ActionNotAllowed):
        return (403, "denied") if error.key in ROLE_REFUSALS else (409, "failed")
    if isinstance(error, InvalidAction):
        return 422, "failed"
    if isinstance(error, AlarmStoreUnavailable):
        return 503, "error"
    return 409, "failed"


def _why(error: object) -> dict[str, str]:
    return {"error": str(error)}
