"""Where each credential was last seen: the area its last granted passage led into.

Anti-passback ("you are already inside") and "no card, no exit" for vehicles
both ask this, on every read, so it lives in memory; the ``access_presence``
table keeps it across restarts. The decider moves a credential in memory the
moment it grants a passage (so the next read in the same batch sees it); the
service writes the same entries in its passage transaction with
:meth:`Presence.write_in`.

A credential never seen is :data:`~gateway.access.config.OUTSIDE`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.access.config import OUTSIDE
from gateway.storage.eventstore import EventStore
from gateway.storage.tables import access_presence as t_presence

__all__ = ["Presence", "PresenceEntry"]


@dataclass(frozen=True, slots=True)
class PresenceEntry:
    """One credential's last granted passage: the area it led into, the door, when."""

    credential_id: str
    area: str
    door: str
    ts: int


class Presence:
    """Credential id -> :class:`PresenceEntry`, in memory, loaded from the store."""

    def __init__(self, entries: Iterable[PresenceEntry] = ()) -> None:
        self._entries: dict[str, PresenceEntry] = {e.credential_id: e for e in entries}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[PresenceEntry]:
        return iter(self._entries.values())

    def area_of(self, id: str) -> str:
        entry = self._entries.get(id)
        return entry.area if entry is not None else OUTSIDE

    def entry(self, id: str) -> PresenceEntry | None:
        return self._entries.get(id)

    def set(self, id: str, area: str, door: str, ts: int) -> PresenceEntry:
        """Move ``id`` into ``area`` (memory only); returns the entry to write."""
        entry = PresenceEntry(id, area, door, ts)
        self._entries[id] = entry
        return entry

    def forget(self, id: str) -> None:
        """Drop a deleted credential (memory only; the store deletes its row)."""
        self._entries.pop(id, None)

    def inside(self, area: str) -> list[PresenceEntry]:
        """Everyone whose last passage led into ``area``."""
        return [e for e in self._entries.values() if e.area == area]

    async def load(self, store: EventStore) -> None:
        """Replace what is in memory with the table."""
        async with store.begin() as conn:
            result = await conn.execute(
                select(
                    t_presence.c.credential_id,
                    t_presence.c.area,
                    t_presence.c.door,
                    t_presence.c.ts,
                )
            )
            self._entries = {r[0]: PresenceEntry(r[0], r[1], r[2], int(r[3])) for r in result}

    async def write_in(self, conn: AsyncConnection, entries: Sequence[PresenceEntry]) -> None:
        """Store ``entries`` in the caller's transaction (insert or replace per
        credential; the last entry of one credential wins)."""
        if not entries:
            return
        latest = {e.credential_id: e for e in entries}
        rows = [
            {"credential_id": e.credential_id, "area": e.area, "door": e.door, "ts": e.ts}
            for e in latest.values()
        ]
        ins = (
            postgresql.insert(t_presence)
            if conn.dialect.name == "postgresql"
            else sqlite.insert(t_presence)
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[t_presence.c.credential_id],
            set_={"area": ins.excluded.area, "door": ins.excluded.door, "ts": ins.excluded.ts},
        )
        await conn.execute(stmt, rows)
