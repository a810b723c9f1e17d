"""Who is calling: a bearer token (machines) or a session cookie (the page).

A cookie is sent by the browser on its own, so any state-changing request
that rides on one must also carry the session's CSRF token in the
``X-CSRF-Token`` header (the page reads it from the login answer or
``/auth/me``). A bearer token is never sent implicitly, so it needs none.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from starlette.requests import HTTPConnection

from gateway.api.auth.tokens import TokenStore
from gateway.api.auth.users import UserStore
from gateway.api.principal import Principal

__all__ = [
    "CSRF_HEADER",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "AuthError",
    "Authenticator",
    "CsrfRejected",
    "NotAuthenticated",
    "SessionResolver",
]

SESSION_COOKIE = "gw_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuthError(Exception):
    status = 401


class NotAuthenticated(AuthError):
    """No credentials, or credentials that are unknown, expired or revoked (401)."""


class CsrfRejected(AuthError):
    """A cookie-authenticated unsafe request without the right CSRF header (403)."""

    status = 403


class SessionResolver(Protocol):
    async def resolve(self, raw: str, client: str) -> Principal | None:
        """The principal of a live session cookie value, or None."""
        ...


class Authenticator:
    def __init__(
        self, users: UserStore, tokens: TokenStore, sessions: SessionResolver | None = None
    ) -> None:
        self.users = users
        self.tokens = tokens
        self.sessions = sessions

    async def authenticate(self, conn: HTTPConnection, *, method: str = "GET") -> Principal:
        """The caller of ``conn`` (a request or a WebSocket); raises :class:`AuthError`."""
        header = conn.headers.get("authorization", "")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise NotAuthenticated("use 'Authorization: Bearer <token>'")
            return await self._token(value.strip())
        raw = conn.cookies.get(SESSION_COOKIE)
        if raw and self.sessions is not None:
            client = conn.client.host if conn.client else ""
            principal = await self.sessions.resolve(raw, client)
            if principal is None:
                raise NotAuthenticated("the session has expired; log in again")
            if method.upper() not in SAFE_METHODS:
                sent = conn.headers.get(CSRF_HEADER, "")
                if not sent or not principal.csrf or not hmac.compare_digest(sent, principal.csrf):
                    raise CsrfRejected(f"missing or wrong {CSRF_HEADER} header")
            return principal
        raise NotAuthenticated("log in, or send 'Authorization: Bearer <token>'")

    async def _token(self, token: str) -> Principal:
        info = await self.tokens.verify(token)
        if info is None:
            raise NotAuthenticated("unknown, expired or revoked token")
        return Principal(
            username=f"token:{info.id}",
            role=info.role,
            auth="token",
            display_name=info.name,
            token_id=info.id,
        )
