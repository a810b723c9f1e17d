"""Tests for the Modbus request planner (pure computation, no device needed)."""

from __future__ import annotations

import pytest

from drivers.modbus.planner import (
    AddressRangeError,
    InvalidLimitsError,
    InvalidPointError,
    PlanError,
    PlanLimits,
    PlanPoint,
    PointTooWideError,
    Request,
    Served,
    Table,
    build_plan,
    describe,
)

H, IR, C, D = Table.HOLDING, Table.INPUT, Table.COIL, Table.DISCRETE


def spans(plan: tuple[Request, ...]) -> list[tuple[str, int, int, float]]:
    return [(str(r.table), r.start, r.count, r.interval) for r in plan]


# --- gap filling ---------------------------------------------------------------------------


def test_gap_exactly_max_gap_is_filled() -> None:
    plan = build_plan([PlanPoint("a", H, 0, 2), PlanPoint("b", H, 10, 2)])  # gap 2..9 = 8
    assert spans(plan) == [("holding", 0, 12, 1.0)]
    assert plan[0].points == (Served("a", 0, 2), Served("b", 10, 2))


def test_gap_one_over_max_gap_splits() -> None:
    plan = build_plan([PlanPoint("a", H, 0, 2), PlanPoint("b", H, 11, 2)])  # gap 9
    assert spans(plan) == [("holding", 0, 2, 1.0), ("holding", 11, 2, 1.0)]
    assert plan[1].points == (Served("b", 0, 2),)


def test_max_gap_is_configurable_and_zero_still_merges_adjacent() -> None:
    limits = PlanLimits(max_gap_registers=0)
    plan = build_plan([PlanPoint("a", IR, 0), PlanPoint("b", IR, 1), PlanPoint("c", IR, 3)], limits)
    assert spans(plan) == [("input", 0, 2, 1.0), ("input", 3, 1, 1.0)]


def test_bit_gap_uses_max_gap_bits() -> None:
    # 16 unused bits are read across; 17 are not. Registers would split at 9.
    fill = build_plan([PlanPoint("a", D, 0), PlanPoint("b", D, 17)])
    split = build_plan([PlanPoint("a", D, 0), PlanPoint("b", D, 18)])
    assert spans(fill) == [("discrete", 0, 18, 1.0)]
    assert spans(split) == [("discrete", 0, 1, 1.0), ("discrete", 18, 1, 1.0)]


# --- request size limits -------------------------------------------------------------------


def test_exactly_125_registers_is_one_request() -> None:
    points = [PlanPoint(f"p{i}", H, i * 5, 5) for i in range(25)]  # 0..124
    plan = build_plan(points)
    assert spans(plan) == [("holding", 0, 125, 1.0)]


def test_126_registers_split_into_two_requests() -> None:
    points = [PlanPoint(f"p{i}", H, i * 2, 2) for i in range(63)]  # 0..125
    plan = build_plan(points)
    assert spans(plan) == [("holding", 0, 124, 1.0), ("holding", 124, 2, 1.0)]
    assert plan[1].points == (Served("p62", 0, 2),)


def test_a_point_is_never_split_across_requests() -> None:
    # A float32 at 124 would end at 126: it moves whole to the next request.
    points = [PlanPoint("head", IR, 0, 124), PlanPoint("f", IR, 124, 2)]
    plan = build_plan(points)
    assert spans(plan) == [("input", 0, 124, 1.0), ("input", 124, 2, 1.0)]


def test_bits_limit_is_2000_not_125() -> None:
    points = [PlanPoint(f"c{i}", C, i) for i in range(2001)]
    plan = build_plan(points)
    assert spans(plan) == [("coil", 0, 2000, 1.0), ("coil", 2000, 1, 1.0)]
    assert len(plan[0].points) == 2000


def test_per_device_max_registers() -> None:
    limits = PlanLimits(max_registers=32)
    points = [PlanPoint(f"f{i}", H, i * 2, 2) for i in range(20)]  # 0..39
    plan = build_plan(points, limits)
    assert spans(plan) == [("holding", 0, 32, 1.0), ("holding", 32, 8, 1.0)]


