"""Rule configuration: validation with clear messages, defaults, profile limits."""

import pytest
from pydantic import BaseModel, Field, ValidationError

from gateway.driver import RuleSpec
from gateway.model import Category, Priority
from gateway.rules import (
    CalendarConfig,
    DuplicateRuleError,
    LimitRuleConfig,
    OfflineRuleConfig,
    RuleConfig,
    RuleEngine,
    RuleError,
    UnknownPointError,
    default_category,
    default_offline_rule,
    rule_from_spec,
    rule_problems,
)

from .rutil import KINDS, POINTS, engine, rd, rules


def message(specs: list[dict[str, object]]) -> str:
    with pytest.raises(ValidationError) as e:
        rules(*specs)
    return str(e.value)


def test_a_bad_point_pattern_is_a_load_error() -> None:
    assert "'tx1' is not of the form '<device>.<point>'" in message(
        [{"id": "r", "point": "tx1", "h": 1}]
    )
    assert "unclosed '['" in message([{"id": "r", "points": ["pump[12.p"], "h": 1}])
    assert "either 'point' or 'points'" in message([{"id": "r", "h": 1}])


def test_levels_must_rise_ll_l_h_hh() -> None:
    text = message([{"id": "hot", "point": "tx1.winding_temp", "h": 130, "hh": 120}])
    assert "rule 'hot': HH (120) must be above H (130); levels rise LL < L < H < HH" in text
    text = message([{"id": "r", "point": "a.b", "high": 1, "low": 5}])
    assert "H (1) must be above L (5)" in text
    assert "has no level" in message([{"id": "r", "point": "a.b"}])
    assert "'high' and 'h' are the same level" in message(
        [{"id": "r", "point": "a.b", "high": 1, "h": 2}]
    )


def test_an_empty_combo_and_other_malformed_rules_are_refused() -> None:
    assert "'all' is empty: give at least one term" in message(
        [{"id": "c", "type": "combo", "all": []}]
    )
    assert "'any' is empty" in message([{"id": "c", "type": "combo", "all": [{"any": []}]}])
    assert "exactly one of all, any, not" in message([{"id": "c", "type": "combo"}])
    assert "a combo term needs one of 'point', 'rule', 'all', 'any' or 'not'" in message(
        [{"id": "c", "type": "combo", "all": [{"pont": "a.b"}]}]
    )
    assert "'gt' compares numbers" in message(
        [{"id": "c", "type": "combo", "not": {"point": "a.b", "op": "gt", "value": "x"}}]
    )
    assert "exactly one of equals, not_equals, in, not_in (got equals, in)" in message(
        [{"id": "s", "type": "state", "point": "a.b", "equals": 1, "in": [2]}]
    )
    assert "set rise_per_min, fall_per_min or both" in message(
        [{"id": "r", "type": "rate", "point": "a.b"}]
    )
    assert "'nope'" in message([{"id": "r", "type": "nope"}])
    assert "time '25:00' is not 'HH:MM'" in message(
        [{"id": "r", "point": "a.b", "h": 1, "schedule": {"between": ["22:00", "25:00"]}}]
    )
    with pytest.raises(ValidationError, match="listed both as holiday and as make-up"):
        CalendarConfig.model_validate({"holidays": ["2026-10-10"], "workdays": ["2026-10-10"]})


def test_an_unknown_point_or_a_pattern_matching_nothing_names_rule_and_pattern() -> None:
    with pytest.raises(UnknownPointError) as e:
        engine({"id": "hot", "point": "tx1.winding_tmp", "h": 100})
    assert e.value.rule == "hot" and e.value.pattern == "tx1.winding_tmp"
    assert "did you mean 'tx1.winding_temp'?" in str(e.value)
    with pytest.raises(UnknownPointError) as e:
        engine({"id": "p", "points": ["tx1.winding_temp", "boiler*.temp"], "h": 1})
    assert e.value.rule == "p" and e.value.pattern == "boiler*.temp"
    assert str(e.value).startswith("rule 'p': pattern 'boiler*.temp' matches no point")
    with pytest.raises(DuplicateRuleError, match="rule 'a'"):
        engine({"id": "a", "point": "tx1.winding_temp", "h": 1}, {"id": "a", "type": "offline"})


