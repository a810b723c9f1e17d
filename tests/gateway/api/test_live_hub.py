"""The live hub without a server: a real Bus, a ManualClock, and clients that
take what the hub gives them the way a connection's send task does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from gateway.api.live.client import LiveClient, PointFilter
from gateway.api.live.hub import GOING_AWAY, PHASES, LiveHub, SeqMessage
from gateway.api.live.protocol import (
    HelloIn,
    PingIn,
    ProtocolError,
    SubscribeIn,
    parse_client_message,
)
from gateway.api.live.ring import Ring
from gateway.bus import Bus
from gateway.clock import ManualClock
from gateway.model import Alarm, AlarmState, Event, Priority, Reading

INTERVAL = 0.25


def alarm(n: int, transition: str = "activated") -> Alarm:
    state = AlarmState.UNACKNOWLEDGED if transition == "activated" else AlarmState.NORMAL
    return Alarm(
        "tx1-hot@tx1.t", "tx1-hot", "tx1.t", state, Priority.HIGH, n, transition=transition
    )


def event(n: int) -> Event:
    return Event("door.forced", "gate1", n, {"n": n})


@dataclass
class Received:
    """What a client got, in the order its send task would have sent it."""

    snapshots: list[int] = field(default_factory=list)  # the head of each snapshot
    messages: list[tuple[int, SeqMessage]] = field(default_factory=list)
    readings: list[list[Reading]] = field(default_factory=list)

    @property
    def seqs(self) -> list[int]:
        return [s for s, _ in self.messages]


def drain(hub: LiveHub, client: LiveClient, into: Received | None = None) -> Received:
    """Take everything due, like LiveSession._collect, until nothing is left."""
    got = into or Received()
    while True:
        pull = hub.pull(client, limit=7)  # small batches: the cursor logic is exercised
        if pull.snapshot:
            got.snapshots.append(pull.head)
        got.messages.extend(pull.items)
        if client.flush_due:
            readings = client.take_readings()
            if readings:
                got.readings.append(list(readings.values()))
        if not hub.behind(client):
            return got


@pytest_asyncio.fixture(loop_scope="function")
async def hub() -> AsyncIterator[LiveHub]:
    bus = Bus()
    h = LiveHub(bus, ManualClock(), buffer=50, reading_interval=INTERVAL)
    task = asyncio.create_task(h.run())
    yield h
    bus.close()
    await asyncio.wait_for(task, 5)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- the ring ----------------------------------------------------------------------


def test_ring_holds_the_last_n_in_seq_order_and_refuses_what_it_dropped() -> None:
    ring: Ring[str] = Ring(3)
    assert (ring.first, ring.head, len(ring)) == (1, 0, 0)
    assert ring.since(1, 10) == []  # head + 1 is a valid (empty) start
    for c in "abcde":
        ring.append(c)
    assert (ring.first, ring.head, len(ring)) == (3, 5, 3)
    assert ring.since(3, 10) == [(3, "c"), (4, "d"), (5, "e")]
    assert ring.since(4, 1) == [(4, "d")]
    assert ring.get(5) == "e" and 2 not in ring and 6 not in ring
    with pytest.raises(KeyError):
        ring.since(2, 10)
    with pytest.raises(KeyError):
        ring.get(6)
    with pytest.raises(ValueError):
        Ring(0)


# -- point filters -------------------------------------------------------------------


def test_point_filter_exact_names_and_globs() -> None:
    f = PointFilter(["tx1.*", "pump1.pressure", "*.temp_?", "gate[12].open"])
    assert f("tx1.winding_temp_a") and f("pump1.pressure") and f("tx9.temp_b")
    assert f("gate2.open")
    assert not f("pump1.running") and not f("tx10.temp_ab") and not f("gate3.open")
    assert not f("TX1.load")  # case-sensitive, like point names
    assert PointFilter(["*"])("anything.at_all")
    assert not PointFilter([]) and not PointFilter([])("tx1.a")


# -- cursors, the ring and snapshots -----------------------------------------------


async def test_first_pull_is_a_snapshot_then_every_message_in_order(hub: LiveHub) -> None:
    await hub.bus.publish(event(1))  # before the client: covered by its snapshot
    await settle()
    c = hub.connect("c", "viewer")
    got = drain(hub, c)
    assert got.snapshots == [1] and got.messages == []
    sent: list[SeqMessage] = [alarm(2), event(3), alarm(4, "cleared")]
    await hub.bus.publish_many(sent)
    await settle()
    assert c.wake.is_set()  # the hub woke it; it did not send anything itself
    drain(hub, c, got)
    assert got.messages == [(2, sent[0]), (3, sent[1]), (4, sent[2])]


async def test_raw_card_reads_never_reach_a_screen(hub: LiveHub) -> None:
    """A reader's own report holds the whole UID, a QR token or a PIN; the page
    gets the access service's passage event (card masked) instead."""
    c = hub.connect("c", "admin")
    drain(hub, c)
    raw = [
        Event("card.presented", "gate_in", 1, {"uid": "04A1B2C3", "format": "wiegand26"}),
        Event("card.presented", "gate_in", 2, {"format": "qr", "value": "GWV1:secret"}),
        Event("card.decision", "ctrl", 3, {"uid": "04A1B2C3", "granted": True}),
    ]
    passage = Event("access.granted", "gate", 4, {"card": "**B2C3"})
    await hub.bus.publish_many([*raw, passage])
    await settle()
    got = drain(hub, c)
    assert [m for _, m in got.messages] == [passage]


