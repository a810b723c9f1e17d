"""Roster: shifts with handover in Asia/Shanghai, rotations, leave; config validation."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gateway.model import from_datetime
from gateway.notify.oncall_config import LevelConfig, NotifyWho, OnCallConfig
from gateway.notify.roster import Roster, UnknownPerson, UnknownTeam

SH = ZoneInfo("Asia/Shanghai")


def at(*args: int) -> int:
    """UTC ns of a wall-clock time in Shanghai."""
    return from_datetime(datetime(*args, tzinfo=SH))  # type: ignore[misc]


def person(name: str, *certs: str, locale: str = "zh-CN") -> dict[str, Any]:
    return {
        "name": name,
        "locale": locale,
        "mobile": "+8613800000000",
        "certifications": list(certs),
    }


PEOPLE = {
    "zhang": person("张伟", "hv_electrician"),
    "li": person("李娜"),
    "wang": person("王强", "hv_electrician"),
    "zhao": person("赵敏", "hv_electrician"),
    "chen": person("陈洁", locale="en"),
}


def make(teams: dict[str, Any], **extra: Any) -> OnCallConfig:
    return OnCallConfig.model_validate(
        {"people": PEOPLE, "teams": teams, "default_channels": ["wecom"], **extra}
    )


def two_shift_roster(**roster: Any) -> OnCallConfig:
    return make(
        {
            "electrical": {
                "members": ["zhang", "li", "wang", "zhao"],
                "roster": {
                    "shifts": [
                        {"name": "night", "start": "20:00", "hours": 12},
                        {"name": "day", "start": "08:00", "hours": 12},
                    ],
                    "rotation": [["zhang"], ["li"], ["wang"], ["zhao"]],
                    "start_date": "2026-03-02",
                    **roster,
                },
            }
        }
    )


def ids(roster: Roster, team: str, ts: int) -> list[str]:
    return [p.id for p in roster.on_duty(team, ts)]


def test_handover_exactly_at_eight_in_shanghai() -> None:
    roster = Roster(two_shift_roster(), "Asia/Shanghai")
    # 2026-03-02: day shift = slot 0 (zhang), night = slot 1 (li); 03-03: wang, zhao.
    assert ids(roster, "electrical", at(2026, 3, 2, 8, 0, 0)) == ["zhang"]
    assert ids(roster, "electrical", at(2026, 3, 2, 19, 59, 59)) == ["zhang"]
    assert ids(roster, "electrical", at(2026, 3, 2, 20, 0, 0)) == ["li"]
    assert ids(roster, "electrical", at(2026, 3, 3, 2, 30)) == ["li"]  # across midnight
    assert ids(roster, "electrical", at(2026, 3, 3, 7, 59, 59)) == ["li"]
    assert ids(roster, "electrical", at(2026, 3, 3, 8, 0, 0)) == ["wang"]
    just_before = at(2026, 3, 3, 8, 0, 0) - 1  # one nanosecond before the handover
    assert ids(roster, "electrical", just_before) == ["li"]
    # 08:00 Shanghai is 00:00 UTC.
    assert at(2026, 3, 3, 8) == from_datetime(datetime(2026, 3, 3, 0, 0, tzinfo=ZoneInfo("UTC")))
    (slot,) = roster.slots("electrical", at(2026, 3, 3, 9))
    assert (slot.shift, slot.start_ns, slot.end_ns) == (
        "day",
        at(2026, 3, 3, 8),
        at(2026, 3, 3, 20),
    )
    assert roster.next_handover("electrical", at(2026, 3, 3, 9)) == at(2026, 3, 3, 20)
    assert roster.next_handover("electrical", at(2026, 3, 3, 21)) == at(2026, 3, 4, 8)


def test_the_same_instant_in_another_site_time_zone() -> None:
    # A site in Europe/Berlin hands over at 08:00 Berlin time, not Shanghai's.
    roster = Roster(two_shift_roster(), "Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    eight = from_datetime(datetime(2026, 3, 3, 8, tzinfo=berlin))
    assert ids(roster, "electrical", eight - 1) == ["li"]
    assert ids(roster, "electrical", eight) == ["wang"]


def test_rotation_cycles_across_days() -> None:
    cfg = make(
        {
            "security": {
                "members": ["zhang", "li", "wang"],
                "roster": {
                    "shifts": [{"name": "all", "start": "08:00", "hours": 24}],
                    "rotation": [["zhang", "chen"], ["li"], ["wang"]],
                    "start_date": "2026-03-02",
                },
            }
        }
    )
    roster = Roster(cfg)
    seen = [ids(roster, "security", at(2026, 3, d, 9)) for d in range(1, 8)]
    assert seen == [
        ["wang"],  # 03-01 is the day before start_date: the cycle runs backwards too
        ["zhang", "chen"],
        ["li"],
        ["wang"],
        ["zhang", "chen"],
        ["li"],
        ["wang"],
    ]
    assert ids(roster, "security", at(2026, 3, 3, 7, 59, 59)) == ["zhang", "chen"]


def test_leave_replaces_a_person() -> None:
    cfg = two_shift_roster(
        overrides=[
            {"person": "zhang", "from": "2026-03-04", "until": "2026-03-04", "replaced_by": "zhao"},
            # li is away for a few hours of one night without a stand-in
            {"person": "li", "from": "2026-03-05 00:00", "until": "2026-03-05 04:00"},
        ]
    )
    roster = Roster(cfg)
    # 03-04 day shift is slot 4 -> rotation[0] = zhang, on leave: zhao serves.
    assert ids(roster, "electrical", at(2026, 3, 4, 9)) == ["zhao"]
    assert ids(roster, "electrical", at(2026, 3, 4, 19, 59)) == ["zhao"]
    # 03-04 night is li's; between 00:00 and 04:00 on 03-05 nobody stands in.
    assert ids(roster, "electrical", at(2026, 3, 4, 23, 59)) == ["li"]
    assert ids(roster, "electrical", at(2026, 3, 5, 1)) == []
    assert ids(roster, "electrical", at(2026, 3, 5, 4)) == ["li"]
    # Two days later zhang is back on the day shift (slot 8).
    assert ids(roster, "electrical", at(2026, 3, 6, 9)) == ["zhang"]


def test_a_stand_in_on_leave_too_is_followed() -> None:
    cfg = two_shift_roster(
        overrides=[
            {
                "person": "zhang",
                "from": date(2026, 3, 4),
                "until": date(2026, 3, 4),
                "replaced_by": "wang",
            },
            {
                "person": "wang",
                "from": date(2026, 3, 4),
                "until": date(2026, 3, 4),
                "replaced_by": "zhao",
            },
        ]
    )
    assert ids(Roster(cfg), "electrical", at(2026, 3, 4, 9)) == ["zhao"]


def test_team_without_roster_is_always_on_duty_and_lookups() -> None:
    cfg = make({"management": {"members": ["chen", "zhang"]}})
    roster = Roster(cfg)
    assert ids(roster, "management", at(2026, 3, 4, 3)) == ["chen", "zhang"]
    assert roster.slots("management", at(2026, 3, 4, 3)) == []
    assert roster.next_handover("management", at(2026, 3, 4, 3)) is None
    assert roster.person("chen").locale == "en"
    assert roster.person("zhang").holds("hv_electrician")
    assert roster.person("zhang").addresses == {"mobile": "+8613800000000"}
    with pytest.raises(UnknownTeam):
        roster.on_duty("plumbing", 0)
    with pytest.raises(UnknownPerson):
        roster.person("nobody")


def test_callable_filters_by_certification() -> None:
    roster = Roster(two_shift_roster())
    level = LevelConfig(after_min=0)
    # 03-02 night: li, who holds no HV certificate.
    people, why = roster.callable(level, "electrical", "hv_electrician", at(2026, 3, 2, 21))
    assert people == []
    assert why == {
        "team": "electrical",
        "certification": "hv_electrician",
        "candidates": ["li"],
        "reason": "not_certified",
    }
    people, _ = roster.callable(level, "electrical", "hv_electrician", at(2026, 3, 3, 9))
    assert [p.id for p in people] == ["wang"]
    # 'team' levels do not filter unless asked to.
    team = LevelConfig(after_min=3, notify=NotifyWho.TEAM)
    people, _ = roster.callable(team, "electrical", "hv_electrician", at(2026, 3, 2, 21))
    assert [p.id for p in people] == ["zhang", "li", "wang", "zhao"]
    _, why = roster.callable(level, None, None, 0)
    assert why["reason"] == "no_team"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"teams": {"x": {"members": ["ghost"]}}}, "unknown person 'ghost'"),
        (
            {"teams": {"x": {"members": [], "roster": {"shifts": [{"name": "d", "start": "8h"}]}}}},
            "is not a time 'HH:MM'",
        ),
        (
            {"teams": {"x": {"members": [], "roster": {"rotation": [["zhang"], []]}}}},
            "at least one person",
        ),
        (
            {
                "teams": {
                    "x": {
                        "members": [],
                        "roster": {
                            "overrides": [
                                {"person": "li", "from": "2026-03-05", "until": "2026-03-04"}
                            ]
                        },
                    }
                }
            },
            "'until' must be after 'from'",
        ),
        (
            {
                "teams": {
                    "x": {
                        "members": [],
                        "roster": {
                            "overrides": [
                                {
                                    "person": "li",
                                    "from": "2026-03-05T08:00+08:00",
                                    "until": "2026-03-06",
                                }
                            ]
                        },
                    }
                }
            },
            "without a UTC offset",
        ),
        ({"routes": {"water": "plumbing"}}, "unknown team 'plumbing'"),
        (
            {"policies": {"default": {"levels": [{"after_min": 5}, {"after_min": 3}]}}},
            "order levels by after_min",
        ),
        (
            {"policies": {"default": {"levels": [{"after_min": 0, "notify": "people"}]}}},
            "needs a 'people:' list",
        ),
        ({"policies": {"fire": {"levels": [{"after_min": 0}]}}}, "needs a 'default' policy"),
        ({"default_channels": []}, "no channels"),
        ({"public_url": "gateway.local"}, "must start with http"),
    ],
)
def test_config_errors_say_what_to_fix(patch: dict[str, Any], message: str) -> None:
    doc: dict[str, Any] = {"people": PEOPLE, "teams": {}, "default_channels": ["wecom"], **patch}
    with pytest.raises(ValidationError, match=message):
        OnCallConfig.model_validate(doc)


def test_defaults_follow_the_site_rules() -> None:
    cfg = OnCallConfig()
    key, policy = cfg.policy_for("electrical", "electrical")
    assert key == "default"
    assert [lv.after_min for lv in policy.levels] == [0, 3, 10]
    assert policy.levels[0].certified_only and not policy.levels[1].certified_only
    assert policy.levels[2].team == "management"
    assert cfg.certifications_required == {
        "electrical": "hv_electrician",
        "fire": "fire_control_operator",
    }
    # The default route table only names teams the site defines.
    assert cfg.team_for("electrical", "electrical") is None
    cfg = make({"electrical": {"members": ["zhang"]}})
    assert cfg.team_for("lift", "lift") == "electrical"
    assert cfg.channel_names() == {"wecom"}