def test_per_device_max_bits() -> None:
    limits = PlanLimits(max_bits=8)
    plan = build_plan([PlanPoint(f"d{i}", D, i) for i in range(10)], limits)
    assert spans(plan) == [("discrete", 0, 8, 1.0), ("discrete", 8, 2, 1.0)]


# --- overlap and shared registers ----------------------------------------------------------


def test_bits_of_one_status_word_share_the_register() -> None:
    points = [PlanPoint(f"bit{i}", H, 40) for i in range(4)] + [PlanPoint("next", H, 41)]
    plan = build_plan(points)
    assert spans(plan) == [("holding", 40, 2, 1.0)]
    assert [s.offset for s in plan[0].points] == [0, 0, 0, 0, 1]


def test_overlapping_points_are_served_by_one_request() -> None:
    # A uint32 at 10-11 and its low word alone at 11; a string 20-29 contains a word at 25.
    points = [
        PlanPoint("u32", H, 10, 2),
        PlanPoint("low", H, 11),
        PlanPoint("text", H, 20, 10),
        PlanPoint("inner", H, 25),
    ]
    plan = build_plan(points)
    assert spans(plan) == [("holding", 10, 20, 1.0)]
    assert plan[0].points == (
        Served("u32", 0, 2),
        Served("low", 1, 1),
        Served("text", 10, 10),
        Served("inner", 15, 1),
    )


def test_gap_is_measured_from_the_end_of_the_widest_point() -> None:
    # "inner" lies inside "wide"; the gap to "far" counts from wide's end (20), not inner's.
    points = [PlanPoint("wide", IR, 0, 20), PlanPoint("inner", IR, 1), PlanPoint("far", IR, 28)]
    assert spans(build_plan(points)) == [("input", 0, 29, 1.0)]


def test_tables_are_never_mixed() -> None:
    points = [
        PlanPoint("h", H, 0),
        PlanPoint("i", IR, 1),
        PlanPoint("c", C, 0),
        PlanPoint("d", D, 0),
    ]
    plan = build_plan(points)
    assert spans(plan) == [
        ("holding", 0, 1, 1.0),
        ("input", 1, 1, 1.0),
        ("coil", 0, 1, 1.0),
        ("discrete", 0, 1, 1.0),
    ]


# --- intervals -----------------------------------------------------------------------------


def test_points_are_grouped_by_interval() -> None:
    # "slow" lies inside the fast span but is read only on its own schedule.
    points = [
        PlanPoint("fast_a", H, 0, interval=1),
        PlanPoint("slow", H, 1, interval=60),
        PlanPoint("fast_b", H, 2, interval=1),
    ]
    plan = build_plan(points)
    assert spans(plan) == [("holding", 0, 3, 1.0), ("holding", 1, 1, 60.0)]
    assert [s.name for s in plan[0].points] == ["fast_a", "fast_b"]
    assert [s.name for s in plan[1].points] == ["slow"]


def test_every_point_is_served_exactly_once() -> None:
    points = [
        PlanPoint(f"p{i}", [H, IR, C, D][i % 4], (i * 7) % 300, 1 + i % 3, [1, 5, 60][i % 3])
        for i in range(200)
    ]
    plan = build_plan(points, PlanLimits(max_registers=40, max_bits=64))
    served = [s.name for r in plan for s in r.points]
    assert sorted(served) == sorted(p.name for p in points)
    by_name = {p.name: p for p in points}
    for r in plan:
        assert r.count <= (64 if r.table.is_bit else 40)
        for s in r.points:
            p = by_name[s.name]
            assert (p.table, p.interval, p.address, p.count) == (
                r.table,
                r.interval,
                r.start + s.offset,
                s.count,
            )
            assert s.offset + s.count <= r.count


# --- read_coils_from_zero ------------------------------------------------------------------


def test_read_coils_from_zero_starts_coil_requests_at_zero() -> None:
    limits = PlanLimits(read_coils_from_zero=True)
    points = [PlanPoint("c100", C, 100), PlanPoint("c900", C, 900), PlanPoint("d100", D, 100)]
    plan = build_plan(points, limits)
    # Coils: one read from 0 (gaps do not matter); discrete inputs are not affected.
    assert spans(plan) == [("coil", 0, 901, 1.0), ("discrete", 100, 1, 1.0)]
    assert plan[0].points == (Served("c100", 100, 1), Served("c900", 900, 1))


