"""Time profiles in Asia/Shanghai: across midnight, the working-day calendar
(holidays, make-up working days), closed holidays, date ranges, ``always``."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.access.config import TimeProfileConfig
from gateway.access.profiles import TimeProfiles, UnknownProfile
from gateway.model import from_datetime
from gateway.rules.schedule import CalendarConfig

TZ = "Asia/Shanghai"
CALENDAR = CalendarConfig.model_validate(
    {
        "holidays": [f"2026-10-0{d}" for d in range(1, 8)],  # National Day week
        "workdays": ["2026-09-27", "2026-10-10"],  # Sunday and Saturday make-up days
    }
)


def at(text: str) -> int:
    """UTC ns of a Shanghai wall-clock time 'YYYY-MM-DD HH:MM[:SS]'."""
    return from_datetime(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(TZ)))


def profiles(**cfgs: dict[str, object]) -> TimeProfiles:
    return TimeProfiles(
        {name: TimeProfileConfig.model_validate(c) for name, c in cfgs.items()}, TZ, CALENDAR
    )


def test_night_shift_across_midnight() -> None:
    p = profiles(night={"periods": [{"between": ["22:00", "06:00"]}]})
    assert p.allows("night", at("2026-11-20 23:30"))
    assert p.allows("night", at("2026-11-21 05:59"))
    assert p.allows("night", at("2026-11-21 05:59:59"))
    assert not p.allows("night", at("2026-11-21 06:00"))
    assert not p.allows("night", at("2026-11-21 21:59"))
    assert p.allows("night", at("2026-11-21 22:00"))


def test_night_shift_on_workdays_belongs_to_the_day_it_starts() -> None:
    p = profiles(night={"periods": [{"days": "workdays", "between": ["22:00", "06:00"]}]})
    assert p.allows("night", at("2026-11-21 01:00"))  # Saturday morning, from Friday night
    assert not p.allows("night", at("2026-11-22 01:00"))  # Sunday morning: Saturday's night


def test_workday_profile_follows_holidays_and_make_up_days() -> None:
    p = profiles(office={"periods": [{"days": "workdays", "between": ["08:00", "18:00"]}]})
    assert p.allows("office", at("2026-09-30 10:00"))  # ordinary Wednesday
    assert not p.allows("office", at("2026-10-01 10:00"))  # National Day (a Thursday)
    assert p.allows("office", at("2026-09-27 10:00"))  # make-up Sunday
    assert p.allows("office", at("2026-10-10 10:00"))  # make-up Saturday
    assert not p.allows("office", at("2026-10-11 10:00"))  # ordinary Sunday
    assert not p.allows("office", at("2026-09-30 18:00"))  # end is exclusive


def test_holidays_closed_overrides_the_periods() -> None:
    p = profiles(
        daily={"periods": [{"days": "any"}], "holidays": "closed"},
        daily_open={"periods": [{"days": "any"}]},
    )
    assert not p.allows("daily", at("2026-10-01 10:00"))
    assert not p.allows("daily", at("2026-10-07 23:59"))
    assert p.allows("daily", at("2026-10-08 00:00"))
    assert p.allows("daily_open", at("2026-10-01 10:00"))


def test_date_ranges_are_inclusive_local_days() -> None:
    p = profiles(
        summer={
            "periods": [{"between": ["07:00", "21:00"]}],
            "dates": [{"start": "2026-07-01", "end": "2026-08-31"}],
        }
    )
    assert not p.allows("summer", at("2026-06-30 12:00"))
    assert p.allows("summer", at("2026-07-01 07:00"))
    assert p.allows("summer", at("2026-08-31 20:59"))
    assert not p.allows("summer", at("2026-08-31 21:00"))
    assert not p.allows("summer", at("2026-09-01 12:00"))


def test_always_is_built_in_and_unknown_names_are_refused() -> None:
    p = profiles()
    assert "always" in p
    assert "nope" not in p
    assert p.allows("always", at("2026-10-01 03:00"))
    with pytest.raises(UnknownProfile):
        p.allows("nope", at("2026-10-01 03:00"))


def test_cached_answers_stay_right_at_minute_boundaries() -> None:
    p = profiles(night={"periods": [{"between": ["22:00", "06:00"]}]})
    for _ in range(3):  # the second and third rounds come from the cache
        assert p.allows("night", at("2026-11-21 05:59:59.999"))
        assert not p.allows("night", at("2026-11-21 06:00:00"))
        assert not p.allows("night", at("2026-11-21 21:59:59"))
        assert p.allows("night", at("2026-11-21 22:00:00"))
