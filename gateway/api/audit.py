"""The audit trail: who did what, when, from where, and how it ended.

Written for every state-changing call of the API (done, refused or failed),
every login and logout, every user and token change. A record that cannot be
written is logged loudly; the action's own outcome stands (the alarm
manager has stored its transition with who and when already).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import insert, select

from gateway.alarms.record import jsonable
from gateway.api.principal import Principal
from gateway.clock import Clock
from gateway.storage.eventstore import EventStore, EventStoreError
from gateway.storage.tables import audit

__all__ = ["AuditLog", "AuditRecord", "Outcome"]

log = logging.getLogger("gateway.api.audit")

Outcome = Literal["ok", "denied", "failed", "error"]
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    ts: int
    username: str
    role: str
    auth: str
    action: str
    target: str
    outcome: str
    client: str
    detail: Mapping[str, Any]


class AuditLog:
    def __init__(self, store: EventStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.failed_writes = 0

    async def record(
        self,
        who: Principal | None,
        action: str,
        target: str,
        outcome: Outcome,
        client: str,
        detail: Mapping[str, Any] | None = None,
        *,
        username: str = "",
        auth: str = "",
    ) -> int | None:
        """Store one record; returns its id (None when the store refused it).

        ``username``/``auth`` name an anonymous caller (a failed login, the CLI).
        """
        values = {
            "ts": self.clock.time_ns(),
            "username": (who.username if who else username)[:64],
            "role": who.role if who else "",
            "auth": (who.auth if who else auth or "anonymous")[:16],
            "action": action[:64],
            "target": target[:400],
            "outcome": outcome,
            "client": client[:255],
            "detail": jsonable(dict(detail or {})),
        }
        try:
            async with self.store.begin() as conn:
                result = await conn.execute(insert(audit).values(**values).returning(audit.c.id))
                return int(result.scalar_one())
        except EventStoreError as e:
            self.failed_writes += 1
            log.error("cannot write the audit record %s %s %s: %s", action, target, outcome, e)
            return None

    async def query(
        self,
        *,
        username: str | None = None,
        action: str | None = None,
        since: int | None = None,
        until: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Newest first; page on with the smallest id of the previous page as ``before_id``."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        stmt = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if username is not None:
            stmt = stmt.where(audit.c.username == username)
        if action is not None:
            if action.endswith("*"):
                stmt = stmt.where(audit.c.action.startswith(action[:-1], autoescape=True))
            else:
                stmt = stmt.where(audit.c.action == action)
        if since is not None:
            stmt = stmt.where(audit.c.ts >= since)
        if until is not None:
            stmt = stmt.where(audit.c.ts < until)
        if before_id is not None:
            stmt = stmt.where(audit.c.id < before_id)
        async with self.store.begin() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            AuditRecord(
                int(r.id),
                int(r.ts),
                r.username,
                r.role,
                r.auth,
                r.action,
                r.target,
                r.outcome,
                r.client,
                r.detail,
            )
            for r in rows
        ]
