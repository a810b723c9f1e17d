"""API tokens for machines (admin only): list, create (shown once), revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from gateway.api.audit import Outcome
from gateway.api.auth.tokens import InvalidToken
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
from gateway.api.schemas.users import TokenCreate, TokenCreated, TokenOut
from gateway.storage.eventstore import EventStoreError

__all__ = ["router"]

router = APIRouter(prefix="/tokens", tags=["tokens"])

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Admin = Annotated[Principal, Depends(require_role("admin"))]

_NS_PER_DAY = 86_400 * 1_000_000_000


@router.get(
    "",
    response_model=list[TokenOut],
    summary="Every token (revoked and expired ones too), oldest first; never the token itself",
    responses={**AUTH_RESPONSES, **STORE_DOWN},
)
async def list_tokens(_: Admin, ctx: Ctx) -> list[TokenOut]:
    return [TokenOut.of(i) for i in await ctx.auth.tokens.list()]


@router.post(
    "",
    name="token.create",
    status_code=201,
    response_model=TokenCreated,
    summary="Create a token; the answer holds the token, which is not shown again",
    responses={
        **BAD_BODY,
        **AUTH_RESPONSES,
        422: {"description": "Bad name or role."},
        **STORE_DOWN,
    },
)
async def create_token(body: TokenCreate, request: Request, admin: Admin, ctx: Ctx) -> TokenCreated:
    client = client_address(request)
    detail: dict[str, Any] = {"name": body.name, "role": body.role, "days": body.expires_days}

    async def audit(outcome: Outcome, target: str = "", reason: str = "") -> None:
        await ctx.audit.record(
            admin,
            "token.create",
            target,
            outcome,
            client,
            {**detail, "reason": reason} if reason else detail,
        )

    expires = (
        ctx.clock.time_ns() + body.expires_days * _NS_PER_DAY
        if body.expires_days is not None
        else None
    )
    try:
        token, info = await ctx.auth.tokens.create(body.name, body.role, admin.username, expires)
    except InvalidToken as e:
        await audit("failed", reason=str(e))
        raise HTTPException(422, str(e)) from e
    except EventStoreError as e:
        await audit("error")
        raise HTTPException(503, f"the event store is unavailable: {e}") from e
    await audit("ok", info.id)
    return TokenCreated(token=token, info=TokenOut.of(info))


@router.delete(
    "/{token_id}",
    name="token.revoke",
    status_code=204,
    response_class=Response,
    summary="Revoke a token: it stops working at once",
    responses={
        **AUTH_RESPONSES,
        404: {"description": "No such token, or revoked already."},
        **STORE_DOWN,
    },
)
async def revoke_token(token_id: str, request: Request, admin: Admin, ctx: Ctx) -> Response:
    client = client_address(request)
    try:
        revoked = await ctx.auth.tokens.revoke(token_id)
    except EventStoreError as e:
        await ctx.audit.record(admin, "token.revoke", token_id, "error", client)
        raise HTTPException(503, f"the event store is unavailable: {e}") from e
    if not revoked:
        await ctx.audit.record(
            admin, "token.revoke", token_id, "failed", client, {"reason": "unknown"}
        )
        raise HTTPException(404, f"no live token {token_id!r}")
    await ctx.audit.record(admin, "token.revoke", token_id, "ok", client)
    return Response(status_code=204)
