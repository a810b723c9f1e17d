"""Users of the control room (admin only): list, create, change, disable.

Disabling a user or setting a new password ends the user's sessions at
once; a role change applies to open sessions on their next request. The
last enabled admin cannot be demoted or disabled (409): nobody could undo it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request

from gateway.api.audit import Outcome
from gateway.api.auth.passwords import PasswordPolicyError
from gateway.api.auth.sessions import SessionStore
from gateway.api.auth.users import InvalidUser, LastAdmin, UserExists, UserNotFound
from gateway.api.context import ApiContext
from gateway.api.deps import (
    AUTH_RESPONSES,
    BAD_BODY,
    STORE_DOWN,
    client_address,
    get_ctx,
    require_role,
)
from gateway.api.principal import Principal
from gateway.api.schemas.users import UserCreate, UserOut, UserPatch
from gateway.storage.eventstore import EventStoreError

__all__ = ["router"]

router = APIRouter(prefix="/users", tags=["users"])

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Admin = Annotated[Principal, Depends(require_role("admin"))]


@router.get(
    "",
    response_model=list[UserOut],
    summary="Every user, by username",
    responses={**AUTH_RESPONSES, **STORE_DOWN},
)
async def list_users(_: Admin, ctx: Ctx) -> list[UserOut]:
    return [UserOut.of(u) for u in await ctx.auth.users.list_users()]


@router.post(
    "",
    name="user.create",
    status_code=201,
    response_model=UserOut,
    summary="Create a user",
    responses={
        **BAD_BODY,
        **AUTH_RESPONSES,
        409: {"description": "A user of that name exists already."},
        422: {"description": "Bad username, role, locale or password."},
        **STORE_DOWN,
    },
)
async def create_user(body: UserCreate, request: Request, admin: Admin, ctx: Ctx) -> UserOut:
    client = client_address(request)

    async def audit(outcome: Outcome, reason: str = "") -> None:
        detail: dict[str, Any] = {"role": body.role}
        if reason:
            detail["reason"] = reason
        await ctx.audit.record(admin, "user.create", body.username, outcome, client, detail)

    try:
        user = await ctx.auth.users.create_user(
            body.username, body.password, body.role, body.display_name, body.locale
        )
    except UserExists as e:
        await audit("failed", "exists")
        raise HTTPException(409, str(e)) from e
    except (InvalidUser, PasswordPolicyError) as e:
        await audit("failed", str(e))
        raise HTTPException(422, str(e)) from e
    except EventStoreError as e:
        await audit("error")
        raise HTTPException(503, f"the event store is unavailable: {e}") from e
    await audit("ok")
    return UserOut.of(user)


@router.patch(
    "/{username}",
    name="user.update",
    response_model=UserOut,
    summary="Change a user's name, role, password, language or disabled flag",
    responses={
        **BAD_BODY,
        **AUTH_RESPONSES,
        404: {"description": "No such user."},
        409: {"description": "It would demote or disable the last enabled admin."},
        422: {"description": "Bad role, locale or password."},
        **STORE_DOWN,
    },
)
async def update_user(
    username: str, body: UserPatch, request: Request, admin: Admin, ctx: Ctx
) -> UserOut:
    client = client_address(request)
    changes = body.model_dump(exclude_none=True)  # null means "leave as is"
    # Which fields changed, never the password itself.
    fields: dict[str, Any] = {k: (True if k == "password" else v) for k, v in changes.items()}

    async def audit(outcome: Outcome, reason: str = "", **extra: Any) -> None:
        detail: dict[str, Any] = {"changes": fields, **extra}
        if reason:
            detail["reason"] = reason
        await ctx.audit.record(admin, "user.update", username, outcome, client, detail)

    try:
        user = await ctx.auth.users.update_user(
            username,
            display_name=changes.get("display_name"),
            role=changes.get("role"),
            password=changes.get("password"),
            locale=changes.get("locale"),
            disabled=changes.get("disabled"),
        )
        closed = 0
        if body.password is not None or body.disabled:
            sessions = ctx.auth.sessions
            if isinstance(sessions, SessionStore):
                closed = await sessions.close_user(username)
    except UserNotFound as e:
        await audit("failed", "not_found")
        raise HTTPException(404, str(e)) from e
    except LastAdmin as e:
        await audit("failed", "last_admin")
        raise HTTPException(409, f"{e}: make another admin first") from e
    except (InvalidUser, PasswordPolicyError) as e:
        await audit("failed", str(e))
        raise HTTPException(422, str(e)) from e
    except EventStoreError as e:
        await audit("error")
        raise HTTPException(503, f"the event store is unavailable: {e}") from e
    await audit("ok", closed_sessions=closed)
    return UserOut.of(user)
