"""The default access rules, their merge into the site's rules, and the
access cross-checks of the site file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.access.config import AccessConfig
from gateway.access.rules import ACCESS_RULES, ORIGIN, default_rules, rule_text_key
from gateway.config.loader import ConfigError, load_site
from gateway.i18n import catalogue
from gateway.model import Category, Priority
from gateway.registry import load_registry
from gateway.rules import RuleEngine
from gateway.rules.config import EventRuleConfig

ACCESS: dict[str, Any] = {
    "areas": [{"id": "estate"}],
    "doors": [
        {
            "id": "gate1",
            "area": "estate",
            "readers": [{"device": "rd1", "direction": "in"}],
            "relay": {"device": "rd1"},
            "contact": {"point": "dio1.di_03"},
        }
    ],
}

EXPECTED = {
    "access-denied-repeated": ("access.denied", Priority.MEDIUM, 3, 60.0),
    "access-blacklisted": ("access.blacklisted", Priority.HIGH, 1, 60.0),
    "access-out-of-schedule": ("access.out_of_schedule", Priority.LOW, 1, 60.0),
    "access-restricted": ("access.restricted", Priority.HIGH, 1, 60.0),
    "access-antipassback": ("access.antipassback", Priority.LOW, 1, 60.0),
    "access-no-entry": ("access.no_entry", Priority.MEDIUM, 1, 60.0),
    "access-door-forced": ("door.forced", Priority.HIGH, 1, 60.0),
    "access-door-held-prealarm": ("door.held_prealarm", Priority.LOW, 1, 60.0),
    "access-door-held": ("door.held_open", Priority.MEDIUM, 1, 60.0),
    "access-tailgate": ("access.tailgate", Priority.MEDIUM, 1, 60.0),
    "access-reader-tamper": ("reader.tamper", Priority.HIGH, 1, 60.0),
    "access-reader-power": ("reader.power_fail", Priority.MEDIUM, 1, 60.0),
    "access-read-errors": ("card.read_error", Priority.LOW, 5, 60.0),
}


def test_the_default_rule_table() -> None:
    rules = default_rules(AccessConfig.model_validate(ACCESS))
    assert [r.id for r in rules] == list(EXPECTED)
    for r in rules:
        assert isinstance(r, EventRuleConfig)
        event, priority, count, window = EXPECTED[r.id]
        assert (r.event, r.priority, r.count, r.window_s) == (event, priority, count, window)
        assert r.origin == ORIGIN and r.category is Category.SECURITY
        assert r.group_by == "source"
    by_id = {r.id: r for r in rules}
    assert by_id["access-door-forced"].clear_types() == ["door.closed"]
    assert by_id["access-door-held"].clear_types() == ["door.closed"]
    assert "door.closed" in by_id["access-door-held-prealarm"].clear_types()
    assert by_id["access-tailgate"].clear_after_s == 120
    assert by_id["access-reader-tamper"].clear_types() == ["reader.tamper_cleared"]
    assert by_id["access-reader-power"].clear_types() == ["reader.power_ok"]


def test_no_rules_without_doors_or_when_disabled() -> None:
    assert default_rules(AccessConfig()) == []
    assert default_rules(AccessConfig.model_validate({**ACCESS, "enabled": False})) == []


def test_descriptions_are_english_in_the_rule_and_translated_in_the_catalogue() -> None:
    en, zh = catalogue("en"), catalogue("zh-CN")
    for rule in ACCESS_RULES:
        key = rule_text_key(rule.id)
        assert en[key] == rule.description
        assert zh[key] and zh[key] != rule.description


def site_file(tmp: Path, **extra: Any) -> Path:
    doc: dict[str, Any] = {
        "version": 1,
        "site": {"id": "s1", "timezone": "Asia/Shanghai"},
        "data_dir": str(tmp / "var"),
        "devices": [
            {"id": "gate1", "kind": "gate"},
            {"id": "rd1", "kind": "card_reader"},
            {"id": "dio1", "kind": "other", "points": {"di_03": {}}},
        ],
        "access": ACCESS,
    }
    doc.update(extra)
    path = tmp / "site.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_effective_rules_merge_and_a_site_rule_replaces_a_default(tmp_path: Path) -> None:
    mine = {
        "id": "access-denied-repeated",
        "type": "event",
        "event": "access.denied",
        "count": 5,
        "priority": "high",
    }
    site = load_site(site_file(tmp_path, rules=[mine]), load_registry())
    ids = [r.id for r in site.rules]
    assert ids[0] == "device-offline"
    assert ids.count("access-denied-repeated") == 1
    replaced = next(r for r in site.rules if r.id == "access-denied-repeated")
    assert isinstance(replaced, EventRuleConfig)
    assert (replaced.count, replaced.priority, replaced.origin) == (5, Priority.HIGH, "site")
    forced = next(r for r in site.rules if r.id == "access-door-forced")
    assert forced.origin == "access"
    # the engine builds every one of them
    engine = RuleEngine(
        site.rules,
        known_points=["dio1.di_03"],
        device_kinds=site.device_kinds(),
        timezone="Asia/Shanghai",
        calendar=site.config.calendar,
        start_ns=0,
    )
    assert {i for i in engine.infos} >= set(EXPECTED)


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (lambda d: d["devices"].__setitem__(0, {"id": "gate1", "kind": "pump"}), "id", "kind"),
        (lambda d: d["devices"].pop(0), "id", "not defined"),
        (lambda d: d["devices"].__setitem__(1, {"id": "rd1", "kind": "camera"}), "device", "kind"),
        (lambda d: d["access"]["doors"][0]["relay"].update(device="nope"), "device", "relay"),
        (lambda d: d["access"]["doors"][0]["contact"].update(point="dio1.di_3"), "point", "di_03"),
        (lambda d: d["access"]["doors"][0]["contact"].update(point="dioX.di_3"), "point", "dioX"),
        (
            lambda d: d["access"]["doors"][0].update(exit_button={"device": "btn"}),
            "device",
            "btn",
        ),
    ],
)
def test_cross_checks_point_at_the_access_field(
    tmp_path: Path, change: Any, path: str, words: str
) -> None:
    good = site_file(tmp_path)
    load_site(good, load_registry())  # the base file is clean
    doc = json.loads(good.read_text())
    doc["access"] = json.loads(json.dumps(ACCESS))
    change(doc)
    good.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as err:
        load_site(good, load_registry())
    problems = [p for p in err.value.problems if p.path.startswith("access.doors[0]")]
    assert problems, err.value
    assert any(p.path.endswith(path) and words in (p.message + p.hint) for p in problems), [
        (p.path, p.message, p.hint) for p in problems
    ]


def test_a_plate_camera_may_read_at_a_vehicle_door(tmp_path: Path) -> None:
    path = site_file(tmp_path)
    doc = json.loads(path.read_text())
    doc["devices"][1]["kind"] = "camera"
    doc["access"] = json.loads(json.dumps(ACCESS))
    doc["access"]["doors"][0]["vehicle"] = True
    path.write_text(json.dumps(doc))
    load_site(path, load_registry())
