"""API tokens for machines: ``gwt_<id>_<secret>``; only a SHA-256 is stored.

A token carries a role of its own (a BMS that only reads gets ``viewer``)
and may expire. ``last_used`` is written at most once a minute per token so
a polling client does not turn every request into a database write.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from gateway.api.roles import ROLES
from gateway.clock import Clock
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import api_tokens

__all__ = ["TOKEN_PREFIX", "InvalidToken", "TokenInfo", "TokenStore"]

TOKEN_PREFIX = "gwt_"
_LAST_USED_EVERY_NS = 60 * 1_000_000_000


class InvalidToken(ValueError):
    """A token request that cannot be honoured (unknown role, empty name)."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    name: str
    role: str
    created_by: str
    created_ts: int
    expires_ts: int | None
    last_used_ts: int | None
    revoked_ts: int | None

    def usable(self, now_ns: int) -> bool:
        return self.revoked_ts is None and (self.expires_ts is None or now_ns < self.expires_ts)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _info(row: object) -> TokenInfo:
    r = row._mapping  # type: ignore[attr-defined]
    return TokenInfo(
        r["id"],
        r["name"],
        r["role"],
        r["created_by"],
        int(r["created_ts"]),
        r["expires_ts"],
        r["last_used_ts"],
        r["revoked_ts"],
    )


class TokenStore:
    def __init__(self, store: EventStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._last_written: dict[str, int] = {}

    async def create(
        self, name: str, role: str, created_by: str, expires_ts: int | None = None
    ) -> tuple[str, TokenInfo]:
        """A new token and its record; the token text is not kept anywhere."""
        if role not in ROLES:
            raise InvalidToken(f"role {role!r}: use one of {', '.join(ROLES)}")
        name = name.strip()
        if not name or len(name) > 128:
            raise InvalidToken("a token needs a name of 1-128 characters")
        token_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        now = self.clock.time_ns()
        info = TokenInfo(token_id, name, role, created_by, now, expires_ts, None, None)
        async with self.store.begin() as conn:
            await conn.execute(
                insert(api_tokens).values(
                    id=token_id,
                    name=name,
                    role=role,
                    token_hash=_digest(token),
                    created_by=created_by,
                    created_ts=now,
                    expires_ts=expires_ts,
                    last_used_ts=None,
                    revoked_ts=None,
                )
            )
        return token, info

    async def verify(self, token: str) -> TokenInfo | None:
        """The token's record when it is known, not revoked and not expired."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = _digest(token)
        async with self.store.begin() as conn:
            row = (
                await conn.execute(select(api_tokens).where(api_tokens.c.token_hash == digest))
            ).first()
        if row is None or not hmac.compare_digest(row._mapping["token_hash"], digest):
            return None
        info = _info(row)
        now = self.clock.time_ns()
        if not info.usable(now):
            return None
        if now - self._last_written.get(info.id, 0) >= _LAST_USED_EVERY_NS:
            self._last_written[info.id] = now
            async with self.store.begin() as conn:
                await conn.execute(
                    update(api_tokens).where(api_tokens.c.id == info.id).values(last_used_ts=now)
                )
        return info

    async def list(self) -> list[TokenInfo]:
        async with self.store.begin() as conn:
            rows = (await conn.execute(select(api_tokens).order_by(api_tokens.c.created_ts))).all()
        return [_info(r) for r in rows]

    async def revoke(self, token_id: str) -> bool:
        """True when a live token was revoked; False when unknown or revoked already."""
        async with self.store.begin() as conn:
            result = await conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_ts.is_(None))
                .values(revoked_ts=self.clock.time_ns())
            )
        return bool(result.rowcount)
