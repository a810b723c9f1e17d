"""Event rules (counters, windows, groups, clearing) and offline rules."""

from typing import Any

from gateway.model import Category, Event
from gateway.rules import RuleEngine
from gateway.rules.condition import ConditionChange

from .rutil import at, engine, rd, summary

DENIED = {"id": "denied-burst", "type": "event", "event": "access.denied", "count": 3}


def ev(kind: str, source: str, t: float, **data: Any) -> Event:
    return Event(kind, source, at(t), data)


def send(eng: RuleEngine, events: list[Event]) -> list[ConditionChange]:
    out: list[ConditionChange] = []
    for e in events:
        out.extend(eng.on_event(e))
    return out


def test_three_denied_swipes_at_one_reader_within_a_minute() -> None:
    eng = engine(DENIED)
    got = send(eng, [ev("access.denied", "reader1", t) for t in (0, 20, 40)])
    assert summary(got) == [("reader1", True, "")]
    c = got[0]
    assert c.device == "reader1" and c.value == 3 and c.limit == 3 and c.ts == at(40)
    assert c.data["count"] == 3 and c.data["window_s"] == 60.0
    assert eng.infos["denied-burst"].category is Category.SECURITY


def test_three_denied_swipes_at_three_readers_are_not_a_burst() -> None:
    eng = engine(DENIED)
    assert send(eng, [ev("access.denied", f"reader{i}", i) for i in (1, 2, 3)]) == []


def test_swipes_spread_over_more_than_the_window_do_not_count_together() -> None:
    eng = engine(DENIED)
    assert send(eng, [ev("access.denied", "reader1", t) for t in (0, 40, 61, 110)]) == []
    assert summary(send(eng, [ev("access.denied", "reader1", 115)])) == [("reader1", True, "")]


def test_five_devices_offline_within_a_minute_site_wide() -> None:
    eng = engine(
        {
            "id": "mass-offline",
            "type": "event",
            "event": "device.offline",
            "count": 5,
            "window_s": 60,
            "group_by": "none",
            "priority": "high",
        }
    )
    got = send(eng, [ev("device.offline", f"dev{i}", i * 10) for i in range(5)])
    assert summary(got) == [("site", True, "")]
    assert got[0].device == "" and got[0].ts == at(40)
    assert eng.infos["mass-offline"].category is Category.IT
    # clear_after_s defaults to the window: a minute after the last one
    assert eng.next_deadline() == at(100)
    got = eng.tick(at(100))
    assert summary(got) == [("site", False, "")] and got[0].data["reason"] == "quiet"
    assert eng.next_deadline() is None


def test_clear_after_s_waits_for_quiet_and_further_events_extend_it() -> None:
    eng = engine({**DENIED, "count": 1, "clear_after_s": 300})
    assert [c.active for c in send(eng, [ev("access.denied", "reader1", 0)])] == [True]
    assert send(eng, [ev("access.denied", "reader1", 200)]) == []  # still active
    assert eng.tick(at(300)) == []
    got = eng.tick(at(600))
    assert [(c.active, c.ts) for c in got] == [(False, at(500))]


def test_clear_on_clears_the_same_group_only_and_resets_the_count() -> None:
    eng = engine(
        {
            "id": "forced",
            "type": "event",
            "event": "door.forced",
            "clear_on": ["door.closed"],
            "clear_after_s": 3600,
        }
    )
    got = send(eng, [ev("door.forced", "door1", 0), ev("door.forced", "door2", 1)])
    assert [c.source for c in got] == ["door1", "door2"]
    got = send(eng, [ev("door.closed", "door2", 5)])
    assert summary(got) == [("door2", False, "")] and got[0].data["cleared_by"] == "door.closed"
    assert send(eng, [ev("door.closed", "door3", 6)]) == []
    assert summary(eng.tick(at(3600))) == [("door1", False, "")]


def test_where_filters_and_group_by_a_data_key() -> None:
    eng = engine(
        {
            "id": "card-abuse",
            "type": "event",
            "event": ["access.denied", "access.anti_passback"],
            "where": {"source": "reader*", "direction": "in"},
            "count": 2,
            "group_by": "data.card",
        }
    )
    events = [
        ev("access.denied", "reader1", 0, card="A1", direction="in"),
        ev("access.denied", "gate1", 1, card="A1", direction="in"),  # source filtered out
        ev("access.denied", "reader2", 2, card="A1", direction="out"),  # data filtered out
        ev("access.denied", "reader2", 3, card="B7", direction="in"),
        ev("access.anti_passback", "reader3", 4, card="A1", direction="in"),
    ]
    got = send(eng, events)
    assert summary(got) == [("A1", True, "")] and got[0].device == ""
    assert got[0].data["event_source"] == "reader3"


def test_offline_rule_follows_offline_and_online_events() -> None:
    eng = engine({"id": "offline", "type": "offline", "devices": ["pump*"], "priority": "high"})
    got = send(eng, [ev("device.offline", "pump1", 0, reason="timeout")])
    assert summary(got) == [("pump1", True, "")]
    assert got[0].device == "pump1" and got[0].data["reason"] == "timeout"
    assert send(eng, [ev("device.offline", "tx1", 1)]) == []  # not watched
    assert summary(send(eng, [ev("device.online", "pump1", 30)])) == [("pump1", False, "")]
    info = eng.infos["offline"]
    assert info.marks_device_down and info.inhibit_on_upstream_down


def test_offline_delay_ignores_a_short_outage() -> None:
    eng = engine({"id": "offline", "type": "offline", "delay_s": 60})
    assert send(eng, [ev("device.offline", "tx1", 0), ev("device.online", "tx1", 30)]) == []
    assert eng.tick(at(100)) == []
    send(eng, [ev("device.offline", "tx1", 200)])
    got = eng.tick(at(260))
    assert [(c.source, c.active, c.ts) for c in got] == [("tx1", True, at(260))]


def test_offline_condition_seeded_before_a_restart_clears_on_the_first_good_reading() -> None:
    eng = engine({"id": "offline", "type": "offline"})
    eng.seed([("offline", "tx1")])
    assert eng.on_reading(rd("pump1.outlet_pressure", 1.0, 1)) == []
    got = eng.on_reading(rd("tx1.winding_temp", 70, 2))
    assert [(c.rule, c.source, c.active) for c in got] == [("offline", "tx1", False)]
    assert eng.on_reading(rd("tx1.winding_temp", 70, 3)) == []