async def test_a_client_that_fell_off_the_ring_gets_a_fresh_snapshot(hub: LiveHub) -> None:
    c = hub.connect("slow", "viewer")
    drain(hub, c)
    await hub.bus.publish_many(event(i) for i in range(49))
    await settle()
    got = drain(hub, c)  # 49 behind, ring of 50: all still there
    assert got.snapshots == [] and got.seqs == list(range(1, 50))
    await hub.bus.publish_many(event(i) for i in range(60))  # now 60 behind a ring of 50
    await settle()
    got = drain(hub, c)
    assert got.snapshots == [109] and got.messages == []
    assert hub.fell_behind == 1 and c.cursor == 110
    await hub.bus.publish(alarm(200))
    await settle()
    assert drain(hub, c).seqs == [110]  # and then on from the snapshot's head


async def test_resume_replays_exactly_the_missed_messages_in_order(hub: LiveHub) -> None:
    first = hub.connect("page", "guard")
    drain(hub, first)
    await hub.bus.publish_many([alarm(1), event(2), alarm(3, "cleared")])
    await settle()
    seen = drain(hub, first)
    last = seen.seqs[-1]
    hub.disconnect(first)  # the connection drops; three more happen meanwhile
    missed: list[SeqMessage] = [event(4), alarm(5), alarm(6, "cleared")]
    await hub.bus.publish_many(missed)
    await settle()
    again = hub.connect("page", "guard", resume=(hub.epoch, last))
    assert again.resumed
    got = drain(hub, again)
    assert got.snapshots == []
    assert got.messages == [(4, missed[0]), (5, missed[1]), (6, missed[2])]


async def test_resume_at_the_head_replays_nothing(hub: LiveHub) -> None:
    await hub.bus.publish_many([event(1), event(2)])
    await settle()
    c = hub.connect("c", "viewer", resume=(hub.epoch, 2))
    got = drain(hub, c)
    assert c.resumed and got.snapshots == [] and got.messages == []


@pytest.mark.parametrize(
    ("why", "resume"),
    [
        ("another process (unknown epoch)", ("0123456789abcdef", 3)),
        ("a seq from the future", (None, 99)),
        ("a seq the ring no longer holds", (None, 5)),
    ],
)
async def test_a_resume_the_hub_cannot_honour_gets_a_snapshot(
    hub: LiveHub, why: str, resume: tuple[str | None, int]
) -> None:
    await hub.bus.publish_many(event(i) for i in range(60))  # ring of 50 holds 11..60
    await settle()
    c = hub.connect("c", "viewer", resume=(resume[0] or hub.epoch, resume[1]))
    got = drain(hub, c)
    assert not c.resumed, why
    assert got.snapshots == [60] and got.messages == [], why


# -- readings ------------------------------------------------------------------------


