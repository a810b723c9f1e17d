"""Report by exception: deadband against the last written value, heartbeat on reading time."""

from __future__ import annotations

import math

import pytest

from gateway.driver import PointSpec
from gateway.model import Quality, Reading
from gateway.storage.deadband import Deadband

S = 1_000_000_000  # one second in ns


def kept(db: Deadband, point: str, values: list[tuple[object, float]]) -> list[object]:
    """Feed ``(value, seconds)`` readings; return the values that were kept."""
    return [v for v, t in values if db.accept(Reading(point, v, round(t * S)))]  # type: ignore[arg-type]


def test_first_reading_is_written_and_exact_repeats_are_dropped_with_deadband_zero() -> None:
    db = Deadband()
    assert kept(db, "d.p", [(1.0, 0), (1.0, 1), (1, 2), (1.0001, 3), (1.0001, 4)]) == [1.0, 1.0001]
    assert db.filtered == 3


def test_deadband_compares_with_the_last_written_value_not_the_last_seen() -> None:
    db = Deadband([PointSpec("d", "p", deadband=0.5)])
    # 10.0 written; drifts of 0.2 each: 10.6 is 0.6 away from 10.0 -> written.
    values = [(10.0, 0), (10.2, 1), (10.4, 2), (10.6, 3), (10.9, 4), (11.2, 5)]
    assert kept(db, "d.p", values) == [10.0, 10.6, 11.2]


def test_a_change_exactly_equal_to_the_deadband_is_dropped() -> None:
    db = Deadband([PointSpec("d", "p", deadband=0.5)])
    assert kept(db, "d.p", [(1.0, 0), (1.5, 1), (0.5, 2), (1.51, 3)]) == [1.0, 1.51]


def test_heartbeat_writes_an_unchanged_value_by_reading_time() -> None:
    db = Deadband([PointSpec("d", "p", heartbeat=60)])
    values = [(5.0, 0), (5.0, 30), (5.0, 59.9), (5.0, 60), (5.0, 100), (5.0, 120)]
    assert kept(db, "d.p", values) == [5.0, 5.0, 5.0]  # at 0, 60, 120


def test_no_heartbeat_means_only_on_change() -> None:
    db = Deadband(default_heartbeat_s=None)
    assert kept(db, "d.p", [(1.0, 0), (1.0, 10_000), (1.0, 10**6)]) == [1.0]


def test_site_defaults_apply_when_the_point_sets_nothing() -> None:
    db = Deadband(
        [PointSpec("d", "own", deadband=2.0)], default_deadband=0.5, default_heartbeat_s=10
    )
    assert kept(db, "d.other", [(1.0, 0), (1.3, 1), (1.6, 2), (1.6, 12)]) == [1.0, 1.6, 1.6]
    assert kept(db, "d.own", [(1.0, 0), (2.5, 1), (3.5, 2)]) == [1.0, 3.5]
    assert db.settings("d.own").heartbeat_ns == 10 * S  # its own deadband, the site heartbeat


def test_quality_change_always_writes() -> None:
    db = Deadband([PointSpec("d", "p", deadband=100)])
    rs = [
        Reading("d.p", 1.0, 0),
        Reading("d.p", 1.0, 1, Quality.BAD),
        Reading("d.p", 1.0, 2, Quality.BAD),
        Reading("d.p", 1.0, 3),
    ]
    assert db.filter(rs) == [rs[0], rs[1], rs[3]]


def test_non_numeric_values_write_on_change() -> None:
    db = Deadband([PointSpec("d", "*", deadband=10)])
    values = [("run", 0), ("run", 1), ("fault", 2), (True, 3), (True, 4), (1, 5), (1.0, 6)]
    # bool True -> int 1 is a change of type; 1 -> 1.0 is no change (both numbers).
    assert kept(db, "d.state", values) == ["run", "fault", True, 1]


def test_nan_is_written_once_then_not_again_until_it_changes() -> None:
    db = Deadband()
    got = kept(db, "d.p", [(1.0, 0), (math.nan, 1), (math.nan, 2), (1.0, 3)])
    assert got[0] == 1.0 and math.isnan(got[1]) and got[2] == 1.0  # type: ignore[arg-type]
    assert len(got) == 3


def test_wildcard_specs_match_and_exact_specs_win() -> None:
    specs = [
        PointSpec("*", "temp_*", deadband=1.0),
        PointSpec("tx1", "temp_a", deadband=5.0),
        PointSpec("meter*", "*", heartbeat=1),
        PointSpec("room[1]", "t?", deadband=3.0),  # only '*' is special
    ]
    db = Deadband(specs, default_heartbeat_s=300)
    assert db.settings("tx1.temp_a").deadband == 5.0
    assert db.settings("tx2.temp_b").deadband == 1.0
    assert db.settings("meter7.kwh").heartbeat_ns == S
    assert db.settings("meter7.kwh").deadband == 0.0
    assert db.settings("room[1].t?").deadband == 3.0
    assert db.settings("room1.tx").deadband == 0.0
    assert db.settings("other.p").heartbeat_ns == 300 * S


def test_first_matching_wildcard_wins_and_is_cached() -> None:
    db = Deadband([PointSpec("*", "*", deadband=1.0), PointSpec("a", "*", deadband=9.0)])
    assert db.settings("a.b").deadband == 1.0
    assert db.settings("a.b") is db.settings("a.b")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_deadband": -1},
        {"default_heartbeat_s": 0},
        {"points": [PointSpec("d", "p", deadband=-1)]},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Deadband(**kwargs)  # type: ignore[arg-type]
