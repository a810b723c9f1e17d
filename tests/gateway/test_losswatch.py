"""Loss counters become events once per increase."""

import asyncio

from gateway.clock import ManualClock
from gateway.losswatch import LossCounter, LossWatch
from gateway.model import Event


async def test_each_increase_is_one_event_with_the_delta() -> None:
    clock = ManualClock()
    events: list[Event] = []
    dropped, quarantined = [0], [0]

    async def emit(e: Event) -> None:
        events.append(e)

    watch = LossWatch(
        "gateway",
        [
            LossCounter("timeseries points", "outbox full", lambda: dropped[0]),
            LossCounter("timeseries points", "rejected", lambda: quarantined[0], quarantined=True),
        ],
        emit,
        clock,
        interval=5,
    )
    task = asyncio.create_task(watch.run())
    await clock.advance(5)
    assert events == []  # nothing lost, nothing said
    dropped[0] = 120
    await clock.advance(5)
    quarantined[0] = 2
    await clock.advance(5)
    await clock.advance(5)  # no change: no repeat
    dropped[0] = 150
    await clock.advance(5)
    task.cancel()
    assert [(e.type, e.data["count"], e.data["total"]) for e in events] == [
        ("data.lost", 120, 120),
        ("data.quarantined", 2, 2),
        ("data.lost", 30, 150),
    ]
    assert events[0].data["reason"] == "outbox full" and events[0].source == "gateway"
