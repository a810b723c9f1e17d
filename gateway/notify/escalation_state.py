"""The stored form of an escalation: one row per alarm in ``escalations``.

The row's columns (policy, level, status, started_ts, next_ts) are for
queries and the resume on restart; the JSON ``record`` holds everything else
the escalator needs to carry on exactly where it was: the alarm as shown in
messages, who was called at which level on which channels, the reminders
sent, and who stopped it and why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage.eventstore import EventStore
from gateway.storage.tables import escalations

__all__ = ["RUNNING", "STOPPED", "EscalationState", "load_running", "write_in"]

log = logging.getLogger(__name__)

RUNNING = "running"
STOPPED = "stopped"


@dataclass(slots=True)
class EscalationState:
    """One alarm's escalation: where it is in its policy, and who was called.

    Stored as the JSON ``record`` of its ``escalations`` row (the columns copy
    policy, level, status and next_ts for queries), so a restart resumes it.
    """

    alarm_id: str
    source: str
    policy: str
    team: str | None
    category: str
    control_room: str
    priority: str
    view: dict[str, Any]  # the AlarmView the messages show
    started_ts: int  # UTC ns: level times count from here
    level: int = 0  # levels called so far (1-based level of the last one)
    next_ts: int | None = None  # UTC ns of the next step
    status: str = RUNNING
    repeats: int = 0  # reminders sent
    # person -> {"level": n, "channels": [...]}: who was called, at which level, on which chain
    notified: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # {level, ts, people}
    stopped_by: str = ""
    stopped_reason: str = ""
    stopped_ts: int | None = None

    def record(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> EscalationState:
        names = {f.name for f in fields(cls)}
        data = json.loads(json.dumps({k: v for k, v in record.items() if k in names}))
        return cls(**data)

    def row(self) -> dict[str, Any]:
        return {
            "alarm_id": self.alarm_id,
            "policy": self.policy,
            "level": self.level,
            "status": self.status,
            "started_ts": self.started_ts,
            "next_ts": self.next_ts,
            "record": self.record(),
        }


async def load_running(store: EventStore) -> list[EscalationState]:
    """Every running escalation in the store (a bad record is logged and skipped)."""
    async with store.begin() as conn:
        rows = (
            await conn.execute(select(escalations).where(escalations.c.status == RUNNING))
        ).all()
    out = []
    for row in rows:
        try:
            esc = EscalationState.from_record(row.record)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("escalation of %s not resumed, bad record: %r", row.alarm_id, exc)
            continue
        esc.level, esc.next_ts = int(row.level), row.next_ts
        out.append(esc)
    return out


async def write_in(conn: AsyncConnection, states: Sequence[EscalationState]) -> None:
    """Upsert rows inside the caller's transaction (portable: delete, then insert)."""
    if not states:
        return
    ids = [e.alarm_id for e in states]
    await conn.execute(delete(escalations).where(escalations.c.alarm_id.in_(ids)))
    await conn.execute(insert(escalations), [e.row() for e in states])
