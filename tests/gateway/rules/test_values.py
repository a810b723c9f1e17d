"""Rate of change, stale data, and state rules."""

from gateway.model import Quality

from .rutil import at, engine, feed, rd, summary

LEVEL = "tank1.level"
FAULT = "pump1.fault_code"


def test_rate_of_rise_alarms_and_clears_when_the_jump_leaves_the_window() -> None:
    eng = engine(
        {"id": "filling", "type": "rate", "point": LEVEL, "rise_per_min": 2, "window_s": 60}
    )
    # a slow rise: 1 per minute
    assert feed(eng, LEVEL, [(0, 10), (30, 10.5), (60, 11), (90, 11.5)]) == []
    # a fast one: v(120 s) - v(60 s) = 14.5 - 11 over the 60 s window: 3.5 per minute
    got = feed(eng, LEVEL, [(120, 14.5)])
    assert summary(got) == [(LEVEL, True, "")]
    assert got[0].data["direction"] == "rise" and got[0].data["rate_per_min"] == 3.5
    assert got[0].limit == 2
    # no more readings (report by exception): the window slides on the timer
    assert eng.next_deadline() is not None
    cleared = eng.tick(at(200))
    assert summary(cleared) == [(LEVEL, False, "")]
    # at 150 s the reference is 11.5 (still 3/min); at 180 s the jump is all there is
    assert cleared[0].ts == at(180)


def test_rate_of_fall_and_bad_samples_are_skipped() -> None:
    eng = engine({"id": "leak", "type": "rate", "point": LEVEL, "fall_per_min": 1, "window_s": 120})
    assert eng.on_reading(rd(LEVEL, 0.0, 10, Quality.BAD)) == []
    got = feed(eng, LEVEL, [(0, 50), (60, 49.5), (120, 47)])  # -3 over 2 min: 1.5/min
    assert [(c.active, c.data["direction"]) for c in got] == [(True, "fall")]


def test_stale_point_including_one_never_seen_since_start() -> None:
    eng = engine({"id": "quiet", "type": "stale", "points": ["tx*.winding_temp"], "max_age_s": 300})
    assert eng.next_deadline() == at(300)
    feed(eng, "tx1.winding_temp", [(100, 70)])
    got = eng.tick(at(300))
    assert summary(got) == [("tx2.winding_temp", True, "")]  # never seen
    assert got[0].data["last_seen"] is None and got[0].ts == at(300)
    assert eng.tick(at(399)) == []
    got = eng.tick(at(400))
    assert summary(got) == [("tx1.winding_temp", True, "")]
    assert got[0].data["last_seen"] == at(100)
    # a bad reading is not fresh data; a good one clears
    assert eng.on_reading(rd("tx2.winding_temp", 1, 401, Quality.BAD)) == []
    got = eng.on_reading(rd("tx2.winding_temp", 71, 402))
    assert summary(got) == [("tx2.winding_temp", False, "")]
    assert eng.infos["quiet"].inhibit_on_upstream_down


def test_stale_timer_re_arms_while_readings_keep_coming() -> None:
    eng = engine({"id": "quiet", "type": "stale", "point": "tx1.winding_temp", "max_age_s": 60})
    for t in range(0, 600, 20):
        feed(eng, "tx1.winding_temp", [(t, 70)])
        assert eng.tick(at(t + 1)) == []
    assert summary(eng.tick(at(580 + 60))) == [("tx1.winding_temp", True, "")]


def test_state_rule_pump_fault_code_not_zero() -> None:
    eng = engine(
        {"id": "pump-fault", "type": "state", "point": FAULT, "not_equals": 0, "priority": "high"}
    )
    got = feed(eng, FAULT, [(0, 0), (1, 0), (2, 7), (3, 9), (4, 0)])
    assert [(c.active, c.value) for c in got] == [(True, 7), (False, 0)]
    assert got[0].limit == 0 and got[0].data["op"] == "not_equals"
    info = eng.infos["pump-fault"]
    assert info.kind == "state" and info.category.value == "water" and not info.latching


def test_state_rule_in_list_with_on_delay_and_marks_device_down() -> None:
    eng = engine(
        {
            "id": "breaker",
            "type": "state",
            "point": "pump1.running",
            "in": ["tripped", "fault"],
            "on_delay_s": 2,
            "marks_device_down": True,
        }
    )
    assert feed(eng, "pump1.running", [(0, "tripped"), (1, "closed")]) == []
    feed(eng, "pump1.running", [(5, "fault")])
    got = eng.tick(at(7))
    assert [(c.active, c.value, c.ts) for c in got] == [(True, "fault", at(7))]
    assert eng.infos["breaker"].marks_device_down


def test_state_rule_compares_numeric_text_as_a_number() -> None:
    eng = engine({"id": "pump-fault", "type": "state", "point": FAULT, "not_equals": 0})
    assert feed(eng, FAULT, [(0, "0")]) == []
    assert [c.active for c in feed(eng, FAULT, [(1, "12")])] == [True]
