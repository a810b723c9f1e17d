"""The audit trail as the API gives it: newest first, paged by id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from gateway.api.audit import AuditRecord
from gateway.model import to_datetime

__all__ = ["AuditOut", "AuditPage"]


class AuditOut(BaseModel):
    id: int
    ts: datetime
    username: str = Field(description="Empty for an anonymous caller (a failed login).")
    role: str
    auth: str = Field(description="session, token, cli or anonymous")
    action: str
    target: str
    outcome: str = Field(description="ok, denied, failed or error")
    client: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, r: AuditRecord) -> AuditOut:
        return cls(
            id=r.id,
            ts=to_datetime(r.ts),
            username=r.username,
            role=r.role,
            auth=r.auth,
            action=r.action,
            target=r.target,
            outcome=r.outcome,
            client=r.client,
            detail=dict(r.detail),
        )


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_before_id: int | None = Field(
        description="Pass as before_id for the next (older) page; null on the last page."
    )
