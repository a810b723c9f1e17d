"""AlarmManager on a real SQLite event store, time driven by a ManualClock.

Every test's publish callback (harness.Harness.publish) checks that the
transition is already in the events table when it is announced.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.alarms import (
    ActionNotAllowed,
    AlarmConfigError,
    AlarmManager,
    AlarmNotFound,
    AlarmsConfig,
    InvalidAction,
)
from gateway.alarms.persistence import read_rows
from gateway.clock import ManualClock
from gateway.model import AlarmState, Priority
from gateway.rules.condition import ConditionChange
from gateway.storage.eventstore import EventStore
from tests.gateway.alarms.harness import RULES, START, Harness, until

U, A, RTN, N = "unacknowledged", "acknowledged", "rtn_unacknowledged", "normal"
TEMP = "tx-temp@tx1.temp"


async def test_activate_ack_clear_goes_to_normal_and_the_row_is_deleted(h: Harness) -> None:
    (alarm,) = await h.apply(h.ch("tx-temp", "tx1.temp", value=131.5, level="H"))
    assert (alarm.id, alarm.state, alarm.transition, alarm.priority) == (
        TEMP,
        AlarmState.UNACKNOWLEDGED,
        "activated",
        Priority.HIGH,
    )
    assert (alarm.category, alarm.route, alarm.device) == ("electrical", "electrical", "tx1")
    assert alarm.data["value"] == 131.5 and alarm.data["annunciate"] is True
    assert [r["id"] for r in await read_rows(h.store)] == [TEMP]
    await h.clock.advance(30)
    acked = await h.m.acknowledge(TEMP, "王工", note="去现场看看", origin="api")
    assert (acked.state, acked.user, acked.note) == (AlarmState.ACKNOWLEDGED, "王工", "去现场看看")
    assert acked.data["acked_by"] == "王工" and acked.data["origin"] == "api"
    await h.apply(h.ch("tx-temp", "tx1.temp", active=False))
    assert h.transitions() == [("activated", U), ("acknowledged", A), ("cleared", N)]
    assert await read_rows(h.store) == []
    assert h.m.get(TEMP) is None
    stored = await h.events()
    assert [e.type for e in stored] == ["alarm.activated", "alarm.acknowledged", "alarm.cleared"]
    ack = stored[1]
    assert (ack.data["user"], ack.data["note"], ack.ts) == ("王工", "去现场看看", acked.ts)


async def test_clear_before_ack_then_ack_and_reactivation_counts(h: Harness) -> None:
    await h.apply(h.ch("tx-temp", "tx1.temp"))
    await h.apply(h.ch("tx-temp", "tx1.temp", active=False))
    (again,) = await h.apply(h.ch("tx-temp", "tx1.temp"))
    assert (again.transition, again.state, again.data["count"]) == ("reactivated", U, 2)
    await h.apply(h.ch("tx-temp", "tx1.temp", active=False))
    await h.m.acknowledge(TEMP, "op")
    assert h.transitions() == [
        ("activated", U), ("cleared", RTN), ("reactivated", U), ("cleared", RTN),
        ("acknowledged", N),
    ]  # fmt: skip
    assert {a.id for a in h.published} == {TEMP}  # one alarm per (rule, source)


async def test_level_change_to_higher_priority_re_annunciates(h: Harness) -> None:
    await h.apply(h.ch("tx-temp", "tx1.temp", level="H"))
    await h.m.acknowledge(TEMP, "op")
    (hh,) = await h.apply(
        h.ch("tx-temp", "tx1.temp", level="HH", priority=Priority.CRITICAL, level_change=True)
    )
    assert (hh.transition, hh.state, hh.priority, hh.data["annunciate"]) == (
        "level_changed",
        AlarmState.UNACKNOWLEDGED,
        Priority.CRITICAL,
        True,
    )
    assert hh.data["latched"] is True  # critical latches (latch_critical)
    await h.m.acknowledge(TEMP, "op")
    (back,) = await h.apply(
        h.ch("tx-temp", "tx1.temp", level="H", priority=Priority.HIGH, level_change=True)
    )
    assert (back.state, back.data["annunciate"]) == (AlarmState.ACKNOWLEDGED, False)
    assert await h.apply(h.ch("tx-temp", "tx1.temp", level="H")) == []  # nothing new


async def test_latching_critical_alarm_needs_ack_and_reset(h: Harness) -> None:
    trip = "tx-trip@tx1.breaker"
    await h.apply(h.ch("tx-trip", "tx1.breaker", value=True))
    with pytest.raises(ActionNotAllowed, match="still active") as info:
        await h.m.reset(trip, "eng")
    assert "仍然存在" in info.value.text("zh-CN")
    await h.m.acknowledge(trip, "op")
    with pytest.raises(ActionNotAllowed, match="still active"):
        await h.m.reset(trip, "eng")
    (cleared,) = await h.apply(h.ch("tx-trip", "tx1.breaker", active=False))
    assert cleared.state is AlarmState.ACKNOWLEDGED  # latched: waits for the reset
    assert h.m.get(trip) is not None
    reset = await h.m.reset(trip, "eng", note="breaker inspected")
    assert (reset.transition, reset.state, reset.note) == (
        "reset",
        AlarmState.NORMAL,
        "breaker inspected",
    )
    assert h.m.get(trip) is None and await read_rows(h.store) == []


async def test_latched_alarm_cleared_unacked_needs_ack_before_reset(h: Harness) -> None:
    trip = "tx-trip@tx1.breaker"
    await h.apply(h.ch("tx-trip", "tx1.breaker"))
    (cleared,) = await h.apply(h.ch("tx-trip", "tx1.breaker", active=False))
    assert cleared.state is AlarmState.RTN_UNACKNOWLEDGED
    with pytest.raises(ActionNotAllowed, match="Acknowledge alarm"):
        await h.m.reset(trip, "eng")
    assert (await h.m.acknowledge(trip, "op")).state is AlarmState.ACKNOWLEDGED
    assert (await h.m.reset(trip, "eng")).state is AlarmState.NORMAL


async def test_shelving_with_reason_expires_by_the_clock_and_annunciates_after(h: Harness) -> None:
    await h.apply(h.ch("tx-temp", "tx1.temp"))
    await h.m.acknowledge(TEMP, "op")
    with pytest.raises(InvalidAction, match="reason is required"):
        await h.m.shelve(TEMP, "op", "  ", 600)
    with pytest.raises(InvalidAction, match="at most 24 h"):
        await h.m.shelve(TEMP, "op", "sensor swap", 25 * 3600)
    shelved = await h.m.shelve(TEMP, "op", "sensor swap", 600)
    assert shelved.state is AlarmState.SHELVED and shelved.note == "sensor swap"
    assert shelved.data["shelved_until"] == h.clock.time_ns() + 600 * 10**9
    assert h.m.next_deadline() == shelved.data["shelved_until"]
    await h.apply(h.ch("tx-temp", "tx1.temp", active=False))
    (react,) = await h.apply(h.ch("tx-temp", "tx1.temp"))  # activates while shelved
    assert (react.transition, react.state, react.data["annunciate"]) == (
        "reactivated",
        AlarmState.SHELVED,
        False,
    )
    runner = asyncio.create_task(h.m.run())
    try:
        await h.clock.advance(599)
        assert h.transitions()[-1][0] == "reactivated"
        await h.clock.advance(2)
        await until(lambda: h.transitions()[-1][0] == "shelve_expired", "shelve expiry")
    finally:
        runner.cancel()
    expired = h.published[-1]
    assert (expired.state, expired.data["annunciate"]) == (AlarmState.UNACKNOWLEDGED, True)
    assert h.m.next_deadline() is None


async def test_unshelve_by_hand_and_shelve_of_unknown_alarm(h: Harness) -> None:
    await h.apply(h.ch("door", "gate1"))
    await h.m.shelve("door@gate1", "guard1", "gate propped open for a delivery", 300)
    assert (await h.m.unshelve("door@gate1", "guard1")).state is AlarmState.UNACKNOWLEDGED
    with pytest.raises(AlarmNotFound, match="No alarm nope@x"):
        await h.m.shelve("nope@x", "op", "x", 60)
    with pytest.raises(ActionNotAllowed, match="not shelved"):
        await h.m.unshelve("door@gate1", "guard1")
    with pytest.raises(InvalidAction, match="name of the user"):
        await h.m.acknowledge("door@gate1", "")


async def test_out_of_service_with_reason_and_return(h: Harness) -> None:
    await h.apply(h.ch("pressure", "pump1.outlet", level="L"))
    pid = "pressure@pump1.outlet"
    with pytest.raises(InvalidAction, match="reason is required"):
        await h.m.out_of_service(pid, "eng", "")
    oos = await h.m.out_of_service(pid, "eng", "transmitter broken, ticket 4711")
    assert (oos.state, oos.data["oos_reason"]) == (
        AlarmState.OUT_OF_SERVICE,
        "transmitter broken, ticket 4711",
    )
    (cleared,) = await h.apply(h.ch("pressure", "pump1.outlet", active=False, level="L"))
    assert cleared.state is AlarmState.OUT_OF_SERVICE
    back = await h.m.return_to_service(pid, "eng", note="replaced")
    # it was shown before it went out of service: the ack is still owed
    assert back.state is AlarmState.RTN_UNACKNOWLEDGED
    assert (await h.m.acknowledge(pid, "op")).state is AlarmState.NORMAL
    assert h.m.get(pid) is None


async def test_comment_is_stored_with_who_and_note(h: Harness) -> None:
    await h.apply(h.ch("door", "gate1"))
    with pytest.raises(InvalidAction, match="needs a note"):
        await h.m.comment("door@gate1", "guard1", " ")
    c = await h.m.comment("door@gate1", "guard1", "巡逻到场，门已关好")
    assert (c.transition, c.state, c.user) == ("comment", AlarmState.UNACKNOWLEDGED, "guard1")
    (ev,) = [e for e in await h.events() if e.type == "alarm.comment"]
    assert ev.data["note"] == "巡逻到场，门已关好" and ev.data["user"] == "guard1"


async def test_maintenance_suppresses_every_alarm_of_the_device(h: Harness) -> None:
    await h.apply(h.ch("tx-temp", "tx1.temp"), h.ch("door", "gate1"))
    with pytest.raises(InvalidAction, match="reason is required"):
        await h.m.set_maintenance("tx1", True, "eng")
    (sup,) = await h.m.set_maintenance("tx1", True, "eng", reason="annual service")
    assert (sup.id, sup.transition, sup.state) == (TEMP, "suppressed", AlarmState.SUPPRESSED)
    assert sup.data["suppressed_by"] == ["maintenance:tx1"] and sup.user == "eng"
    with pytest.raises(ActionNotAllowed, match="already in maintenance"):
        await h.m.set_maintenance("tx1", True, "eng", reason="again")
    (trip,) = await h.apply(h.ch("tx-trip", "tx1.breaker"))
    assert trip.state is AlarmState.SUPPRESSED and trip.data["annunciate"] is False
    await h.apply(h.ch("tx-trip", "tx1.breaker", active=False))
    assert h.m.get("tx-trip@tx1.breaker") is None  # never shown: no ack, no reset owed
    (unsup,) = await h.m.set_maintenance("tx1", False, "eng")
    # visible and unacknowledged again: annunciated (the escalator takes it up again)
    assert (unsup.transition, unsup.state, unsup.data["annunciate"]) == (
        "unsuppressed",
        AlarmState.UNACKNOWLEDGED,
        True,
    )
    assert h.m.get("door@gate1").state is AlarmState.UNACKNOWLEDGED  # type: ignore[union-attr]
    notices = [(e.type, e.data["on"]) for e in h.notices]
    assert notices == [("alarm.maintenance", True), ("alarm.maintenance", False)]


async def test_parent_outage_inhibits_offline_and_low_alarms_but_not_high(h: Harness) -> None:
    # s1 depends on pump1, which depends on feeder1
    await h.apply(
        h.ch("pressure", "s1.level", level="H", priority=Priority.MEDIUM),
        h.ch("pressure", "s1.flow", level="L"),
    )
    feeder, *_suppressed = await h.apply(h.ch("device-offline", "feeder1"))
    assert feeder.state is AlarmState.UNACKNOWLEDGED
    assert h.m.down_devices == {"feeder1"}
    suppressed = {(a.id, a.transition) for a in h.published if a.transition == "suppressed"}
    assert suppressed == {("pressure@s1.flow", "suppressed")}  # low level: yes; high: no
    # dependants going offline now are suppressed at once (transitively)
    (pump_off, s1_off) = await h.apply(
        h.ch("device-offline", "pump1"), h.ch("device-offline", "s1")
    )
    assert pump_off.state is s1_off.state is AlarmState.SUPPRESSED
    assert s1_off.data["suppressed_by"] == ["upstream:feeder1", "upstream:pump1"]
    assert pump_off.data["annunciate"] is False
    assert h.m.get("pressure@s1.level").state is AlarmState.UNACKNOWLEDGED  # type: ignore[union-attr]
    # the feeder comes back: pump1 is still down, so s1's alarms stay suppressed
    await h.apply(h.ch("device-offline", "feeder1", active=False))
    assert h.m.get("device-offline@pump1").state is AlarmState.UNACKNOWLEDGED  # type: ignore[union-attr]
    assert h.m.get("device-offline@s1").suppressed_by == ("upstream:pump1",)  # type: ignore[union-attr]
    lifted = await h.apply(h.ch("device-offline", "pump1", active=False))
    after = {a.id: (a.transition, a.state.value, a.data["annunciate"]) for a in lifted}
    assert after["device-offline@s1"] == ("unsuppressed", U, True)  # still active: annunciated now
    assert after["pressure@s1.flow"] == ("unsuppressed", U, True)
    await h.apply(h.ch("device-offline", "s1", active=False))
    assert h.m.get("device-offline@s1").state is AlarmState.RTN_UNACKNOWLEDGED  # type: ignore[union-attr]


async def test_chattering_after_three_activations_in_a_minute(h: Harness) -> None:
    for _ in range(3):
        await h.apply(h.ch("door", "gate1"))
        await h.clock.advance(10)
        await h.apply(h.ch("door", "gate1", active=False))
        await h.clock.advance(10)
    chat = [a for a in h.published if a.transition == "chattering"]
    assert len(chat) == 1 and chat[0].data["chattering"] is True
    assert chat[0].data["activations"] == 3
    await h.apply(h.ch("door", "gate1"))  # a fourth in the same episode: no new transition
    assert len([a for a in h.published if a.transition == "chattering"]) == 1
    deadline = h.m.next_deadline()
    assert deadline is not None
    await h.m.tick(deadline - 1)
    assert h.published[-1].transition == "reactivated"
    await h.m.tick(deadline)
    end = h.published[-1]
    assert (end.transition, end.data["chattering"]) == ("chattering", False)
    assert h.m.next_deadline() is None


async def test_two_activations_in_a_minute_do_not_chatter(h: Harness) -> None:
    for _ in range(3):
        await h.apply(h.ch("door", "gate1"))
        await h.apply(h.ch("door", "gate1", active=False))
        await h.clock.advance(31)
    assert all(a.transition != "chattering" for a in h.published)


async def test_flood_starts_above_ten_in_ten_minutes_and_ends_below_five(h: Harness) -> None:
    for i in range(10):
        await h.apply(h.ch("door", f"gate{i}"))
        await h.clock.advance(30)
    assert not h.m.flood("main").active and h.m.flood("main").count == 10
    await h.apply(h.ch("door", "gate10"))  # the 11th within 10 minutes
    state = h.m.flood("main")
    assert state.active and state.count == 11 and state.since_ns == h.clock.time_ns()
    assert [(e.type, e.data["count"]) for e in h.notices] == [("alarm.flood_started", 11)]
    assert not h.m.flood("east").active
    await h.apply(h.ch("lobby", "door9"))  # another control room
    assert h.m.flood("east").count == 1
    # a shelving's later deadline does not hold up the flood's end
    await h.m.shelve("door@gate0", "op", "known issue", 3600)
    runner = asyncio.create_task(h.m.run())
    try:
        await h.clock.advance(480)  # gate0..gate6 fall out; gate7..gate10 are left
        await until(lambda: len(h.notices) == 2, "flood end")
    finally:
        runner.cancel()
    ended = h.notices[1]
    assert ended.type == "alarm.flood_ended" and ended.data["count"] == 4
    assert ended.data["control_room"] == "main"
    assert not h.m.flood("main").active
    types = [e.type for e in await h.events("alarm.flood")]
    assert types == ["alarm.flood_started", "alarm.flood_ended"]


async def test_unknown_rule_is_handled_and_bad_values_are_stored_safely(h: Harness) -> None:
    (a,) = await h.apply(h.ch("door", "gate1", value=float("nan")))
    assert a.data["value"] == "nan"
    odd = ConditionChange("ghost", "x1.p", "x1", True, h.clock.time_ns(), Priority.HIGH)
    (g,) = await h.apply(odd)
    assert (g.category, g.route, g.priority) == ("it", "it", Priority.HIGH)
    assert h.m.get("ghost@x1.p") is not None


async def test_construction_refusals_and_load_first(store: EventStore) -> None:
    clock = ManualClock(START)

    async def pub(_: object) -> None:
        return None

    rooms = AlarmsConfig(control_rooms=["main", "east"])
    with pytest.raises(AlarmConfigError, match=r"cycle: a -> b -> a"):
        AlarmManager(store, pub, clock, rooms, RULES, {"a": ["b"], "b": ["a"]})
    with pytest.raises(AlarmConfigError, match=r"lobby \('east'\)"):
        AlarmManager(store, pub, clock, AlarmsConfig(), RULES, {})
    m = AlarmManager(store, pub, clock, rooms, RULES, {})
    with pytest.raises(RuntimeError, match="load"):
        await m.tick()


def test_harness_rules_are_consistent() -> None:
    assert all(rule_id == info.id for rule_id, info in RULES.items())
