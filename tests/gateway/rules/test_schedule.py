"""Schedules in the site's time zone: night windows across midnight, working
days by the site calendar (holidays and make-up working days), and alarms that
clear at the schedule's edge."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from gateway.model import Event, Reading, from_datetime
from gateway.rules import CalendarConfig, ScheduleConfig
from gateway.rules.schedule import Schedule

from .rutil import engine

SH = ZoneInfo("Asia/Shanghai")
# National Day week 2026 (Thu 1 Oct - Wed 7 Oct) and a make-up working Saturday.
CAL = CalendarConfig(
    holidays=[date(2026, 10, d) for d in range(1, 8)], workdays=[date(2026, 10, 10)]
)


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return from_datetime(datetime(y, mo, d, h, mi, tzinfo=SH))


def test_night_window_crosses_midnight_and_clears_at_six() -> None:
    start = sh(2026, 3, 2, 8)  # a Monday morning in Shanghai
    eng = engine(
        {
            "id": "night-door",
            "type": "state",
            "point": "pump1.running",
            "equals": True,
            "schedule": {"between": ["22:00", "06:00"]},
        },
        start=start,
    )
    # daytime: evaluated silently, nothing announced
    assert eng.on_reading(Reading("pump1.running", True, sh(2026, 3, 2, 9))) == []
    assert eng.next_deadline() == sh(2026, 3, 2, 22)
    got = eng.tick(sh(2026, 3, 2, 22))  # the condition present at 22:00 is announced at once
    assert [(c.active, c.ts, c.data["reason"]) for c in got] == [
        (True, sh(2026, 3, 2, 22), "schedule")
    ]
    assert [
        c.active for c in eng.on_reading(Reading("pump1.running", False, sh(2026, 3, 3, 1)))
    ] == [False]
    assert [
        c.active for c in eng.on_reading(Reading("pump1.running", True, sh(2026, 3, 3, 2)))
    ] == [True]
    assert eng.next_deadline() == sh(2026, 3, 3, 6)
    got = eng.tick(sh(2026, 3, 3, 6))
    assert [(c.active, c.ts, c.data["reason"]) for c in got] == [
        (False, sh(2026, 3, 3, 6), "schedule")
    ]
    assert eng.next_deadline() == sh(2026, 3, 3, 22)


def test_workdays_follow_holidays_and_make_up_working_days() -> None:
    s = Schedule(ScheduleConfig(days="workdays"), "Asia/Shanghai", CAL)
    assert s.active_at(sh(2026, 9, 30, 12))  # Wednesday
    assert not s.active_at(sh(2026, 10, 1, 12))  # Thursday, a holiday
    assert not s.active_at(sh(2026, 10, 3, 12))  # an ordinary Saturday
    assert s.active_at(sh(2026, 10, 10, 12))  # the make-up working Saturday
    assert not s.active_at(sh(2026, 10, 11, 12))  # Sunday
    # edges are local midnights (16:00 UTC the day before)
    assert s.next_change(sh(2026, 9, 30, 12)) == sh(2026, 10, 1)
    assert s.next_change(sh(2026, 10, 1, 12)) == sh(2026, 10, 8)
    assert s.next_change(sh(2026, 10, 9, 12)) == sh(2026, 10, 11)  # Fri + make-up Sat
    night = Schedule(
        ScheduleConfig(days="workdays", between=("22:00", "06:00")), "Asia/Shanghai", CAL
    )
    assert night.active_at(sh(2026, 9, 30, 23)) and night.active_at(sh(2026, 10, 1, 5))
    assert not night.active_at(sh(2026, 10, 1, 23))  # the holiday's own night
    assert night.active_at(sh(2026, 10, 10, 23)) and night.active_at(sh(2026, 10, 11, 5, 59))
    assert not night.active_at(sh(2026, 10, 11, 6))
    never = Schedule(ScheduleConfig(days="any"), "Asia/Shanghai", CAL)
    assert never.next_change(sh(2026, 1, 1)) is None


def test_workday_rule_clears_at_the_holiday_and_returns_on_the_make_up_day() -> None:
    eng = engine(
        {
            "id": "office-door",
            "type": "event",
            "event": "door.held_open",
            "clear_after_s": 7 * 86400,
            "schedule": {"days": "workdays", "between": ["08:00", "18:00"]},
        },
        start=sh(2026, 9, 30, 7),
        calendar=CAL,
    )
    assert eng.on_event(Event("door.held_open", "door1", sh(2026, 9, 30, 7, 30))) == []
    assert eng.next_deadline() == sh(2026, 9, 30, 8)
    assert eng.tick(sh(2026, 9, 30, 8)) == []  # events are not states: nothing carried over
    got = eng.on_event(Event("door.held_open", "door1", sh(2026, 9, 30, 9)))
    assert [(c.source, c.active) for c in got] == [("door1", True)]
    assert eng.next_deadline() == sh(2026, 9, 30, 18)
    got = eng.tick(sh(2026, 9, 30, 18))
    assert [(c.active, c.data["reason"]) for c in got] == [(False, "schedule")]
    assert eng.on_event(Event("door.held_open", "door1", sh(2026, 10, 2, 9))) == []  # holiday
    assert eng.next_deadline() == sh(2026, 10, 8, 8)  # the holiday week is skipped
    eng.tick(sh(2026, 10, 8, 8))
    eng.tick(sh(2026, 10, 8, 18))
    eng.tick(sh(2026, 10, 9, 8))
    assert eng.next_deadline() == sh(2026, 10, 9, 18)
    eng.tick(sh(2026, 10, 9, 18))
    assert eng.next_deadline() == sh(2026, 10, 10, 8)  # the make-up Saturday
    eng.tick(sh(2026, 10, 10, 8))
    got = eng.on_event(Event("door.held_open", "door1", sh(2026, 10, 10, 9)))
    assert [c.active for c in got] == [True]
