"""Combo rules: all/any/not over point comparisons and other rules' conditions."""

import pytest

from gateway.model import Event, Quality
from gateway.rules import RuleReferenceError

from .rutil import at, engine, rd, summary

TANK_LOW = {"id": "tank-low", "point": "tank1.level", "l": 1.0}
DRY_RUN = {
    "id": "dry-run",
    "type": "combo",
    "priority": "high",
    "all": [
        {"point": "pump1.running", "op": "eq", "value": True},
        {
            "any": [
                {"point": "pump1.outlet_pressure", "op": "lt", "value": 0.5},
                {"rule": "tank-low"},
            ]
        },
    ],
}


def test_combo_of_point_terms_and_another_rules_condition() -> None:
    eng = engine(TANK_LOW, DRY_RUN)
    info = eng.infos["dry-run"]
    assert info.kind == "combo" and info.category.value == "water"  # the source pump1 is a pump
    assert eng.on_reading(rd("pump1.running", True, 0)) == []  # pressure unknown yet
    assert eng.on_reading(rd("pump1.outlet_pressure", 2.0, 1)) == []
    got = eng.on_reading(rd("tank1.level", 0.5, 2))
    assert [(c.rule, c.source, c.active) for c in got] == [
        ("tank-low", "tank1.level", True),
        ("dry-run", "pump1", True),
    ]
    assert got[1].device == "pump1" and got[1].data["values"]["pump1.running"] is True
    got = eng.on_reading(rd("pump1.running", False, 3))
    assert summary(got) == [("pump1", False, "")]
    got = eng.on_reading(rd("pump1.running", True, 4))
    assert summary(got) == [("pump1", True, "")]
    got = eng.on_reading(rd("tank1.level", 3.0, 5))
    assert [(c.rule, c.active) for c in got] == [("tank-low", False), ("dry-run", False)]


def test_combo_not_with_delays_and_bad_quality_ignored() -> None:
    eng = engine(
        {
            "id": "no-flow",
            "type": "combo",
            "source": "pump1",
            "not": {"point": "pump1.outlet_pressure", "op": "ge", "value": 0.5},
            "on_delay_s": 10,
            "off_delay_s": 5,
        }
    )
    assert eng.on_reading(rd("pump1.outlet_pressure", 0.1, 0)) == []
    assert eng.on_reading(rd("pump1.outlet_pressure", 0.9, 0, Quality.BAD)) == []
    got = eng.tick(at(10))
    assert [(c.source, c.active, c.ts) for c in got] == [("pump1", True, at(10))]
    assert eng.on_reading(rd("pump1.outlet_pressure", 0.9, 11)) == []
    assert [c.active for c in eng.tick(at(16))] == [False]


def test_combo_on_an_offline_rule_with_source() -> None:
    eng = engine(
        {"id": "offline", "type": "offline"},
        {
            "id": "both-pumps-down",
            "type": "combo",
            "priority": "critical",
            "all": [{"rule": "offline", "source": "pump1"}, {"rule": "offline", "source": "pump2"}],
        },
    )
    assert eng.infos["both-pumps-down"].latching  # critical rules latch by default
    assert [c.rule for c in eng.on_event(Event("device.offline", "pump1", at(0)))] == ["offline"]
    got = eng.on_event(Event("device.offline", "pump2", at(1)))
    assert [(c.rule, c.source) for c in got] == [("offline", "pump2"), ("both-pumps-down", "site")]


def test_combo_naming_an_unknown_rule_or_a_loop_is_refused() -> None:
    with pytest.raises(RuleReferenceError, match=r"'dry-run'.*'tank-low', which does not exist"):
        engine(DRY_RUN)
    a = {"id": "a", "type": "combo", "any": [{"rule": "b"}]}
    b = {"id": "b", "type": "combo", "not": {"rule": "a"}}
    with pytest.raises(RuleReferenceError, match="loop: a -> b -> a"):
        engine(a, b)
