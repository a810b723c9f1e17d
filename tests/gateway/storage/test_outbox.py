"""The outbox: durable, ordered, bounded, with a quarantine, on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.storage.outbox import Outbox, OutboxClosed, OutboxError


async def test_put_is_durable_across_a_new_instance(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    ids = [await box.put(f"p{i}".encode(), count=i + 1) for i in range(5)]
    assert ids == sorted(ids)
    assert (box.pending_items, box.pending_count) == (5, 15)
    # No close: a crash leaves the file as it is; a new instance sees every item.
    again = Outbox(path)
    await again.open()
    assert (again.pending_items, again.pending_count) == (5, 15)
    items = await again.peek(10)
    assert [i.payload for i in items] == [f"p{i}".encode() for i in range(5)]
    assert [i.id for i in items] == ids
    await again.close()
    await box.close()


async def test_peek_is_oldest_first_and_delete_removes(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    ids = await box.put_many([(b"a", 1), (b"b", 2), (b"c", 3)])
    assert [i.payload for i in await box.peek(2)] == [b"a", b"b"]
    await box.delete([*ids[:2], 999999])  # unknown ids are ignored
    assert (box.pending_items, box.pending_count) == (1, 3)
    assert [i.payload for i in await box.peek(5)] == [b"c"]
    await box.close()


async def test_ids_are_not_reused_after_the_queue_empties(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    first = await box.put(b"x")
    await box.delete([first])
    await box.close()
    box = Outbox(path)
    assert await box.put(b"y") > first
    await box.close()


async def test_replace_keeps_the_place_in_the_order_recursively(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    _a, b, _c = await box.put_many([(b"a", 4), (b"b", 4), (b"c", 4)])
    await box.replace(b, [(b"b1", 2), (b"b2", 2)])
    items = await box.peek(10)
    assert [i.payload for i in items] == [b"a", b"b1", b"b2", b"c"]
    b1 = items[1].id
    await box.replace(b1, [(b"b1a", 1), (b"b1b", 1)])
    await box.put(b"d", 1)
    assert (box.pending_items, box.pending_count) == (6, 13)
    await box.close()
    again = Outbox(path)
    items = await again.peek(10)
    assert [i.payload for i in items] == [b"a", b"b1a", b"b1b", b"b2", b"c", b"d"]
    assert (again.pending_items, again.pending_count) == (6, 13)
    # Parts keep the age of the item they replace.
    assert len({i.created_ns for i in items[:5]}) == 1
    with pytest.raises(KeyError):
        await again.replace(b, [(b"zz", 1)])  # already replaced
    assert again.pending_items == 6
    await again.close()


async def test_replace_into_many_parts_keeps_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    first, _last = await box.put_many([(b"first", 1), (b"last", 1)])
    await box.replace(first, [(f"{n:04}".encode(), 1) for n in range(300)])
    payloads = [i.payload for i in await box.peek(1000)]
    assert payloads == [f"{n:04}".encode() for n in range(300)] + [b"last"]
    await box.close()


async def test_max_items_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_items=3)
    for i in range(5):
        await box.put(bytes([i]), count=10)
    assert [i.payload for i in await box.peek(10)] == [b"\x02", b"\x03", b"\x04"]
    assert (box.pending_items, box.pending_count) == (3, 30)
    assert (box.dropped, box.dropped_count) == (2, 20)
    await box.close()


async def test_max_count_drops_the_oldest_but_never_the_new_item(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_count=25)
    await box.put_many([(b"a", 10), (b"b", 10)])
    await box.put(b"c", 10)  # 30 > 25: "a" goes
    assert [i.payload for i in await box.peek(10)] == [b"b", b"c"]
    await box.put(b"huge", 100)  # alone over the limit: kept, everything older goes
    assert [i.payload for i in await box.peek(10)] == [b"huge"]
    assert (box.dropped, box.dropped_count) == (3, 30)
    await box.close()


async def test_quarantine_is_kept_in_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    clock = ManualClock()
    box = Outbox(path, clock=clock)
    await box.quarantine(b"bad line", "field type conflict")
    await box.quarantine(b"other", "NaN")
    assert box.quarantined_count == 2
    await box.close()
    again = Outbox(path)
    await again.open()
    assert again.quarantined_count == 2
    q = await again.quarantined(10)
    assert [(i.payload, i.error) for i in q] == [
        (b"bad line", "field type conflict"),
        (b"other", "NaN"),
    ]
    assert q[0].created_ns == clock.time_ns()
    assert again.pending_items == 0  # the quarantine is not the queue
    await again.close()


async def test_sqlite_runs_off_the_event_loop_thread(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    await box.open()
    loop_thread = threading.get_ident()
    seen: list[int] = []
    await box._run(lambda: seen.append(threading.get_ident()))  # the worker's thread
    assert seen and seen[0] != loop_thread
    await box.close()


async def test_concurrent_puts_all_land_in_submission_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    ids = await asyncio.gather(*(box.put(str(i).encode()) for i in range(50)))
    assert ids == sorted(ids)
    assert [i.payload for i in await box.peek(100)] == [str(i).encode() for i in range(50)]
    await box.close()


async def test_closed_outbox_refuses_until_reopened(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    await box.put(b"x")
    await box.close()
    await box.close()  # idempotent
    with pytest.raises(OutboxClosed):
        await box.put(b"y")
    await box.open()
    assert box.pending_items == 1
    await box.close()


async def test_a_file_that_is_not_sqlite_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database" * 100)
    box = Outbox(path)
    with pytest.raises(OutboxError, match="not usable"):
        await box.open()
    await box.close()


async def test_file_is_wal_and_synchronous_is_checked(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", synchronous="FULL")
    await box.put(b"x")
    await box.close()
    with pytest.raises(ValueError):
        Outbox(tmp_path / "o.db", synchronous="OFF")  # type: ignore[arg-type]
    # The journal mode persists in the file.
    with sqlite3.connect(tmp_path / "o.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
