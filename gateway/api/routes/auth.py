"""Login, logout, the caller's own record, and changing one's own password.

The page logs in with a username and password and gets an HttpOnly session
cookie plus a CSRF token it must echo on unsafe calls; machines use bearer
tokens instead and never call these (``/auth/me`` works for both). Failed
logins are limited per username and per address (429 with Retry-After); a
wrong username and a wrong password get the same answer.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from gateway.api.audit import Outcome
from gateway.api.auth.authenticator import SESSION_COOKIE
from gateway.api.auth.passwords import PasswordPolicyError
from gateway.api.auth.sessions import SessionStore, session_digest
from gateway.api.context import ApiContext
from gateway.api.deps import (
    AUTH_RESPONSES,
    BAD_BODY,
    client_address,
    current_principal,
    get_ctx,
)
from gateway.api.principal import Principal
from gateway.api.schemas.auth import LoginIn, LoginOut, MeOut, PasswordIn
from gateway.api.schemas.users import UserOut
from gateway.model import to_datetime
from gateway.storage.eventstore import EventStoreError

__all__ = ["BAD_CREDENTIALS", "cookie_secure", "router", "session_store"]

router = APIRouter(prefix="/auth", tags=["auth"])

BAD_CREDENTIALS = "wrong username or password"
_LOOPBACK = frozenset({"127.0.0.1", "::1"})
_STORE_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"description": "The event store (users, sessions) is unavailable."}
}
_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many failed attempts; see Retry-After (seconds)."}
}


Ctx = Annotated[ApiContext, Depends(get_ctx)]
Caller = Annotated[Principal, Depends(current_principal)]


def session_store(ctx: Ctx) -> SessionStore:
    sessions = ctx.auth.sessions
    if not isinstance(sessions, SessionStore):
        raise HTTPException(503, "browser sessions are not configured on this gateway")
    return sessions


Sessions = Annotated[SessionStore, Depends(session_store)]


def cookie_secure(request: Request, setting: str) -> bool:
    """Whether the session cookie gets the Secure flag (``api.cookie_secure``)."""
    if setting in ("always", "never"):
        return setting == "always"
    if request.url.scheme == "https":
        return True
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return proto == "https" and client_address(request) in _LOOPBACK


def _limited(retry_after: int) -> HTTPException:
    return HTTPException(
        429,
        f"too many failed attempts; try again in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


def _unavailable(e: EventStoreError) -> HTTPException:
    return HTTPException(503, f"the event store is unavailable: {e}")


@router.post(
    "/login",
    name="auth.login",
    response_model=LoginOut,
    summary="Log in: sets the session cookie and returns the CSRF token",
    responses={
        **BAD_BODY,
        401: {"description": "Wrong username or password (the same answer for both)."},
        **_LIMITED,
        **_STORE_DOWN,
    },
)
async def login(
    body: LoginIn,
    request: Request,
    response: Response,
    ctx: Ctx,
    sessions: Sessions,
) -> LoginOut:
    client = client_address(request)
    limiter = sessions.limiter
    wait = limiter.retry_after(body.username, client)
    if wait is not None:
        await ctx.audit.record(
            None,
            "auth.login",
            body.username,
            "denied",
            client,
            {"reason": "rate_limited", "retry_after_s": wait},
        )
        raise _limited(wait)
    try:
        user = await ctx.auth.users.check_password(body.username, body.password)
        if user is not None:
            agent = request.headers.get("user-agent", "")
            raw, csrf, expires = await sessions.open(user, client, agent)
            previous = request.cookies.get(SESSION_COOKIE)
            if previous:  # a new login replaces the browser's old session
                await sessions.close(session_digest(previous))
    except EventStoreError as e:
        await ctx.audit.record(None, "auth.login", body.username, "error", client, {})
        raise _unavailable(e) from e
    if user is None:
        limiter.failure(body.username, client)
        await ctx.audit.record(
            None, "auth.login", body.username, "failed", client, {"reason": "bad_credentials"}
        )
        raise HTTPException(401, BAD_CREDENTIALS, headers={"WWW-Authenticate": "Bearer"})
    limiter.success(body.username)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        max_age=ctx.config.session_max_h * 3600,
        path="/",
        secure=cookie_secure(request, ctx.config.cookie_secure),
        httponly=True,
        samesite="strict",
    )
    who = Principal(
        user.username,
        user.role,
        "session",
        user.display_name,
        user.locale,
        session_id_hash=session_digest(raw),
    )
    await ctx.audit.record(who, "auth.login", user.username, "ok", client)
    return LoginOut(user=UserOut.of(user), csrf_token=csrf, expires=to_datetime(expires))


@router.post(
    "/logout",
    name="auth.logout",
    status_code=204,
    response_class=Response,
    summary="End this session (a bearer token stays valid: revoke it instead)",
    responses={**AUTH_RESPONSES, **_STORE_DOWN},
)
async def logout(
    request: Request,
    principal: Caller,
    ctx: Ctx,
    sessions: Sessions,
) -> Response:
    client = client_address(request)
    closed = False
    if principal.session_id_hash is not None:
        try:
            closed = await sessions.close(principal.session_id_hash)
        except EventStoreError as e:
            await ctx.audit.record(principal, "auth.logout", principal.username, "error", client)
            raise _unavailable(e) from e
    await ctx.audit.record(
        principal, "auth.logout", principal.username, "ok", client, {"closed": closed}
    )
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get(
    "/me",
    response_model=MeOut,
    summary="The caller: user (or token), role, language and the session's CSRF token",
    responses=AUTH_RESPONSES,
)
async def me(principal: Caller, ctx: Ctx) -> MeOut:
    if principal.auth == "session":
        user = await ctx.auth.users.get_user(principal.username)
        if user is None:  # deleted between the two reads
            raise HTTPException(401, "the session has expired; log in again")
        return MeOut(user=UserOut.of(user), auth="session", csrf_token=principal.csrf)
    info = next((i for i in await ctx.auth.tokens.list() if i.id == principal.token_id), None)
    created = info.created_ts if info is not None else ctx.started_ns
    out = UserOut(
        username=principal.username,
        display_name=principal.display_name,
        role=principal.role,
        locale="",
        disabled=False,
        created=to_datetime(created),
    )
    return MeOut(user=out, auth="token", csrf_token=None)


@router.post(
    "/password",
    name="auth.password",
    status_code=204,
    response_class=Response,
    summary="Change one's own password; the user's other sessions end",
    responses={
        **BAD_BODY,
        **AUTH_RESPONSES,
        403: {"description": "The current password is wrong, or the CSRF header is missing."},
        409: {"description": "An API token has no password."},
        422: {"description": "The new password does not meet the policy."},
        **_LIMITED,
        **_STORE_DOWN,
    },
)
async def change_password(
    body: PasswordIn,
    request: Request,
    principal: Caller,
    ctx: Ctx,
    sessions: Sessions,
) -> Response:
    client = client_address(request)

    async def audit(outcome: Outcome, reason: str = "") -> None:
        detail = {"reason": reason} if reason else {}
        await ctx.audit.record(
            principal,
            "auth.password",
            principal.username,
            outcome,
            client,
            detail,
        )

    if principal.auth != "session":
        await audit("denied", "token")
        raise HTTPException(409, "an API token has no password; log in as a user")
    wait = sessions.limiter.retry_after(principal.username, client)
    if wait is not None:
        await audit("denied", "rate_limited")
        raise _limited(wait)
    try:
        user = await ctx.auth.users.check_password(principal.username, body.current)
        if user is None:
            sessions.limiter.failure(principal.username, client)
            await audit("failed", "wrong_current_password")
            raise HTTPException(403, "the current password is wrong")
        await ctx.auth.users.update_user(principal.username, password=body.new)
        closed = await sessions.close_user(principal.username, keep=principal.session_id_hash)
    except PasswordPolicyError as e:
        await audit("failed", "policy")
        raise HTTPException(422, str(e)) from e
    except EventStoreError as e:
        await audit("error")
        raise _unavailable(e) from e
    await ctx.audit.record(
        principal, "auth.password", principal.username, "ok", client, {"closed_sessions": closed}
    )
    return Response(status_code=204)