def test_rule_problems_lists_every_problem_at_once() -> None:
    problems = rule_problems(
        rules(
            {"id": "a", "point": "tx1.nope", "h": 1},
            {"id": "b", "points": ["zz*.x"], "h": 1},
            {"id": "b", "type": "offline"},
            {"id": "c", "type": "combo", "any": [{"rule": "ghost"}]},
            {"id": "d", "point": "gone.point", "h": 1, "enabled": False},
        ),
        known_points=POINTS,
        device_kinds=KINDS,
    )
    assert [(type(p).__name__, p.rule) for p in problems] == [
        ("UnknownPointError", "a"),
        ("UnknownPointError", "b"),
        ("DuplicateRuleError", "b"),
        ("RuleReferenceError", "c"),
    ]


def test_points_learned_at_run_time_match_globs_lazily() -> None:
    eng = engine(
        {"id": "warm", "points": ["*.temperature"], "h": 30},
        points=[*POINTS, "*.temperature"],  # an MQTT driver learns these at run time
    )
    assert [c.source for c in eng.on_reading(rd("office3.temperature", 31, 0))] == [
        "office3.temperature"
    ]
    assert eng.on_reading(rd("office3.humidity", 99, 0)) == []


def test_type_defaults_to_limit_and_a_list_of_rules_fits_in_a_site_model() -> None:
    class Site(BaseModel):
        rules: list[RuleConfig] = Field(default_factory=list, description="Alarm rules.")
        calendar: CalendarConfig = Field(default_factory=CalendarConfig, description="Calendar.")

    site = Site.model_validate(
        {
            "rules": [
                {"id": "hot", "point": "tx1.winding_temp", "high": 130, "priority": "high"},
                {"id": "off", "type": "offline", "devices": ["pump*"]},
            ],
            "calendar": {"holidays": ["2026-10-01"]},
        }
    )
    assert isinstance(site.rules[0], LimitRuleConfig) and site.rules[0].origin == "site"
    assert isinstance(site.rules[1], OfflineRuleConfig)
    assert site.rules[0].levels() == {"H": (130.0, Priority.HIGH)}
    assert Site.model_json_schema()  # documentation is generated from the models


def test_rule_from_spec_and_the_default_offline_rule() -> None:
    spec = RuleSpec(
        id="tx1-winding",
        point="tx1.winding_temp",
        high=130,
        priority=Priority.HIGH,
        description="绕组温度高",
        origin="profile dry_type_tc",
    )
    rule = rule_from_spec(spec)
    assert isinstance(rule, LimitRuleConfig) and rule.origin == "profile dry_type_tc"
    assert rule.levels() == {"H": (130.0, Priority.HIGH)}
    eng = RuleEngine(
        [rule, default_offline_rule()],
        known_points=POINTS,
        device_kinds=KINDS,
        timezone="Asia/Shanghai",
        calendar=CalendarConfig(),
        start_ns=0,
    )
    info = eng.infos["tx1-winding"]
    assert info.description == "绕组温度高" and info.origin == "profile dry_type_tc"
    assert eng.infos["device-offline"].origin == "default"
    with pytest.raises(RuleError, match=r"rule 'x': default limit from a driver: .*must be above"):
        rule_from_spec(RuleSpec(id="x", point="a.b", high=1, low=5))
    off = default_offline_rule()
    assert off.id == "device-offline" and off.priority is Priority.MEDIUM
    assert off.devices == ["*"] and off.origin == "default"


def test_infos_carry_category_route_and_latching_defaults() -> None:
    eng = engine(
        {"id": "hot", "point": "tx1.winding_temp", "h": 100, "priority": "critical"},
        {"id": "lvl", "point": "tank1.level", "l": 1, "route": "plumbing", "latching": True},
        {"id": "room", "point": "room1.temp", "h": 30, "category": "it", "enabled": False},
        {"id": "fire", "type": "event", "event": "fire.alarm"},
        {"id": "off", "type": "offline"},
    )
    infos = eng.infos
    assert (infos["hot"].category, infos["hot"].route, infos["hot"].latching) == (
        Category.ELECTRICAL,
        "electrical",
        True,
    )
    assert (infos["lvl"].category, infos["lvl"].route, infos["lvl"].latching) == (
        Category.WATER,
        "plumbing",
        True,
    )
    assert infos["room"].category is Category.IT  # disabled rules are still described
    assert infos["fire"].category is Category.FIRE
    assert infos["off"].category is Category.IT and infos["off"].origin == "site"


def test_default_category_by_device_kind() -> None:
    assert default_category("transformer") is Category.ELECTRICAL
    assert default_category("pump") is Category.WATER
    assert default_category("card_reader") is Category.SECURITY
    assert default_category("fire_panel") is Category.FIRE
    assert default_category("sensor") is Category.HVAC
    assert default_category("other") is Category.IT
    assert default_category(None) is Category.IT