async def test_readings_coalesce_for_a_slow_client_while_alarms_are_all_kept(
    hub: LiveHub,
) -> None:
    clock = hub.clock
    assert isinstance(clock, ManualClock)
    fast = hub.connect("fast", "viewer", ["*"])
    slow = hub.connect("slow", "viewer", ["*"])
    fast_got, slow_got = drain(hub, fast), drain(hub, slow)
    points = [f"tx{i}.t" for i in range(10)]
    alarms = []
    # 2,000 readings and 20 alarm transitions, in 20 rounds of one reading interval.
    for rnd in range(20):
        batch: list[Reading | Alarm] = [
            Reading(points[i % 10], float(rnd * 100 + i), rnd * 100 + i) for i in range(100)
        ]
        alarms.append(alarm(rnd, "activated" if rnd % 2 == 0 else "cleared"))
        batch.insert(50, alarms[-1])
        hub.ingest(batch)  # as the bus hands them over (the bus coalesces too, when behind)
        await clock.advance(INTERVAL)
        drain(hub, fast, fast_got)  # the slow one takes nothing while all this happens
    assert [m for _, m in fast_got.messages] == alarms
    assert len(fast_got.readings) == 20  # one readings message per interval, not per reading
    assert all(len(batch) == 10 for batch in fast_got.readings)

    assert slow.flush_due and len(slow.pending) == 10  # one per point, however long it stalls
    drain(hub, slow, slow_got)
    assert [m for _, m in slow_got.messages] == alarms  # every transition, in order
    assert slow_got.seqs == list(range(1, 21))
    assert len(slow_got.readings) == 1
    assert {r.point: r.value for r in slow_got.readings[0]} == {
        p: float(1990 + i) for i, p in enumerate(points)
    }
    assert slow.readings_replaced == 19 * 10  # each interval's 10 replaced the previous 10


async def test_readings_wait_for_the_interval_and_only_subscribers_get_them(
    hub: LiveHub,
) -> None:
    clock = hub.clock
    assert isinstance(clock, ManualClock)
    tx = hub.connect("tx", "viewer", ["tx1.*"])
    pump = hub.connect("pump", "viewer", ["pump1.pressure"])
    nothing = hub.connect("none", "viewer", [])
    for c in (tx, pump, nothing):
        drain(hub, c)
    hub.ingest(
        [Reading("tx1.a", 1.0, 1), Reading("tx1.b", 2.0, 2), Reading("pump1.pressure", 3, 3)]
    )
    assert drain(hub, tx).readings == [] and not tx.pending  # not before the interval
    await clock.advance(INTERVAL)
    assert hub.subscribers("tx1.a") == {tx} and hub.subscribers("pump1.pressure") == {pump}
    assert [r.point for r in drain(hub, tx).readings[0]] == ["tx1.a", "tx1.b"]
    assert [r.point for r in drain(hub, pump).readings[0]] == ["pump1.pressure"]
    assert drain(hub, nothing).readings == [] and not nothing.pending
    await clock.advance(INTERVAL)
    assert not tx.flush_due  # nothing new: no empty readings message


async def test_subscribe_replaces_the_patterns_and_seeds_the_latest_values(
    hub: LiveHub,
) -> None:
    clock = hub.clock
    assert isinstance(clock, ManualClock)
    hub.ingest([Reading("tx1.a", 1.0, 1), Reading("pump1.pressure", 0.3, 2)])
    c = hub.connect("c", "viewer", ["tx1.*"])  # the latest of its points come at once
    drain(hub, c)
    await clock.advance(INTERVAL)
    assert [(r.point, r.value) for r in drain(hub, c).readings[0]] == [("tx1.a", 1.0)]
    hub.ingest([Reading("tx1.a", 5.0, 3)])
    hub.subscribe(c, ["pump*.*"])  # tx1 dropped, its pending reading with it
    assert hub.subscribers("tx1.a") == frozenset() and hub.subscribers("pump1.pressure") == {c}
    hub.ingest([Reading("tx1.a", 6.0, 4), Reading("pump2.flow", 9.0, 5)])  # a new point too
    await clock.advance(INTERVAL)
    got = drain(hub, c).readings[0]
    assert [(r.point, r.value) for r in got] == [("pump1.pressure", 0.3), ("pump2.flow", 9.0)]
    hub.disconnect(c)
    assert hub.subscribers("pump2.flow") == frozenset() and c not in hub.clients


async def test_clients_of_every_point_share_each_batch_and_copy_it_to_change_it(
    hub: LiveHub,
) -> None:
    clock = hub.clock
    assert isinstance(clock, ManualClock)
    a, b = hub.connect("a", "viewer", ["*"]), hub.connect("b", "viewer", ["*"])
    r1, r2, r3 = Reading("x.a", 1, 1), Reading("x.b", 2, 2), Reading("x.a", 3, 3)
    hub.ingest([r1, r2])
    await clock.advance(INTERVAL)
    assert a.pending is b.pending  # one dict, so one rendering, for both
    taken = a.take_readings()
    hub.ingest([r3])
    await clock.advance(INTERVAL)  # b did not take the last batch: it merges this one
    assert a.pending == {"x.a": r3} and b.pending == {"x.a": r3, "x.b": r2}
    assert taken == {"x.a": r1, "x.b": r2}  # b's merge did not touch what a took
    assert b.readings_replaced == 1

    hub.subscribe(b, ["x.b"])  # from every point to one
    assert b.pending == {"x.b": r2}
    assert hub.subscribers("x.a") == {a} and hub.subscribers("x.b") == {a, b}
    b.take_readings()
    hub.subscribe(b, ["*"])  # and back: the point it did not have comes at once
    assert b.pending == {"x.a": r3} and hub.subscribers("x.a") == {a, b}