def test_read_coils_from_zero_rejects_coils_beyond_max_bits() -> None:
    limits = PlanLimits(max_bits=32, read_coils_from_zero=True)
    assert spans(build_plan([PlanPoint("ok", C, 31)], limits)) == [("coil", 0, 32, 1.0)]
    with pytest.raises(AddressRangeError, match="read_coils_from_zero"):
        build_plan([PlanPoint("far", C, 32)], limits)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "error", "text"),
    [
        (PlanPoint("s", H, 0, 200), PointTooWideError, "200 regs"),
        (PlanPoint("s", H, 0, 126), PointTooWideError, "at most 125"),
        (PlanPoint("b", C, 0, 2001), PointTooWideError, "at most 2000"),
        (PlanPoint("neg", H, -1), AddressRangeError, "got -1"),
        (PlanPoint("big", H, 65536), AddressRangeError, "got 65536"),
        (PlanPoint("tail", H, 65535, 2), AddressRangeError, "run past"),
        (PlanPoint("zero", H, 0, 0), InvalidPointError, "count"),
        (PlanPoint("iv", H, 0, 1, 0), InvalidPointError, "interval"),
        (PlanPoint("nan", H, 0, 1, float("nan")), InvalidPointError, "interval"),
        (PlanPoint("tbl", "holding", 0), InvalidPointError, "table"),  # type: ignore[arg-type]
    ],
)
def test_bad_points_raise_typed_errors_naming_the_point(
    point: PlanPoint, error: type[PlanError], text: str
) -> None:
    with pytest.raises(error, match=text) as info:
        build_plan([PlanPoint("good", H, 0), point])
    assert repr(point.name) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_last_address_is_readable() -> None:
    assert spans(build_plan([PlanPoint("last", H, 65535)])) == [("holding", 65535, 1, 1.0)]


def test_point_wider_than_device_limit() -> None:
    with pytest.raises(PointTooWideError, match="at most 32"):
        build_plan([PlanPoint("name", H, 0, 40)], PlanLimits(max_registers=32))


def test_duplicate_point_names_are_rejected() -> None:
    with pytest.raises(InvalidPointError, match="twice"):
        build_plan([PlanPoint("x", H, 0), PlanPoint("x", IR, 0)])


@pytest.mark.parametrize(
    "kwargs",
    [{"max_registers": 0}, {"max_registers": 126}, {"max_bits": 2001}, {"max_gap_bits": -1}],
)
def test_bad_limits_are_rejected(kwargs: dict[str, int]) -> None:
    with pytest.raises(InvalidLimitsError, match=next(iter(kwargs))):
        PlanLimits(**kwargs)  # type: ignore[arg-type]


def test_empty_device_gives_empty_plan() -> None:
    assert build_plan([]) == ()
    assert describe(()) == "0 requests (0 registers, 0 bits)"


# --- a realistic map -----------------------------------------------------------------------

# Eastron SDM630 (Modbus V2) input-register layout, 0-based addresses, float32 register pairs,
# as published in Eastron's "SDM630 Modbus protocol" document (30001 = address 0).
SDM630_FAST = {
    "voltage_l1": 0, "voltage_l2": 2, "voltage_l3": 4,
    "current_l1": 6, "current_l2": 8, "current_l3": 10,
    "active_power_l1": 12, "active_power_l2": 14, "active_power_l3": 16,
    "apparent_power_l1": 18, "apparent_power_l2": 20, "apparent_power_l3": 22,
    "reactive_power_l1": 24, "reactive_power_l2": 26, "reactive_power_l3": 28,
    "power_factor_l1": 30, "power_factor_l2": 32, "power_factor_l3": 34,
    "voltage_ln_avg": 42, "current_avg": 46, "current_sum": 48,
    "active_power_total": 52, "apparent_power_total": 56, "reactive_power_total": 60,
    "power_factor_total": 62, "frequency": 70,
    "voltage_l1_l2": 200, "voltage_l2_l3": 202, "voltage_l3_l1": 204,
    "current_neutral": 224,
}  # fmt: skip
SDM630_SLOW = {
    "import_energy": 72, "export_energy": 74,
    "voltage_thd_l1": 234, "voltage_thd_l2": 236, "voltage_thd_l3": 238,
    "current_thd_l1": 240, "current_thd_l2": 242, "current_thd_l3": 244,
    "total_energy": 342, "total_reactive_energy": 344,
}  # fmt: skip


