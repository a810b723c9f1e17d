"""The passage log: every grant and denial at every door, in ``access_passages``.

The access service writes a batch of passages inside its own transaction
(:meth:`PassageLog.write_in`, together with the presence changes and the
visitor uses of the same decisions), so a passage is stored exactly when
what it decided is; the page and the reports read them back with
:meth:`PassageLog.query`, newest first, paged by id.

A passage names a card only by its keyed hash and a masked form
(``**614E``): the UID itself stays in ``access_credentials``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage.eventstore import MAX_QUERY_LIMIT, EventStore
from gateway.storage.tables import access_passages

__all__ = ["UNKNOWN_KIND", "Passage", "PassageError", "PassageLog"]

UNKNOWN_KIND = "unknown"
"""``kind`` of a passage whose credential is not known (an unknown card)."""


class PassageError(ValueError):
    """A query the passage log cannot answer (a limit out of range)."""


@dataclass(frozen=True, slots=True)
class Passage:
    """One row of ``access_passages``: a grant or a denial at a door.

    ``id`` is given by the store (``None`` before it is written). ``data``
    holds what has no column: the holder, the area after the passage, the
    controller's own reason in monitor mode, the read format.
    """

    ts: int
    door: str
    reader: str
    direction: str
    granted: bool
    reason: str
    credential_id: str | None
    kind: str
    card_hash: str | None
    card_masked: str
    plate: str | None
    mode: str
    data: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None

    def row(self) -> dict[str, Any]:
        """Column values for an insert (``id`` left to the store)."""
        return {
            "ts": self.ts,
            "door": self.door,
            "reader": self.reader,
            "direction": self.direction,
            "granted": self.granted,
            "reason": self.reason,
            "credential_id": self.credential_id,
            "kind": self.kind,
            "card_hash": self.card_hash,
            "card_masked": self.card_masked,
            "plate": self.plate,
            "mode": self.mode,
            "data": dict(self.data),
        }


def _from_row(row: Row[Any]) -> Passage:
    return Passage(
        id=int(row.id),
        ts=int(row.ts),
        door=row.door,
        reader=row.reader,
        direction=row.direction,
        granted=bool(row.granted),
        reason=row.reason,
        credential_id=row.credential_id,
        kind=row.kind,
        card_hash=row.card_hash,
        card_masked=row.card_masked,
        plate=row.plate,
        mode=row.mode,
        data=dict(row.data or {}),
    )


class PassageLog:
    """Writes (inside a caller's transaction) and reads ``access_passages``."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def write_in(self, conn: AsyncConnection, passages: Sequence[Passage]) -> None:
        """Insert ``passages`` in the transaction of ``conn`` (nothing for an empty list)."""
        if passages:
            await conn.execute(insert(access_passages), [p.row() for p in passages])

    async def query(
        self,
        door: str | None = None,
        credential_id: str | None = None,
        granted: bool | None = None,
        reason: str | None = None,
        since: int | None = None,
        until: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Passage]:
        """Passages newest first (by id), at most ``limit``; ``since`` <= ts <
        ``until``; page back with the last id seen as ``before_id``.

        Raises :class:`PassageError` for a limit outside 1..10,000 and
        :class:`~gateway.storage.eventstore.EventStoreUnavailable` when the
        store cannot be reached.
        """
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise PassageError(f"limit must be int, got {type(limit).__name__}")
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise PassageError(f"limit must be 1..{MAX_QUERY_LIMIT}, got {limit}")
        t = access_passages
        stmt = select(t).order_by(t.c.id.desc()).limit(limit)
        if door is not None:
            stmt = stmt.where(t.c.door == door)
        if credential_id is not None:
            stmt = stmt.where(t.c.credential_id == credential_id)
        if granted is not None:
            stmt = stmt.where(t.c.granted == granted)
        if reason is not None:
            stmt = stmt.where(t.c.reason == reason)
        if since is not None:
            stmt = stmt.where(t.c.ts >= since)
        if until is not None:
            stmt = stmt.where(t.c.ts < until)
        if before_id is not None:
            stmt = stmt.where(t.c.id < before_id)
        async with self._store.begin() as conn:
            result = await conn.execute(stmt)
            return [_from_row(row) for row in result]
