"""Reading and writing the manager's state in the event store.

One batch is one transaction: the ``alarms`` rows it touches (rewritten, or
deleted when the alarm is back to plain normal) and its ``alarm.*`` events.
A restart reads the rows back, and the recent history (activations for the
chattering and flood windows, floods still running, maintenance toggles)
from the events.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, insert, select

from gateway.alarms.alarmset import FLOOD_ENDED, FLOOD_STARTED, MAINTENANCE
from gateway.alarms.batch import Batch
from gateway.alarms.record import AlarmRecord
from gateway.storage.eventstore import MAX_QUERY_LIMIT, EventStore, StoredEvent, append_in
from gateway.storage.tables import alarms as alarms_table

__all__ = [
    "ACTIVATION_EVENTS",
    "read_activations",
    "read_floods",
    "read_maintenance",
    "read_records",
    "read_rows",
    "scan_events",
    "write_batch",
]

log = logging.getLogger(__name__)

ACTIVATION_EVENTS = ("alarm.activated", "alarm.reactivated")
_CHUNK = 500


async def write_batch(store: EventStore, batch: Batch) -> None:
    """Store ``batch`` in one transaction. Raises EventStoreUnavailable (retry)
    or another EventStoreError."""
    ids = list(batch.rows)
    rows = [_row(rec) for rec in batch.rows.values() if rec is not None]
    async with store.begin() as conn:
        for i in range(0, len(ids), _CHUNK):
            await conn.execute(
                delete(alarms_table).where(alarms_table.c.id.in_(ids[i : i + _CHUNK]))
            )
        if rows:
            await conn.execute(insert(alarms_table), rows)
        await append_in(conn, batch.events)


def _row(rec: AlarmRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "rule": rec.rule,
        "source": rec.source,
        "device": rec.device,
        "state": rec.state.value,
        "priority": rec.priority.value,
        "category": rec.category,
        "control_room": rec.control_room,
        "active": rec.active,
        "updated_ts": rec.updated_ts,
        "record": rec.to_json(),
    }


async def read_rows(store: EventStore) -> list[dict[str, Any]]:
    """The ``alarms`` rows as stored (``record`` still JSON)."""
    async with store.begin() as conn:
        result = await conn.execute(select(alarms_table).order_by(alarms_table.c.id))
        return [dict(row._mapping) for row in result]


async def read_records(store: EventStore) -> list[AlarmRecord]:
    """Every stored record. A row that cannot be read is logged and left in the
    table untouched (it is not lost; a later transition of that alarm rewrites it)."""
    out: list[AlarmRecord] = []
    for row in await read_rows(store):
        try:
            out.append(AlarmRecord.from_json(row["record"]))
        except (ValueError, TypeError) as exc:
            log.error("alarm row %r cannot be read and is skipped: %s", row.get("id"), exc)
    return out


async def scan_events(
    store: EventStore, types: Sequence[str], since: int | None = None, until: int | None = None
) -> list[StoredEvent]:
    """Every event of ``types`` with ``since <= ts < until``, in store order."""
    out: list[StoredEvent] = []
    after: int | None = None
    while True:
        page = await store.query(
            types=types, since=since, until=until, after_id=after, limit=MAX_QUERY_LIMIT
        )
        out.extend(page)
        if len(page) < MAX_QUERY_LIMIT:
            return out
        after = page[-1].id


async def read_activations(store: EventStore, since: int) -> list[tuple[str, str, int, bool]]:
    """Recent activations as ``(alarm id, control room, ts, annunciated)``."""
    out: list[tuple[str, str, int, bool]] = []
    for stored in await scan_events(store, ACTIVATION_EVENTS, since):
        data = stored.event.data
        aid, room = data.get("id"), data.get("control_room")
        if isinstance(aid, str) and isinstance(room, str):
            out.append((aid, room, stored.event.ts, bool(data.get("annunciate"))))
    return out


async def read_floods(store: EventStore, since: int) -> dict[str, int]:
    """Rooms whose last flood event (at or after ``since``) is a start: ``{room: since_ns}``."""
    last: dict[str, tuple[str, int]] = {}
    for stored in await scan_events(store, (FLOOD_STARTED, FLOOD_ENDED), since):
        room = stored.event.data.get("control_room")
        if isinstance(room, str):
            last[room] = (stored.event.type, stored.event.ts)
    return {room: ts for room, (type_, ts) in last.items() if type_ == FLOOD_STARTED}


async def read_maintenance(store: EventStore, site_file: Iterable[str]) -> frozenset[str]:
    """Devices in maintenance: the site file's set, changed by the operators'
    later toggles. A toggle made when the site file said otherwise than it says
    now is outdated (the file was edited since): the file wins for that device."""
    site = frozenset(site_file)
    last: dict[str, tuple[bool, bool]] = {}
    for stored in await scan_events(store, (MAINTENANCE,)):
        data = stored.event.data
        device = data.get("device")
        if isinstance(device, str):
            last[device] = (bool(data.get("on")), bool(data.get("site_file")))
    result = set(site)
    for device, (on, site_then) in last.items():
        if site_then != (device in site):
            continue
        if on:
            result.add(device)
        else:
            result.discard(device)
    return frozenset(result)
