"""Bus delivery rules: back-pressure for what must not be lost, coalescing where asked."""

import asyncio

import pytest

from gateway.bus import Bus, BusClosed
from gateway.model import Alarm, AlarmState, Command, Event, Priority, Reading


def r(point: str, v: float, ts: int) -> Reading:
    return Reading(point, v, ts)


async def test_each_subscriber_gets_only_its_kinds_in_order() -> None:
    bus = Bus()
    readings = bus.subscribe("readings", (Reading,))
    events = bus.subscribe("events", (Event, Alarm))
    msgs = [r("a.x", 1, 1), Event("door.forced", "d1", 2), r("a.x", 2, 3)]
    await bus.publish_many(msgs)
    assert readings.get_nowait() == [msgs[0], msgs[2]]
    assert events.get_nowait() == [msgs[1]]


async def test_full_queue_applies_back_pressure_and_loses_nothing() -> None:
    bus = Bus()
    sub = bus.subscribe("slow", (Event,), maxsize=3)
    events = [Event("e", "s", i) for i in range(10)]
    producer = asyncio.create_task(bus.publish_many(events))
    await asyncio.sleep(0)
    assert not producer.done() and sub.depth == 3  # blocked, not dropped
    got = []
    while len(got) < 10:
        got.extend(await sub.get_batch(2))
    await producer
    assert got == events
    st = sub.stats()
    assert st.blocked_publishes >= 1 and st.high_water == 3 and st.delivered == 10


async def test_coalescing_subscriber_keeps_latest_reading_per_point_and_counts() -> None:
    bus = Bus()
    screen = bus.subscribe("screen", coalesce_readings=True, maxsize=1)
    writer = bus.subscribe("writer", (Reading,), maxsize=100)
    for i in range(50):
        await bus.publish(r("tx1.temp", i, i))
        await bus.publish(r("tx2.temp", 100 + i, i))
    alarm = Alarm("a1", "r1", "tx1", AlarmState.UNACKNOWLEDGED, Priority.HIGH, 99)
    await bus.publish(alarm)
    batch = screen.get_nowait()
    assert alarm in batch
    assert {m.point: m.value for m in batch if isinstance(m, Reading)} == {
        "tx1.temp": 49,
        "tx2.temp": 149,
    }
    assert screen.stats().coalesced == 98
    assert len(writer.get_nowait()) == 100  # the writer saw every sample


async def test_accept_filter_routes_commands() -> None:
    bus = Bus()
    gate = bus.subscribe("gate", (Command,), accept=lambda m: m.target == "gate1")  # type: ignore[union-attr]
    await bus.publish(Command("gate1", "open"))
    await bus.publish(Command("gate2", "open"))
    assert [c.target for c in gate.get_nowait()] == ["gate1"]


async def test_close_wakes_consumer_after_drain() -> None:
    bus = Bus()
    sub = bus.subscribe("s", (Event,))
    await bus.publish(Event("e", "s", 1))
    bus.close()
    assert [m async for m in sub] == [Event("e", "s", 1)]
    with pytest.raises(BusClosed):
        await sub.get()


def test_subscribe_rejects_non_message_types() -> None:
    with pytest.raises(TypeError):
        Bus().subscribe("x", (int,))
