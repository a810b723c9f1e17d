"""Browser sessions: a random cookie value, of which only a SHA-256 is stored.

A session ends when it has not been used for ``api.session_idle_min``
minutes, ``api.session_max_h`` hours after login in any case, when it is
closed (logout, password change, user disabled) and at once when its user is
disabled or deleted. The role, name and locale are read from the user on
every request, so an admin's change applies to open sessions immediately.

``last_seen_ts`` is written at most once a minute per session, so a page
that polls does not turn every request into a database write; the idle
timeout is therefore measured from a use at most a minute old (a session
can end up to a minute before ``session_idle_min`` of true idleness).
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from sqlalchemy import delete, insert, or_, select, update

from gateway.api.auth.ratelimit import LoginLimiter
from gateway.api.auth.users import User, UserStore
from gateway.api.config import ApiConfig
from gateway.api.principal import Principal
from gateway.clock import Clock
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import sessions, users

__all__ = ["LAST_SEEN_EVERY_NS", "SessionStore", "session_digest"]

log = logging.getLogger("gateway.api.sessions")

LAST_SEEN_EVERY_NS = 60 * 1_000_000_000
_PURGE_EVERY_NS = 10 * 60 * 1_000_000_000
_MAX_RAW_LENGTH = 128  # our values are 43 characters; anything longer is not ours
_NS_PER_MIN = 60 * 1_000_000_000


def session_digest(raw: str) -> str:
    """The stored form of a cookie value (hex SHA-256)."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class SessionStore:
    """Opens, resolves and closes sessions; also holds the failed-login limiter."""

    def __init__(
        self, store: EventStore, clock: Clock, users: UserStore, config: ApiConfig
    ) -> None:
        self.store = store
        self.clock = clock
        self.users = users
        self.config = config
        self.limiter = LoginLimiter(clock, config.login_max_failures, config.login_window_s)
        self._last_purge = 0

    @property
    def idle_ns(self) -> int:
        return self.config.session_idle_min * _NS_PER_MIN

    @property
    def max_ns(self) -> int:
        return self.config.session_max_h * 60 * _NS_PER_MIN

    async def open(self, user: User, client: str, user_agent: str) -> tuple[str, str, int]:
        """A new session of ``user``: (cookie value, CSRF token, absolute end in UTC ns)."""
        now = self.clock.time_ns()
        if now - self._last_purge >= _PURGE_EVERY_NS:
            await self.purge()
        raw = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now + self.max_ns
        async with self.store.begin() as conn:
            await conn.execute(
                insert(sessions).values(
                    id_hash=session_digest(raw),
                    username=user.username,
                    csrf=csrf,
                    created_ts=now,
                    last_seen_ts=now,
                    expires_ts=expires,
                    client=client[:255],
                    user_agent=user_agent[:255],
                )
            )
        return raw, csrf, expires

    async def resolve(self, raw: str, client: str) -> Principal | None:
        """The principal of a live session, or None (unknown, ended, user disabled or gone).

        ``client`` is not compared with the address the session was opened
        from: phones change networks; the cookie is HttpOnly and SameSite.
        """
        if not raw or len(raw) > _MAX_RAW_LENGTH:
            return None
        digest = session_digest(raw)
        stmt = (
            select(
                sessions.c.username,
                sessions.c.csrf,
                sessions.c.last_seen_ts,
                sessions.c.expires_ts,
                users.c.role,
                users.c.display_name,
                users.c.locale,
                users.c.disabled,
            )
            .select_from(sessions.outerjoin(users, users.c.username == sessions.c.username))
            .where(sessions.c.id_hash == digest)
        )
        async with self.store.begin() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            return None
        now = self.clock.time_ns()
        m = row._mapping
        ended = (
            now >= m["expires_ts"]
            or now - m["last_seen_ts"] >= self.idle_ns
            or m["role"] is None  # the user was deleted
            or bool(m["disabled"])
        )
        if ended:
            await self.close(digest)
            return None
        if now - m["last_seen_ts"] >= LAST_SEEN_EVERY_NS:
            async with self.store.begin() as conn:
                await conn.execute(
                    update(sessions).where(sessions.c.id_hash == digest).values(last_seen_ts=now)
                )
        return Principal(
            username=m["username"],
            role=m["role"],
            auth="session",
            display_name=m["display_name"],
            locale=m["locale"],
            session_id_hash=digest,
            csrf=m["csrf"],
        )

    async def close(self, id_hash: str) -> bool:
        """End one session; True when it existed."""
        async with self.store.begin() as conn:
            result = await conn.execute(delete(sessions).where(sessions.c.id_hash == id_hash))
        return bool(result.rowcount)

    async def close_user(self, username: str, *, keep: str | None = None) -> int:
        """End every session of ``username`` (but ``keep``, a session id hash); the count."""
        stmt = delete(sessions).where(sessions.c.username == username)
        if keep is not None:
            stmt = stmt.where(sessions.c.id_hash != keep)
        async with self.store.begin() as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount or 0)

    async def count_user(self, username: str) -> int:
        """How many sessions of ``username`` are stored (live or not yet purged)."""
        async with self.store.begin() as conn:
            rows = (
                await conn.execute(
                    select(sessions.c.id_hash).where(sessions.c.username == username)
                )
            ).all()
        return len(rows)

    async def purge(self) -> int:
        """Delete the sessions that have ended by time; the count."""
        now = self.clock.time_ns()
        self._last_purge = now
        async with self.store.begin() as conn:
            result = await conn.execute(
                delete(sessions).where(
                    or_(sessions.c.expires_ts <= now, sessions.c.last_seen_ts <= now - self.idle_ns)
                )
            )
        n = int(result.rowcount or 0)
        if n:
            log.debug("purged %d ended sessions", n)
        return n
