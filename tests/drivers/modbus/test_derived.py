"""Derived points: config checks, each function, persistence across restarts.

Pure and fast: timestamps are built by hand (UTC ns), the state lives in
real files under tmp_path.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from drivers.modbus.derived import DerivedPoints, DerivedSpec, resolve_rating
from drivers.modbus.derived_state import DerivedState, DerivedStateStore, RunHoursState
from gateway.model import Event, Quality, Reading, Value, from_datetime

SH = ZoneInfo("Asia/Shanghai")
G, U, B = Quality.GOOD, Quality.UNCERTAIN, Quality.BAD
S = 1_000_000_000  # ns per second
T0 = from_datetime(datetime(2024, 5, 1, 2, 0, tzinfo=UTC))  # 10:00 in Shanghai


def spec(function: str, inputs: list[str], **options: Any) -> DerivedSpec:
    return DerivedSpec.model_validate({"function": function, "inputs": inputs, **options})


def engine(
    specs: Mapping[str, DerivedSpec],
    state: DerivedState | None = None,
    params: Mapping[str, float] | None = None,
    device: str = "tx1",
) -> DerivedPoints:
    return DerivedPoints(device, specs, params=params or {}, state=state or DerivedState(), tz=SH)


def good(**values: Value) -> dict[str, tuple[Value, Quality]]:
    return {k: (v, G) for k, v in values.items()}


def readings(out: list[Reading | Event]) -> dict[str, Reading]:
    return {m.point: m for m in out if isinstance(m, Reading)}


def events(out: list[Reading | Event]) -> list[Event]:
    return [m for m in out if isinstance(m, Event)]


def only(out: list[Reading | Event]) -> Reading:
    (reading,) = out
    assert isinstance(reading, Reading)
    return reading


# -- config -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "inputs", "options", "message"),
    [
        ("max", ["a"], {}, "function 'max' needs at least 2 inputs, got 1"),
        ("mean", [], {}, "function 'mean' needs at least 2 inputs, got 0"),
        ("load_percent", [], {"rating": 630}, "'load_percent' needs at least 1 input "),
        ("power_factor", ["p"], {}, r"'power_factor' needs exactly 2 inputs \(\[active power P"),
        ("power_factor", ["p", "s", "q"], {}, "'power_factor' needs exactly 2 inputs"),
        ("run_hours", ["a", "b"], {}, r"'run_hours' needs exactly 1 input \(a run status\)"),
        ("starts", [], {}, r"function 'starts' needs exactly 1 input \(a run status\), got 0"),
        (
            "daily_energy",
            ["e1", "e2"],
            {},
            r"'daily_energy' needs exactly 1 input \(an energy counter\), got 2",
        ),
        ("load_percent", ["ia"], {}, "function 'load_percent' needs 'rating'"),
        (
            "max",
            ["a", "b"],
            {"rating": 10},
            "option 'rating' is only for function 'load_percent', not 'max'",
        ),
        ("daily_energy", ["e"], {"rating": "rated"}, "option 'rating' is only for function"),
        (
            "run_hours",
            ["r"],
            {"wrap_at": 100},
            "option 'wrap_at' is only for function 'daily_energy', not 'run_hours'",
        ),
        (
            "starts",
            ["r"],
            {"max_gap_s": 60},
            "option 'max_gap_s' is only for function 'run_hours', not 'starts'",
        ),
        ("daily_energy", ["e"], {"wrap_at": 0}, "wrap_at must be a number > 0, got 0"),
        ("daily_energy", ["e"], {"wrap_at": -5}, "wrap_at must be a number > 0"),
        ("run_hours", ["r"], {"max_gap_s": 0}, "max_gap_s must be a number > 0"),
        ("load_percent", ["ia"], {"rating": 0}, "rating must be a number > 0, got 0"),
        ("load_percent", ["ia"], {"rating": -630}, "rating must be a number > 0"),
        ("load_percent", ["ia"], {"rating": " "}, "rating: the parameter name is empty"),
        ("sum", ["a", "a", "b"], {}, "inputs: a listed more than once"),
        ("sum", ["a", ""], {}, "inputs: an input name is empty"),
    ],
)
def test_config_errors(
    function: str, inputs: list[str], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(function, inputs, **options)


def test_config_unknown_key_and_function_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        spec("max", ["a", "b"], scale=2)
    with pytest.raises(ValidationError, match="function"):
        spec("median", ["a", "b"])


def test_config_accepts_each_function_with_its_options() -> None:
    assert spec("load_percent", ["ia", "ib", "ic"], rating=630).rating == 630
    assert spec("load_percent", ["ia"], rating="rated_current").rating == "rated_current"
    assert spec("daily_energy", ["e"], wrap_at=42949672.96).wrap_at == 42949672.96
    assert spec("run_hours", ["r"], max_gap_s=60).max_gap_s == 60
    # the default written out is not "a non-default value"
    assert spec("starts", ["r"], max_gap_s=300).max_gap_s == 300
    assert spec("power_factor", ["p", "s"]).function == "power_factor"


def test_resolve_rating() -> None:
    by_name = spec("load_percent", ["ia"], rating="rated_current")
    assert resolve_rating(by_name, {"rated_current": 630}) == 630.0
    assert resolve_rating(spec("load_percent", ["ia"], rating=400), {}) == 400.0
    assert resolve_rating(spec("max", ["a", "b"]), {}) is None
    with pytest.raises(ValueError, match=r"parameter 'rated_current' is not defined"):
        resolve_rating(by_name, {"rated_kva": 1000})
    with pytest.raises(ValueError, match=r"parameter 'rated_current' must be a number > 0"):
        resolve_rating(by_name, {"rated_current": 0})


def test_engine_build_errors_name_device_and_point() -> None:
    by_name = spec("load_percent", ["ia"], rating="rated_current")
    with pytest.raises(ValueError, match=r"device 'tx1', derived point 'load'.*'rated_current'"):
        engine({"load": by_name})
    chained = {"t_max": spec("max", ["a", "b"]), "t2": spec("max", ["t_max", "c"])}
    with pytest.raises(ValueError, match=r"'t2': input 't_max' is itself a derived point"):
        engine(chained)


# -- aggregates ---------------------------------------------------------------


def test_aggregates_wait_for_every_input_then_use_latest_values() -> None:
    inputs = ["wa", "wb", "wc"]
    eng = engine({f: spec(f, inputs) for f in ("max", "min", "mean", "sum")})
    assert eng.inputs == frozenset(inputs)
    assert eng.feed(good(wa=70.0), T0) == []
    assert eng.feed(good(wb=80.0, other=1), T0 + S) == []
    assert eng.feed(good(other=5), T0 + 2 * S) == []  # not an input: nothing to do
    out = readings(eng.feed(good(wc=75.0), T0 + 3 * S))
    assert out["tx1.max"] == Reading("tx1.max", 80.0, T0 + 3 * S, G)
    assert out["tx1.min"].value == 70.0
    assert out["tx1.mean"].value == pytest.approx(75.0)
    assert out["tx1.sum"].value == 225.0
    # one input changes: the others keep their last value
    out = readings(eng.feed(good(wa=90.0), T0 + 4 * S))
    assert out["tx1.max"].value == 90.0
    assert out["tx1.min"].value == 75.0
    assert out["tx1.sum"].value == 245.0
    assert all(r.ts == T0 + 4 * S for r in out.values())


def test_aggregate_quality_is_worst_and_bad_input_gives_bad_over_the_rest() -> None:
    eng = engine({"t_max": spec("max", ["wa", "wb", "wc"])})
    eng.feed(good(wa=70.0, wb=80.0, wc=75.0), T0)
    uncertain = only(eng.feed({"wb": (81.0, U)}, T0 + S))
    assert (uncertain.value, uncertain.quality) == (81.0, U)
    # wb BAD (garbage): published BAD, value over the inputs that are not BAD
    bad = only(eng.feed({"wb": (9999.0, B)}, T0 + 2 * S))
    assert (bad.value, bad.quality) == (75.0, B)
    # recovery
    assert only(eng.feed(good(wb=79.0), T0 + 3 * S)).quality is G


def test_aggregate_non_numeric_inputs_count_as_bad_and_all_bad_publishes_nothing() -> None:
    eng = engine({"s": spec("sum", ["a", "b"])})
    text = only(eng.feed(good(a="fault", b=2.0), T0))
    assert (text.value, text.quality) == (2.0, B)
    nan = only(eng.feed({"a": (math.nan, U)}, T0 + S))  # the codec flags NaN UNCERTAIN
    assert (nan.value, nan.quality) == (2.0, B)
    assert eng.feed({"b": (1.0, B)}, T0 + 2 * S) == []  # no usable input left


def test_sum_counts_bools_and_precision_rounds() -> None:
    eng = engine(
        {
            "pumps_running": spec("sum", ["p1", "p2", "p3"]),
            "t_mean": spec("mean", ["x", "y", "z"], precision=2),
        }
    )
    out = readings(eng.feed(good(p1=True, p2=False, p3=True, x=1.0, y=1.0, z=2.0), T0))
    assert out["tx1.pumps_running"].value == 2.0
    assert out["tx1.t_mean"].value == 1.33


def test_load_percent_uses_largest_magnitude_against_rating_or_parameter() -> None:
    eng = engine(
        {
            "load": spec("load_percent", ["ia", "ib", "ic"], rating=630),
            "load_p": spec("load_percent", ["p"], rating="rated_kw"),
        },
        params={"rated_kw": 800.0},
    )
    out = readings(eng.feed(good(ia=315.0, ib=504.0, ic=400.0, p=-400.0), T0))
    assert out["tx1.load"].value == pytest.approx(80.0)
    assert out["tx1.load_p"].value == pytest.approx(50.0)  # exporting 400 kW loads it too


# -- power factor ------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "s", "expected", "quality"),
    [
        (80.0, 100.0, 0.8, G),
        (-50.0, 100.0, -0.5, G),  # export keeps its sign
        (100.0, 100.0, 1.0, G),
        (100.5, 100.0, 1.0, G),  # rounding of the two registers: clamped, still good
        (120.0, 100.0, 1.0, U),  # impossible: clamped and uncertain
        (-120.0, 100.0, -1.0, U),
    ],
)
def test_power_factor(p: float, s: float, expected: float, quality: Quality) -> None:
    eng = engine({"pf": spec("power_factor", ["p", "s"])})
    reading = only(eng.feed(good(p=p, s=s), T0))
    assert reading.value == pytest.approx(expected)
    assert reading.quality is quality


def test_power_factor_without_a_usable_s_publishes_nothing() -> None:
    eng = engine({"pf": spec("power_factor", ["p", "s"])})
    assert eng.feed(good(p=0.0, s=0.0), T0) == []  # no load: PF undefined
    assert eng.feed(good(s=-10.0), T0 + S) == []  # a wrong register
    assert eng.feed({"p": (5.0, B), "s": (10.0, G)}, T0 + 2 * S) == []  # P untrusted
    assert only(eng.feed(good(p=5.0), T0 + 3 * S)).value == 0.5
    assert only(eng.feed({"s": (10.0, U)}, T0 + 4 * S)).quality is U


# -- run hours and starts ----------------------------------------------------


def test_run_hours_integrates_running_time_between_good_samples() -> None:
    eng = engine({"hours": spec("run_hours", ["run"], max_gap_s=120)})
    assert only(eng.feed(good(run=True), T0)).value == 0.0
    assert only(eng.feed(good(run=1), T0 + 60 * S)).value == pytest.approx(60 / 3600)
    # stopped at 120: the interval 60..120 counts (the earlier sample was running)
    assert only(eng.feed(good(run=False), T0 + 120 * S)).value == pytest.approx(120 / 3600)
    assert only(eng.feed(good(run=0), T0 + 180 * S)).value == pytest.approx(120 / 3600)
    # a BAD sample neither advances nor publishes
    assert eng.feed({"run": (True, B)}, T0 + 200 * S) == []
    eng.feed(good(run=True), T0 + 240 * S)
    # a gap longer than max_gap_s (device offline) counts nothing
    assert only(eng.feed(good(run=True), T0 + 1240 * S)).value == pytest.approx(120 / 3600)
    # a value that is not a run status is ignored
    assert eng.feed(good(run=2), T0 + 1300 * S) == []
    assert eng.feed(good(run="on"), T0 + 1310 * S) == []
    reading = only(eng.feed({"run": (True, U)}, T0 + 1340 * S))
    assert reading.value == pytest.approx(220 / 3600)
    assert reading.quality is U


def test_run_hours_bad_samples_bridge_to_the_next_good_one() -> None:
    eng = engine({"hours": spec("run_hours", ["run"])})
    eng.feed(good(run=True), T0)
    eng.feed({"run": (False, B)}, T0 + 30 * S)
    assert only(eng.feed(good(run=True), T0 + 60 * S)).value == pytest.approx(60 / 3600)
    # the clock stepped back: nothing counted, the new sample is the reference
    assert only(eng.feed(good(run=True), T0 + 10 * S)).value == pytest.approx(60 / 3600)
    assert only(eng.feed(good(run=True), T0 + 40 * S)).value == pytest.approx(90 / 3600)


def test_starts_count_rising_edges_only() -> None:
    eng = engine({"starts": spec("starts", ["run"])})
    assert only(eng.feed(good(run=True), T0)).value == 0  # first sample: not seen starting
    assert only(eng.feed(good(run=False), T0 + S)).value == 0
    assert only(eng.feed(good(run=True), T0 + 2 * S)).value == 1
    assert only(eng.feed(good(run=True), T0 + 3 * S)).value == 1
    eng.feed(good(run=False), T0 + 4 * S)
    assert eng.feed({"run": (True, B)}, T0 + 5 * S) == []  # BAD: no edge
    eng.feed(good(run=False), T0 + 6 * S)
    assert only(eng.feed(good(run=1), T0 + 7 * S)).value == 2


def test_run_hours_and_starts_continue_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "data" / "modbus-plant-derived.json"
    specs = {"hours": spec("run_hours", ["run"]), "starts": spec("starts", ["run"])}

    store = DerivedStateStore(path)
    state = store.load()
    eng = engine(specs, state=state, device="pump1")
    eng.feed(good(run=False), T0)
    eng.feed(good(run=True), T0 + 10 * S)
    eng.feed(good(run=True), T0 + 70 * S)
    assert state.dirty
    store.save(state)
    assert not state.dirty

    # restart 100 s later; the pump kept running: the gap counts, it is no new start
    store = DerivedStateStore(path)
    state = store.load()
    assert store.lost is None
    eng = engine(specs, state=state, device="pump1")
    out = readings(eng.feed(good(run=True), T0 + 170 * S))
    assert out["pump1.starts"].value == 1
    assert out["pump1.hours"].value == pytest.approx(160 / 3600)
    store.save(state)

    # restart after an hour down (longer than max_gap_s): that hour counts nothing
    state = DerivedStateStore(path).load()
    eng = engine(specs, state=state, device="pump1")
    out = readings(eng.feed(good(run=True), T0 + 3770 * S))
    assert out["pump1.starts"].value == 1
    assert out["pump1.hours"].value == pytest.approx(160 / 3600)
    out = readings(eng.feed(good(run=False), T0 + 3830 * S))
    assert out["pump1.hours"].value == pytest.approx(220 / 3600)
    DerivedStateStore(path).save(state)

    # stopped before the restart, running after: a start
    state = DerivedStateStore(path).load()
    eng = engine(specs, state=state, device="pump1")
    assert readings(eng.feed(good(run=True), T0 + 9000 * S))["pump1.starts"].value == 2


def test_saved_state_of_another_function_or_input_restarts_from_zero(tmp_path: Path) -> None:
    state = DerivedState()
    state.put("pump1", "x", RunHoursState(input="run", running=True, last_ts=T0, seconds=3600))
    eng = engine({"x": spec("starts", ["run"])}, state=state, device="pump1")
    assert only(eng.feed(good(run=True), T0 + S)).value == 0
    eng = engine({"x": spec("run_hours", ["run2"])}, state=state, device="pump1")
    assert only(eng.feed(good(run2=True), T0 + 2 * S)).value == 0.0


# -- daily energy -------------------------------------------------------------


def sh(year: int, month: int, day: int, hour: int, minute: int) -> int:
    """UTC ns of a Shanghai wall-clock time."""
    return from_datetime(datetime(year, month, day, hour, minute, tzinfo=SH))


def test_shanghai_midnight_is_16_utc() -> None:
    assert sh(2024, 5, 2, 0, 0) == from_datetime(datetime(2024, 5, 1, 16, 0, tzinfo=UTC))


def test_daily_energy_sums_deltas_and_restarts_at_local_midnight() -> None:
    eng = engine({"today": spec("daily_energy", ["kwh"], precision=3)})
    assert only(eng.feed(good(kwh=1000.0), sh(2024, 5, 1, 23, 50))).value == 0.0
    assert only(eng.feed(good(kwh=1002.5), sh(2024, 5, 1, 23, 55))).value == 2.5
    # 1 ns before local midnight (15:59:59.999999999 UTC) is still May 1st
    last_second = sh(2024, 5, 2, 0, 0) - 1
    assert only(eng.feed(good(kwh=1003.0), last_second)).value == 3.0
    # 00:05 local = 16:05 UTC: the delta across midnight belongs to the new day
    assert only(eng.feed(good(kwh=1005.0), sh(2024, 5, 2, 0, 5))).value == 2.0
    assert only(eng.feed(good(kwh=1006.25), sh(2024, 5, 2, 0, 10))).value == 3.25
    # BAD and non-numeric samples never advance it
    assert eng.feed({"kwh": (5000.0, B)}, sh(2024, 5, 2, 0, 15)) == []
    assert eng.feed(good(kwh="err"), sh(2024, 5, 2, 0, 16)) == []
    assert only(eng.feed(good(kwh=1007.0), sh(2024, 5, 2, 0, 20))).value == 4.0


def test_daily_energy_counter_wrap() -> None:
    wrap_at = 42949672.96  # uint32 counter, scale 0.01
    eng = engine({"today": spec("daily_energy", ["kwh"], wrap_at=wrap_at)})
    eng.feed(good(kwh=42949670.00), T0)
    out = eng.feed(good(kwh=1.50), T0 + 60 * S)
    (event,) = events(out)
    assert event == Event(
        "meter.counter_wrapped",
        "tx1",
        T0 + 60 * S,
        {"point": "tx1.kwh", "previous": 42949670.00, "current": 1.50, "wrap_at": wrap_at},
    )
    assert readings(out)["tx1.today"].value == pytest.approx(4.46)
    assert only(eng.feed(good(kwh=2.0), T0 + 120 * S)).value == pytest.approx(4.96)


def test_daily_energy_meter_replacement() -> None:
    eng = engine(
        {
            "today": spec("daily_energy", ["kwh"]),
            # with wrap_at, a drop whose wrapped delta is implausible is still a replacement
            "today_w": spec("daily_energy", ["kwh"], wrap_at=42949672.96),
        }
    )
    eng.feed(good(kwh=5000.0), T0)
    eng.feed(good(kwh=5010.0), T0 + 60 * S)
    out = eng.feed(good(kwh=3.0), T0 + 120 * S)
    replaced = events(out)
    assert len(replaced) == 2
    assert all(
        e
        == Event(
            "meter.replaced",
            "tx1",
            T0 + 120 * S,
            {"point": "tx1.kwh", "previous": 5010.0, "current": 3.0},
        )
        for e in replaced
    )
    assert readings(out)["tx1.today"].value == 10.0  # delta 0, new baseline 3
    out = eng.feed(good(kwh=4.5), T0 + 180 * S)
    assert events(out) == []
    assert readings(out)["tx1.today"].value == 11.5
    assert readings(out)["tx1.today_w"].value == 11.5


def test_daily_energy_persists_across_restart(tmp_path: Path) -> None:
    path = tmp_path / "modbus-m-derived.json"
    specs = {"today": spec("daily_energy", ["kwh"])}
    state = DerivedStateStore(path).load()
    engine(specs, state=state).feed(good(kwh=100.0), sh(2024, 5, 1, 8, 0))
    engine(specs, state=state).feed(good(kwh=130.0), sh(2024, 5, 1, 12, 0))
    DerivedStateStore(path).save(state)

    # down 12:00..14:00; the meter kept counting: counted at the first sample back
    state = DerivedStateStore(path).load()
    eng = engine(specs, state=state)
    assert only(eng.feed(good(kwh=150.0), sh(2024, 5, 1, 14, 0))).value == 50.0
    DerivedStateStore(path).save(state)

    # down over midnight: the whole gap's energy goes to the new day
    state = DerivedStateStore(path).load()
    eng = engine(specs, state=state)
    assert only(eng.feed(good(kwh=170.0), sh(2024, 5, 2, 1, 0))).value == 20.0


# -- state file ---------------------------------------------------------------


def test_state_file_holds_all_devices_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "modbus-d-derived.json"
    state = DerivedState()
    engine({"h": spec("run_hours", ["run"])}, state=state, device="pump1").feed(good(run=True), T0)
    engine({"e": spec("daily_energy", ["kwh"])}, state=state, device="meter1").feed(
        good(kwh=12.5), T0
    )
    store = DerivedStateStore(path)
    store.save(state)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert data["devices"]["pump1"]["h"]["function"] == "run_hours"
    assert data["devices"]["meter1"]["e"]["counter"] == 12.5
    assert data["devices"]["meter1"]["e"]["day"] == "2024-05-01"
    loaded = store.load()
    assert loaded.devices() == {"pump1", "meter1"}
    assert loaded.get("meter1", "e") == state.get("meter1", "e")
    assert loaded.to_json() == state.to_json()
    assert not loaded.dirty


def test_aggregates_keep_no_state() -> None:
    state = DerivedState()
    engine({"m": spec("max", ["a", "b"])}, state=state).feed(good(a=1, b=2), T0)
    assert not state.dirty
    assert state.devices() == frozenset()


def test_missing_state_file_is_empty(tmp_path: Path) -> None:
    store = DerivedStateStore(tmp_path / "none.json")
    assert store.load().devices() == frozenset()
    assert store.lost is None


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "devices": {"pump1": {"h": {"function": "run_h',  # truncated
        b"\xff\xfe garbage",
        b'{"version": 2, "devices": {}}',  # a newer gateway's file
        b'{"version": 1, "devices": {"p": {"h": {"function": "run_hours", "input": "r", '
        b'"seconds": "lots"}}}}',
    ],
)
def test_corrupt_state_file_is_moved_aside(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "modbus-x-derived.json"
    path.write_bytes(content)
    store = DerivedStateStore(path)
    with caplog.at_level(logging.WARNING, logger="drivers.modbus.derived_state"):
        state = store.load()
    assert state.devices() == frozenset()
    assert not path.exists()
    (aside,) = tmp_path.iterdir()
    assert aside.name.startswith("modbus-x-derived.json.corrupt-")
    stamp = aside.name.removeprefix("modbus-x-derived.json.corrupt-")
    assert datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")  # a UTC timestamp
    assert aside.read_bytes() == content  # kept for a post-mortem
    assert store.lost is not None
    assert str(aside) in store.lost
    assert "restart from zero" in store.lost
    assert store.lost in caplog.text
    # the driver carries on: a save writes a fresh file next to the one set aside
    store.save(state)
    assert DerivedStateStore(path).load().devices() == frozenset()
    # a second corrupt file in the same second does not overwrite the first
    path.write_bytes(b"{")
    DerivedStateStore(path).load()
    assert len(list(tmp_path.glob("*.corrupt-*"))) == 2


def test_state_file_that_is_a_directory_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "modbus-x-derived.json"
    path.mkdir()
    store = DerivedStateStore(path)
    assert store.load().devices() == frozenset()
    assert store.lost is not None and "IsADirectoryError" in store.lost
    assert not path.exists()


def test_failed_save_raises_and_keeps_state_dirty(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the directory should be")
    state = DerivedState()
    engine({"s": spec("starts", ["run"])}, state=state).feed(good(run=True), T0)
    with pytest.raises(OSError):
        DerivedStateStore(blocker / "state.json").save(state)
    assert state.dirty
    assert state.get("tx1", "s") is not None


def test_point_specs_for_the_driver() -> None:
    eng = engine({"t_max": spec("max", ["a", "b"], unit="°C", deadband=0.5, heartbeat_s=600)})
    (ps,) = eng.point_specs()
    assert (ps.point, ps.unit, ps.deadband, ps.heartbeat) == ("tx1.t_max", "°C", 0.5, 600)
