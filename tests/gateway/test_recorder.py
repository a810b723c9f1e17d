"""The recorder stores every event; unstorable data is kept as text, not lost."""

import asyncio
from pathlib import Path

from gateway.bus import Bus
from gateway.model import Event
from gateway.recorder import EventRecorder
from gateway.storage.eventstore import EventStore


async def test_events_and_unstorable_data_are_all_recorded(tmp_path: Path) -> None:
    store = EventStore(f"sqlite+aiosqlite:///{tmp_path}/gw.db")
    await store.open()
    bus = Bus()
    rec = EventRecorder(bus.subscribe("recorder", (Event,)), store)
    task = asyncio.create_task(rec.run())
    await bus.publish(Event("door.forced", "door1", 1, {"zone": "配电房"}))
    await bus.publish(Event("sensor.glitch", "s1", 2, {"value": float("nan")}))
    await bus.publish(Event("", "s1", 3))  # no type: nothing to salvage
    await bus.publish(Event("access.denied", "gate1", 4, {"reason": "expired"}))
    bus.close()
    await task
    rows = [s.event for s in await store.query()]
    await store.close()
    assert [e.type for e in rows] == ["door.forced", "sensor.glitch", "access.denied"]
    assert rows[0].data == {"zone": "配电房"}
    assert "nan" in rows[1].data["unstorable_data"] and rows[1].data["store_error"]
    assert rows[2].data == {"reason": "expired"}
    assert (rec.recorded, rec.sanitized, rec.dropped) == (3, 1, 1)


async def test_stopping_mid_stream_loses_no_event(tmp_path: Path) -> None:
    """stop() never cancels a batch that was taken off the bus but not yet stored."""
    store = EventStore(f"sqlite+aiosqlite:///{tmp_path}/gw.db")
    await store.open()
    bus = Bus()
    rec = EventRecorder(bus.subscribe("recorder", (Event,)), store)
    task = asyncio.create_task(rec.run())
    for i in range(3000):
        await bus.publish(Event("e.n", "s", i, {"i": i}))
    while rec.recorded == 0:  # noqa: ASYNC110 - polling another task
        await asyncio.sleep(0)  # the recorder is now between or inside batches
    await rec.stop(task)
    await rec.drain()
    stored = [s.event.ts for s in await store.query(limit=10_000)]
    await store.close()
    assert stored == list(range(3000))
