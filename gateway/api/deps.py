"""FastAPI dependencies shared by every router: the context, the caller, the
role check (with its audit record when it refuses), the caller's address."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from gateway.api.auth.authenticator import AuthError
from gateway.api.context import ApiContext
from gateway.api.principal import Principal
from gateway.api.roles import ROLES, at_least

__all__ = [
    "AUTH_RESPONSES",
    "BAD_BODY",
    "STORE_DOWN",
    "Ctx",
    "client_address",
    "current_principal",
    "get_ctx",
    "require_role",
]

# Declared on every authenticated route, so the OpenAPI lists them.
AUTH_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "Not authenticated (no, unknown, expired or revoked credentials)."},
    403: {"description": "The role may not do this, or the CSRF header is missing or wrong."},
}

BAD_BODY: dict[int | str, dict[str, str]] = {
    400: {"description": "The body cannot be parsed (not JSON, or not UTF-8)."}
}
STORE_DOWN: dict[int | str, dict[str, str]] = {
    503: {"description": "The event store is unavailable."}
}


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


Ctx = Annotated[ApiContext, Depends(get_ctx)]


async def current_principal(request: Request, ctx: Ctx) -> Principal:
    """The authenticated caller, or 401 (403 for a cookie call without its CSRF header)."""
    try:
        principal = await ctx.auth.authenticate(request, method=request.method)
    except AuthError as e:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        raise HTTPException(e.status, str(e), headers=headers) from e
    request.state.principal = principal
    return principal


def require_role(minimum: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller if its role ranks at least ``minimum``, else 403.

    A refusal of a state-changing call is written to the audit trail.
    """
    if minimum not in ROLES:
        raise ValueError(f"unknown role {minimum!r}")

    async def check(
        request: Request,
        principal: Annotated[Principal, Depends(current_principal)],
        ctx: Ctx,
    ) -> Principal:
        if at_least(principal.role, minimum):
            return principal
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            route = request.scope.get("route")
            action = getattr(route, "name", "") or request.url.path
            await ctx.audit.record(
                principal,
                action,
                request.url.path,
                "denied",
                client_address(request),
                {"needs": minimum, "method": request.method},
            )
        raise HTTPException(403, f"this needs the role {minimum} or higher")

    return check