def sdm630_points() -> list[PlanPoint]:
    fast = [PlanPoint(f"pm1.{n}", IR, a, 2, 1) for n, a in SDM630_FAST.items()]
    slow = [PlanPoint(f"pm1.{n}", IR, a, 2, 60) for n, a in SDM630_SLOW.items()]
    return fast + slow


def ttc_points() -> list[PlanPoint]:
    """A dry-type transformer temperature controller (our own map, not a vendor's).

    Input registers: winding temperatures A/B/C, the device's own maximum and the ambient
    at 0-4 (int16, 0.1 C), a status word at 8 (bit 0/1 fan 1/2 running, 2 alarm, 3 trip,
    4-6 sensor fault A/B/C, 7 fan fault), fan run hours at 10-11 (uint32).
    Holding registers 100-103: alarm, trip, fan-on and fan-off setpoints.
    Coils 16/17: fan forced on, alarm silenced. The device only answers coil reads from 0
    and at most 32 registers per request.
    """
    temps = ["winding_temp_a", "winding_temp_b", "winding_temp_c", "winding_temp_max", "ambient"]
    bits = ["fan1_running", "fan2_running", "alarm", "trip"]
    bits += ["sensor_fault_a", "sensor_fault_b", "sensor_fault_c", "fan_fault"]
    setpoints = ["alarm_setpoint", "trip_setpoint", "fan_on_setpoint", "fan_off_setpoint"]
    return [
        *(PlanPoint(f"tx1.{n}", IR, a) for a, n in enumerate(temps)),
        *(PlanPoint(f"tx1.{n}", IR, 8) for n in bits),
        PlanPoint("tx1.fan_run_hours", IR, 10, 2, 60),
        *(PlanPoint(f"tx1.{n}", H, 100 + a, 1, 300) for a, n in enumerate(setpoints)),
        PlanPoint("tx1.fan_forced_on", C, 16),
        PlanPoint("tx1.alarm_silenced", C, 17),
    ]


def test_plan_for_a_realistic_estate() -> None:
    """The plans for a meter and a transformer controller; run with -s to see them."""
    meter = build_plan(sdm630_points())
    assert spans(meter) == [
        ("input", 0, 72, 1.0),  # 26 values across the reserved 36-41, 44-45, 50-51, ...
        ("input", 200, 6, 1.0),  # line-to-line voltages
        ("input", 224, 2, 1.0),  # neutral current: 18 registers past 205, more than max_gap
        ("input", 72, 4, 60.0),  # energy right after frequency, but on the slow schedule
        ("input", 234, 12, 60.0),  # THD
        ("input", 342, 4, 60.0),  # total energies
    ]
    assert len(meter[0].points) == 26

    ttc_limits = PlanLimits(max_registers=32, read_coils_from_zero=True)
    ttc = build_plan(ttc_points(), ttc_limits)
    assert spans(ttc) == [
        ("input", 0, 9, 1.0),
        ("coil", 0, 18, 1.0),
        ("input", 10, 2, 60.0),
        ("holding", 100, 4, 300.0),
    ]
    assert [s.offset for s in ttc[0].points] == [0, 1, 2, 3, 4] + [8] * 8
    assert [s.offset for s in ttc[1].points] == [16, 17]

    # A wider max_gap for the meter trades 16 unused registers for one request less.
    wide = build_plan(sdm630_points(), PlanLimits(max_gap_registers=18))
    assert spans(wide)[:2] == [("input", 0, 72, 1.0), ("input", 200, 26, 1.0)]

    text = describe(meter)
    first = text.splitlines()[1]
    assert first.startswith("input 0-71 (72 regs) every 1 s: pm1.voltage_l1@0, pm1.voltage_l2@2")
    assert text.splitlines()[0] == "6 requests (100 registers, 0 bits)"
    ttc_text = describe(ttc)
    assert "coil 0-17 (18 bits) every 1 s: tx1.fan_forced_on@16, tx1.alarm_silenced@17" in ttc_text
    print("\nSDM630 power meter (unit 1):\n" + text)
    print("\nDry-type transformer temperature controller (unit 2):\n" + ttc_text)
