"""After a restart the alarm manager seeds the conditions it had active: they
clear when evaluation says so, without being announced again."""

from gateway.model import Event

from .rutil import T0, at, engine, feed, rd

TEMP = "tx1.winding_temp"
HOT = {"id": "hot", "point": TEMP, "h": 100, "hh": 130, "deadband": 5}


def test_seeded_limit_stays_quiet_while_still_high_then_clears() -> None:
    eng = engine(HOT)
    eng.seed([("hot", TEMP)])
    assert eng.next_deadline() is None
    assert feed(eng, TEMP, [(0, 140), (1, 135)]) == []  # still active: nothing new to say
    got = feed(eng, TEMP, [(2, 120), (3, 90)])  # from the level now known, changes are told
    assert [(c.active, c.level, c.level_change) for c in got] == [
        (True, "H", True),
        (False, "H", False),
    ]


def test_seeded_limit_clears_on_the_first_normal_reading() -> None:
    eng = engine(HOT)
    eng.seed([("hot", TEMP)])
    got = feed(eng, TEMP, [(0, 20)])
    assert [(c.active, c.level, c.value) for c in got] == [(False, "", 20)]
    assert [c.active for c in feed(eng, TEMP, [(1, 120)])] == [True]  # a new activation


def test_seed_clears_what_is_no_longer_evaluated_on_the_next_tick() -> None:
    eng = engine(
        HOT,
        {"id": "off-rule", "point": "tx2.winding_temp", "h": 1, "enabled": False},
        {
            "id": "daytime",
            "point": "tank1.level",
            "l": 1,
            "schedule": {"between": ["09:00", "17:00"]},  # T0 is 08:00 in Shanghai
        },
    )
    eng.seed(
        [
            ("hot", "tx2.winding_temp"),  # the rule no longer watches that point
            ("off-rule", "tx2.winding_temp"),  # disabled since
            ("daytime", "tank1.level"),  # outside its schedule now
            ("deleted-rule", "x.y"),  # gone: the alarm manager keeps it, marked
        ]
    )
    assert eng.next_deadline() == T0
    got = eng.tick(at(1))
    assert [(c.rule, c.source, c.active, c.data["reason"]) for c in got] == [
        ("hot", "tx2.winding_temp", False, "not_watched"),
        ("off-rule", "tx2.winding_temp", False, "disabled"),
        ("daytime", "tank1.level", False, "schedule"),
    ]
    assert all(c.ts == at(1) for c in got)
    assert eng.tick(at(2)) == []


def test_seeded_event_and_stale_conditions_clear_by_their_own_logic() -> None:
    eng = engine(
        {"id": "burst", "type": "event", "event": "access.denied", "count": 3},
        {"id": "quiet", "type": "stale", "point": TEMP, "max_age_s": 600},
    )
    eng.seed([("burst", "reader1"), ("quiet", TEMP)])
    assert eng.on_event(Event("access.denied", "reader1", at(10))) == []  # still active
    got = eng.tick(at(70))  # a minute after the last event
    assert [(c.rule, c.source, c.active) for c in got] == [("burst", "reader1", False)]
    assert eng.tick(at(600)) == []  # stale, already known
    got = eng.on_reading(rd(TEMP, 70, 601))
    assert [(c.rule, c.active) for c in got] == [("quiet", False)]
