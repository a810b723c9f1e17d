"""Who is on duty now, per team, and when the next handover is.

The roster is pure (no clock): the route asks it about the gateway clock's
now. Phone numbers are masked for roles that do not call people.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from gateway.api.context import ApiContext
from gateway.api.deps import AUTH_RESPONSES, get_ctx, require_role
from gateway.api.masking import can_see_phone, mask_phone
from gateway.api.principal import Principal
from gateway.api.schemas.oncall import OnCallOut, OnDutyOut, TeamOnCallOut
from gateway.model import to_datetime
from gateway.notify.roster import Person

__all__ = ["router"]

router = APIRouter(tags=["oncall"], responses=AUTH_RESPONSES)

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Viewer = Annotated[Principal, Depends(require_role("viewer"))]


def _person(p: Person, full_phone: bool) -> OnDutyOut:
    phone = p.addresses.get("mobile")
    if phone and not full_phone:
        phone = mask_phone(phone)
    return OnDutyOut(
        id=p.id, name=p.name or p.id, phone=phone or None, certifications=sorted(p.certifications)
    )


@router.get("/oncall", response_model=OnCallOut, summary="Who is on duty now, per team")
async def oncall(ctx: Ctx, principal: Viewer) -> OnCallOut:
    roster = ctx.alerting.roster
    now = ctx.clock.time_ns()
    full_phone = can_see_phone(principal.role)
    teams: list[TeamOnCallOut] = []
    for team in roster.config.teams:
        handover = roster.next_handover(team, now)
        teams.append(
            TeamOnCallOut(
                team=team,
                name=team,
                on_duty=[_person(p, full_phone) for p in roster.on_duty(team, now)],
                next_handover=None if handover is None else to_datetime(handover),
            )
        )
    return OnCallOut(at=to_datetime(now), teams=teams)
