"""The ISA-18.2 state machine as pure functions, exhaustively."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest

from gateway.alarms import TRANSITIONS, ActionNotAllowed, AlarmRecord
from gateway.alarms import lifecycle as lc
from gateway.model import AlarmState, Category, Priority
from gateway.rules.condition import ConditionChange, RuleInfo

INFO = RuleInfo("tx-temp", "limit", Priority.HIGH, Category.ELECTRICAL, "electrical")
LATCHING = replace(INFO, latching=True)


def ch(active: bool, ts: int, **kw: object) -> ConditionChange:
    base: dict[str, object] = {"priority": Priority.HIGH, "level": "H", "value": 131.0}
    base.update(kw)
    return ConditionChange("tx-temp", "tx1.temp", "tx1", active, ts, **base)  # type: ignore[arg-type]


def activate(rec: AlarmRecord | None, c: ConditionChange, info: RuleInfo = INFO) -> AlarmRecord:
    result = lc.activate(rec, c, info, latch_critical=True)
    assert result is not None
    return result[0]


def test_transitions_are_the_designed_names() -> None:
    assert TRANSITIONS == (
        "activated", "reactivated", "level_changed", "cleared", "acknowledged", "reset",
        "shelved", "unshelved", "shelve_expired", "suppressed", "unsuppressed",
        "out_of_service", "returned_to_service", "comment", "chattering",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("active", "acked", "latched", "shelved", "suppressed", "oos"),
    list(itertools.product([False, True], repeat=6)),
)
def test_state_is_derived_from_every_flag_combination(
    active: bool, acked: bool, latched: bool, shelved: bool, suppressed: bool, oos: bool
) -> None:
    rec = AlarmRecord(
        "r@s", "r", "s", "d", Priority.LOW, "it", "it", "main",
        active=active, acked=acked, latched=latched,
        shelved_until=1 if shelved else None,
        suppressed_by=("maintenance:d",) if suppressed else (),
        out_of_service=oos,
    )  # fmt: skip
    if oos:
        expected = AlarmState.OUT_OF_SERVICE
    elif shelved:
        expected = AlarmState.SHELVED
    elif suppressed:
        expected = AlarmState.SUPPRESSED
    elif active:
        expected = AlarmState.ACKNOWLEDGED if acked else AlarmState.UNACKNOWLEDGED
    elif not acked:
        expected = AlarmState.RTN_UNACKNOWLEDGED
    elif latched:
        expected = AlarmState.ACKNOWLEDGED  # waits for reset
    else:
        expected = AlarmState.NORMAL
    assert rec.state is expected
    assert rec.removable == (not active and acked and not latched and not shelved and not oos)


def test_activate_ack_clear_to_normal() -> None:
    rec = activate(None, ch(True, 10))
    assert (rec.state, rec.count, rec.first_ts) == (AlarmState.UNACKNOWLEDGED, 1, 10)
    rec, t = lc.acknowledge(rec, "王工", 20)
    assert (t, rec.state, rec.acked_by, rec.acked_ts) == (
        "acknowledged",
        AlarmState.ACKNOWLEDGED,
        "王工",
        20,
    )
    result = lc.clear(rec, ch(False, 30, value=120.0))
    assert result is not None
    rec, t = result
    assert (t, rec.state, rec.removable, rec.value) == ("cleared", AlarmState.NORMAL, True, 120.0)


def test_clear_before_ack_then_ack_is_normal_and_reactivation_counts() -> None:
    rec = activate(None, ch(True, 10))
    result = lc.clear(rec, ch(False, 20))
    assert result is not None
    rec = result[0]
    assert rec.state is AlarmState.RTN_UNACKNOWLEDGED and not rec.removable
    again = lc.activate(rec, ch(True, 30), INFO, latch_critical=True)
    assert again is not None and again[1] == "reactivated"
    assert (again[0].count, again[0].first_ts, again[0].activated_ts) == (2, 10, 30)
    result = lc.clear(again[0], ch(False, 40))
    assert result is not None
    rec, _ = lc.acknowledge(result[0], "op", 50)
    assert rec.state is AlarmState.NORMAL and rec.removable


def test_repeated_active_and_repeated_clear_are_not_transitions() -> None:
    rec = activate(None, ch(True, 10))
    assert lc.activate(rec, ch(True, 11), INFO, latch_critical=True) is None
    assert lc.clear(None, ch(False, 12)) is None
    result = lc.clear(rec, ch(False, 12))
    assert result is not None
    assert lc.clear(result[0], ch(False, 13)) is None


def test_level_change_up_re_annunciates_and_down_does_not() -> None:
    rec, _ = lc.acknowledge(activate(None, ch(True, 10)), "op", 11)
    up = lc.activate(
        rec, ch(True, 12, level="HH", priority=Priority.CRITICAL), INFO, latch_critical=False
    )
    assert up is not None and up[1] == "level_changed"
    assert up[0].state is AlarmState.UNACKNOWLEDGED and up[0].priority is Priority.CRITICAL
    acked, _ = lc.acknowledge(up[0], "op", 13)
    down = lc.activate(
        acked, ch(True, 14, level="H", priority=Priority.HIGH), INFO, latch_critical=False
    )
    assert down is not None and down[1] == "level_changed"
    assert down[0].state is AlarmState.ACKNOWLEDGED and down[0].count == 1


def test_latching_needs_ack_and_reset_and_reset_is_refused_while_active() -> None:
    rec = activate(None, ch(True, 10), LATCHING)
    assert rec.latched
    with pytest.raises(ActionNotAllowed, match="still active"):
        lc.reset(rec, 11)
    result = lc.clear(rec, ch(False, 12))
    assert result is not None
    rec = result[0]
    assert rec.state is AlarmState.RTN_UNACKNOWLEDGED
    with pytest.raises(ActionNotAllowed, match="Acknowledge alarm"):
        lc.reset(rec, 13)
    rec, _ = lc.acknowledge(rec, "op", 14)
    assert rec.state is AlarmState.ACKNOWLEDGED and not rec.removable
    rec, t = lc.reset(rec, 15)
    assert (t, rec.state, rec.removable) == ("reset", AlarmState.NORMAL, True)
    with pytest.raises(ActionNotAllowed, match="not latched"):
        lc.reset(rec, 16)


def test_critical_priority_latches_when_configured() -> None:
    crit = ch(True, 10, priority=Priority.CRITICAL)
    assert activate(None, crit).latched
    result = lc.activate(None, crit, INFO, latch_critical=False)
    assert result is not None and not result[0].latched


def test_shelve_unshelve_and_activation_while_shelved_is_annunciated_after() -> None:
    rec = activate(None, ch(True, 10))
    rec, _ = lc.acknowledge(rec, "op", 11)
    rec = lc.clear(rec, ch(False, 12))[0]  # type: ignore[index]
    assert rec.removable
    rec, t = lc.shelve(replace(rec), "op", "sensor being replaced", 1000, 13)
    assert (t, rec.state, rec.removable) == ("shelved", AlarmState.SHELVED, False)
    rec = activate(rec, ch(True, 14))
    assert rec.state is AlarmState.SHELVED and rec.underlying_state is AlarmState.UNACKNOWLEDGED
    rec, t = lc.unshelve(rec, 15)
    assert (t, rec.state) == ("unshelved", AlarmState.UNACKNOWLEDGED)
    with pytest.raises(ActionNotAllowed):
        lc.unshelve(rec, 16)


def test_clear_while_hidden_and_never_shown_needs_no_ack_or_reset() -> None:
    rec = replace(activate(None, ch(True, 10), LATCHING), suppressed_by=("maintenance:tx1",))
    rec = lc.clear(rec, ch(False, 11))[0]  # type: ignore[index]
    assert rec.acked and not rec.latched and rec.removable
    shown = lc.mark_annunciated(activate(None, ch(True, 10), LATCHING))
    shown = replace(shown, shelved_until=99)
    shown = lc.clear(shown, ch(False, 11))[0]  # type: ignore[index]
    assert not shown.acked and shown.latched  # it was shown: the operator still owes an ack


def test_out_of_service_overrides_shelving_and_needs_a_reason() -> None:
    rec = lc.shelve(activate(None, ch(True, 10)), "op", "noisy", 100, 11)[0]
    with pytest.raises(Exception, match="reason"):
        lc.remove_from_service(rec, "eng", " ", 12)
    rec, t = lc.remove_from_service(rec, "eng", "transmitter broken", 12)
    assert (t, rec.state, rec.shelved_until) == ("out_of_service", AlarmState.OUT_OF_SERVICE, None)
    with pytest.raises(ActionNotAllowed, match="out of service"):
        lc.shelve(rec, "op", "x", 100, 13)
    rec, t = lc.return_to_service(rec, 14)
    assert (t, rec.state) == ("returned_to_service", AlarmState.UNACKNOWLEDGED)


def test_suppression_transitions_only_at_start_and_end() -> None:
    rec = activate(None, ch(True, 10))
    rec, t = lc.set_suppression(rec, ("upstream:feeder1",), 11)
    assert (t, rec.state) == ("suppressed", AlarmState.SUPPRESSED)
    rec, t = lc.set_suppression(rec, ("upstream:feeder1", "maintenance:tx1"), 12)
    assert t is None and rec.suppressed_by == ("upstream:feeder1", "maintenance:tx1")
    rec, t = lc.set_suppression(rec, (), 13)
    assert (t, rec.state) == ("unsuppressed", AlarmState.UNACKNOWLEDGED)


def test_record_json_round_trip_with_unstorable_values() -> None:
    rec = replace(
        activate(None, ch(True, 10, value=math.nan)),
        data={"text": "a\x00b", "n": math.inf, "nested": {"k": (1, 2)}},
        suppressed_by=("maintenance:tx1",),
    )
    raw = rec.to_json()
    assert raw["value"] == "nan" and raw["data"] == {
        "text": "a\ufffdb",
        "n": "inf",
        "nested": {"k": [1, 2]},
    }
    back = AlarmRecord.from_json(raw)
    assert back.suppressed_by == rec.suppressed_by and back.priority is Priority.HIGH
    assert AlarmRecord.from_json({**raw, "future_field": 1}) == back
    with pytest.raises(ValueError, match="priority"):
        AlarmRecord.from_json({**raw, "priority": "urgent"})
    with pytest.raises(ValueError, match="'rule'"):
        AlarmRecord.from_json({k: v for k, v in raw.items() if k != "rule"})
