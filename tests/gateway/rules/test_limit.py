"""Limit rules: HH/H/L/LL, deadband, on-delay, off-delay, quality."""

from gateway.model import Priority, Quality
from gateway.rules.condition import ConditionChange

from .rutil import S, at, engine, feed, rd, summary

TEMP = "tx1.winding_temp"


def test_deadband_keeps_a_value_hovering_at_the_limit_from_chattering() -> None:
    eng = engine({"id": "hot", "point": TEMP, "h": 100, "deadband": 5}, units={TEMP: "°C"})
    got = feed(eng, TEMP, [(0, 90), (1, 100), (2, 99), (3, 101), (4, 96), (5, 100.5), (6, 95)])
    assert summary(got) == [(TEMP, True, "H"), (TEMP, False, "H")]
    raised, cleared = got
    assert raised.ts == at(1) and raised.value == 100 and raised.limit == 100.0
    assert raised.unit == "°C" and raised.device == "tx1" and raised.rule == "hot"
    assert cleared.ts == at(6) and cleared.value == 95 and not cleared.level_change


def test_without_deadband_the_same_values_chatter() -> None:
    eng = engine({"id": "hot", "point": TEMP, "h": 100})
    got = feed(eng, TEMP, [(0, 90), (1, 100), (2, 99), (3, 101), (4, 96)])
    assert [c.active for c in got] == [True, False, True, False]


def test_on_delay_ignores_a_short_spike_and_alarms_on_a_lasting_excursion() -> None:
    eng = engine({"id": "hot", "point": TEMP, "h": 100, "on_delay_s": 10})
    assert feed(eng, TEMP, [(0, 120), (5, 90)]) == []  # a 5 s spike
    assert eng.tick(at(20)) == []
    assert feed(eng, TEMP, [(30, 120)]) == []
    assert eng.next_deadline() == at(40)
    assert eng.tick(at(39.9)) == []
    got = eng.tick(at(45))  # the service ticks late: the change keeps the true time
    assert summary(got) == [(TEMP, True, "H")] and got[0].ts == at(40)
    assert eng.next_deadline() is None


def test_a_later_reading_commits_an_elapsed_on_delay_before_it_is_evaluated() -> None:
    eng = engine({"id": "hot", "point": TEMP, "h": 100, "on_delay_s": 10})
    got = feed(eng, TEMP, [(0, 120), (12, 80)])  # no tick in between
    assert [(c.active, c.ts) for c in got] == [(True, at(10)), (False, at(12))]


def test_off_delay_holds_the_alarm_through_a_short_dip() -> None:
    eng = engine({"id": "hot", "point": TEMP, "h": 100, "off_delay_s": 30})
    assert summary(feed(eng, TEMP, [(0, 120)])) == [(TEMP, True, "H")]
    assert feed(eng, TEMP, [(10, 90), (20, 110)]) == []  # back above within 30 s
    assert eng.tick(at(100)) == []
    assert feed(eng, TEMP, [(200, 90)]) == []
    got = eng.tick(at(230))
    assert summary(got) == [(TEMP, False, "H")] and got[0].ts == at(230)


def test_h_to_hh_and_back_are_level_changes_of_one_alarm() -> None:
    eng = engine(
        {"id": "hot", "point": TEMP, "h": 100, "hh": 130, "priority": "medium", "deadband": 2}
    )
    got = feed(eng, TEMP, [(0, 105), (1, 131), (2, 129), (3, 127), (4, 99), (5, 97)])
    assert [(c.active, c.level, c.level_change, c.priority) for c in got] == [
        (True, "H", False, Priority.MEDIUM),
        (True, "HH", True, Priority.HIGH),  # HH: one step above the rule by default
        (True, "H", True, Priority.MEDIUM),  # 127 <= 130 - 2
        (False, "H", False, Priority.MEDIUM),  # 97 <= 100 - 2
    ]
    assert got[1].limit == 130.0 and got[2].limit == 100.0


def test_straight_to_hh_and_straight_back_to_normal() -> None:
    eng = engine(
        {"id": "hot", "point": TEMP, "h": 100, "hh": {"value": 130, "priority": "critical"}}
    )
    got = feed(eng, TEMP, [(0, 140), (1, 50)])
    assert [(c.active, c.level, c.priority) for c in got] == [
        (True, "HH", Priority.CRITICAL),
        (False, "HH", Priority.CRITICAL),
    ]


def test_escalating_waits_the_on_delay_and_falling_back_the_off_delay() -> None:
    eng = engine(
        {"id": "hot", "point": TEMP, "h": 100, "hh": 130, "on_delay_s": 5, "off_delay_s": 5}
    )
    feed(eng, TEMP, [(0, 110)])
    assert summary(eng.tick(at(5))) == [(TEMP, True, "H")]
    assert feed(eng, TEMP, [(6, 140), (8, 120)]) == []  # a 2 s excursion above HH
    assert feed(eng, TEMP, [(10, 140)]) == []
    assert summary(eng.tick(at(15))) == [(TEMP, True, "HH")]
    assert feed(eng, TEMP, [(16, 110)]) == []
    got = eng.tick(at(21))
    assert [(c.level, c.level_change) for c in got] == [("H", True)]


def test_low_levels_mirror_the_high_ones() -> None:
    p = "pump1.outlet_pressure"
    eng = engine({"id": "lowp", "point": p, "l": 0.3, "ll": 0.1, "deadband": 0.05})
    got = feed(eng, p, [(0, 0.5), (1, 0.3), (2, 0.05), (3, 0.12), (4, 0.2), (5, 0.34), (6, 0.36)])
    assert [(c.active, c.level) for c in got] == [
        (True, "L"),
        (True, "LL"),
        (True, "L"),  # 0.2 >= 0.1 + 0.05
        (False, "L"),  # 0.36 >= 0.3 + 0.05
    ]


def test_bad_quality_neither_raises_nor_clears_but_uncertain_is_evaluated() -> None:
    eng = engine({"id": "hot", "point": TEMP, "high": 100})  # the older 'high' shorthand
    assert eng.on_reading(rd(TEMP, 500, 0, Quality.BAD)) == []
    assert summary(eng.on_reading(rd(TEMP, 120, 1, Quality.UNCERTAIN))) == [(TEMP, True, "H")]
    assert eng.on_reading(rd(TEMP, 20, 2, Quality.BAD)) == []
    assert [c.active for c in eng.on_reading(rd(TEMP, 20, 3))] == [False]


def test_points_glob_gives_one_alarm_per_point() -> None:
    eng = engine({"id": "p-high", "points": ["pump*.outlet_pressure"], "h": 1.0})
    got: list[ConditionChange] = []
    for i, p in enumerate(["pump1.outlet_pressure", "pump2.outlet_pressure"]):
        got += eng.on_reading(rd(p, 1.5, i))
    assert [c.source for c in got] == ["pump1.outlet_pressure", "pump2.outlet_pressure"]
    assert eng.infos["p-high"].category.value == "water"


def test_a_point_no_rule_watches_costs_nothing_and_returns_nothing() -> None:
    eng = engine({"id": "hot", "point": TEMP, "h": 100})
    assert eng.on_reading(rd("tank1.level", 1e9, 0)) == []
    assert eng.on_reading(rd("nobody.knows", 1e9, 0)) == []
    assert eng.next_deadline() is None
    assert eng.tick(at(10 * S)) == []