async def test_clients_get_their_readings_in_slices_of_the_interval(hub: LiveHub) -> None:
    clock = hub.clock
    assert isinstance(clock, ManualClock)
    clients = [hub.connect(f"c{i}", "viewer", ["*"]) for i in range(PHASES + 1)]
    assert [c.phase for c in clients] == [*range(PHASES), 0]
    hub.ingest([Reading("x.a", 1, 1)])
    slot = INTERVAL / PHASES
    await clock.advance(slot * 1.5)  # the first slice: the batch is handed out to all...
    assert all(c.pending for c in clients)
    due = [c.phase for c in clients if c.flush_due]
    assert due == [0, 0]  # ... but only the first phase is woken to send it
    await clock.advance(slot * 3)
    assert [c.phase for c in clients if c.flush_due] == [0, 1, 2, 3, 0]
    await clock.advance(INTERVAL)
    assert all(c.flush_due for c in clients)  # everyone within one interval


# -- stopping ------------------------------------------------------------------------


async def test_close_asks_every_client_to_go_away_and_waits_for_them() -> None:
    bus, clock = Bus(), ManualClock()
    hub = LiveHub(bus, clock, buffer=10)
    a, b = hub.connect("a", "viewer"), hub.connect("b", "viewer")
    closing = asyncio.create_task(hub.close(grace=2.0))
    await settle()
    assert (a.close_code, b.close_code) == (GOING_AWAY, GOING_AWAY)
    assert a.wake.is_set() and not closing.done()
    hub.disconnect(a)
    hub.disconnect(b)
    await asyncio.wait_for(closing, 1)
    late = hub.connect("late", "viewer")  # a client that arrives while stopping
    assert late.close_code == GOING_AWAY


async def test_close_gives_up_after_the_grace_period() -> None:
    hub = LiveHub(Bus(), ManualClock(), buffer=10)
    stuck = hub.connect("stuck", "viewer")  # its send task never gets to close
    closing = asyncio.create_task(hub.close(grace=2.0))
    await settle()
    assert isinstance(hub.clock, ManualClock)
    await hub.clock.advance(2.0)
    await asyncio.wait_for(closing, 1)
    assert stuck in hub.clients and stuck.close_code == GOING_AWAY


async def test_the_bus_closing_ends_run_and_closes_the_clients() -> None:
    bus = Bus()
    hub = LiveHub(bus, ManualClock(), buffer=10)
    task = asyncio.create_task(hub.run())
    c = hub.connect("c", "viewer")
    await bus.publish(event(1))
    bus.close()
    await asyncio.wait_for(task, 1)
    assert hub.seq == 1 and c.close_code == GOING_AWAY


# -- client messages -------------------------------------------------------------------


def test_client_messages_parse_and_bad_ones_say_why() -> None:
    hello = parse_client_message('{"type":"hello","resume":{"epoch":"e1","seq":4},"points":["*"]}')
    assert isinstance(hello, HelloIn) and hello.resume is not None and hello.resume.seq == 4
    assert isinstance(parse_client_message('{"type":"hello"}'), HelloIn)
    assert isinstance(parse_client_message('{"type":"subscribe","points":[]}'), SubscribeIn)
    assert isinstance(parse_client_message('{"type":"ping"}'), PingIn)
    bad = {
        "{not json": "not JSON",
        "[1, 2]": "expected an object",
        '{"points":["*"]}': "expected an object with a 'type'",
        '{"type":"dance"}': "does not match any of the expected tags",
        '{"type":"ping","extra":1}': "ping.extra: Extra inputs are not permitted",
        '{"type":"subscribe"}': "subscribe.points: Field required",
        '{"type":"subscribe","points":[""]}': "subscribe.points.0",
        '{"type":"hello","resume":{"epoch":"e","seq":-1}}': "hello.resume.seq",
        '{"type":"subscribe","points":["*"' + ',"*"' * 1000 + "]}": "at most 1000",
        '{"type":"ping","x":"' + "a" * 70_000 + '"}': "longer than",
    }
    for text, why in bad.items():
        with pytest.raises(ProtocolError) as info:
            parse_client_message(text)
        assert why in str(info.value), (text[:60], str(info.value))
