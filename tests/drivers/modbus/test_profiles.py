"""The shipped profile library (config/profiles/): every file loads, resolves and plans.

Each profile is resolved inside a full ``ModbusDriverConfig`` (the path a
site file takes), its plan is printed (``pytest -s`` shows them) and kept
small, and the default limits the issue asks for are checked by value. Site
overrides of limits, unknown names and broken files are checked against
real files in tmp_path.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from drivers.modbus.config import ModbusDriverConfig, ResolvedDevice
from drivers.modbus.datatypes import DataType
from drivers.modbus.planner import describe
from drivers.modbus.profiles import LIBRARY_DIR, ProfileError, ProfileLibrary
from gateway.model import Priority

PROFILES = sorted(p.stem for p in LIBRARY_DIR.glob("*.yaml"))

# What a site must give for the profiles' null parameters.
REQUIRED = {"rated_current_a": 1443.0, "tank_height_m": 3.0}


def driver_config(
    devices: list[dict[str, Any]], base_dir: Path | None = None
) -> ModbusDriverConfig:
    block = {
        "type": "modbus",
        "id": "test",
        "connections": [{"transport": "tcp", "host": "127.0.0.1", "port": 502, "devices": devices}],
    }
    context = {"base_dir": str(base_dir)} if base_dir is not None else None
    return ModbusDriverConfig.model_validate(block, context=context)


def resolve(profile: str, **device: Any) -> ResolvedDevice:
    library = ProfileLibrary([LIBRARY_DIR])
    needed = {k: REQUIRED[k] for k, v in library.load(profile).params.items() if v is None}
    entry = {"device": "dev1", "unit": 1, "profile": profile, "params": needed, **device}
    return driver_config([entry]).resolved[0]


def test_the_library_has_the_seven_kinds_of_device() -> None:
    assert set(PROFILES) >= {
        "dry_type_tc",
        "oil_transformer_monitor",
        "eastron_sdm630",
        "power_meter_3ph",
        "capacitor_bank_controller",
        "booster_pump_vfd",
        "level_sensor",
        "dio_module_16ch",
    }


@pytest.mark.parametrize("name", PROFILES)
def test_profile_loads_resolves_and_plans_in_a_few_requests(name: str) -> None:
    profile = ProfileLibrary([LIBRARY_DIR]).load(name)
    assert profile.name == name
    assert profile.title["en"] and profile.title["zh-CN"]
    assert len(profile.description) > 80 and len(profile.source) > 40
    missing = [k for k, v in profile.params.items() if v is None and k not in REQUIRED]
    assert not missing, f"add a value for {missing} to REQUIRED"

    device = resolve(name)
    plan = device.plan
    print(f"\n{name}: {describe(plan)}")
    assert 1 <= len(plan) <= 4
    assert all(r.count <= 125 for r in plan if not r.table.is_bit)
    served = {s.name for r in plan for s in r.points}
    assert served == set(profile.points)  # every point is read, none twice


@pytest.mark.parametrize("name", PROFILES)
def test_every_point_says_what_it_is_and_numbers_carry_units(name: str) -> None:
    profile = ProfileLibrary([LIBRARY_DIR]).load(name)
    for point_name, point in profile.points.items():
        assert point.description, f"{name}.{point_name} has no description"
        kind = point.spec.type
        numeric = kind not in (DataType.BOOL, DataType.BIT, DataType.BITFIELD, DataType.ENUM)
        dimensionless = {"fault_code", "step_count"} | {p for p in profile.points if "pf" in p}
        if numeric and point_name not in dimensionless:
            assert point.unit, f"{name}.{point_name} has no unit"
        if point.write is not None:
            assert set(point.write.roles) == {"engineer", "supervisor"}
    for derived_name, derived in profile.derived.items():
        assert derived.description, f"{name}.{derived_name} has no description"
    for limit_name, limit in profile.limits.items():
        assert limit.description, f"{name}.limits.{limit_name} has no description"


def limit(device: ResolvedDevice, name: str) -> tuple[str, float | None, float | None, Priority]:
    lim = device.limits[name]
    return lim.point, lim.high, lim.low, lim.priority


def test_dry_type_limits_are_f_class_alarm_130_trip_150() -> None:
    tx = resolve("dry_type_tc")
    assert limit(tx, "winding_alarm") == ("winding_temp_max", 130, None, Priority.HIGH)
    assert limit(tx, "winding_trip") == ("winding_temp_max", 150, None, Priority.CRITICAL)
    assert limit(tx, "sensor_fault") == ("sensor_fault", 1, None, Priority.MEDIUM)
    assert limit(tx, "trip_output") == ("trip_output", 1, None, Priority.CRITICAL)
    # The 110 °C fan start is a controller setpoint, not an alarm.
    assert all(lim.high != 110 for lim in tx.limits.values())
    assert tx.derived["winding_temp_max"].inputs == [
        "winding_temp_a",
        "winding_temp_b",
        "winding_temp_c",
    ]


def test_oil_transformer_limits_are_typical_onan() -> None:
    tx = resolve("oil_transformer_monitor")
    assert limit(tx, "top_oil_alarm") == ("top_oil_temp", 85, None, Priority.HIGH)
    assert limit(tx, "top_oil_trip") == ("top_oil_temp", 95, None, Priority.CRITICAL)
    assert limit(tx, "gas_relay_trip") == ("gas_relay_trip", 1, None, Priority.CRITICAL)


@pytest.mark.parametrize("name", ["eastron_sdm630", "power_meter_3ph"])
def test_meters_alarm_below_pf_0_9_and_count_daily_energy(name: str) -> None:
    meter = resolve(name)
    assert limit(meter, "pf_low") == ("power_factor", None, 0.9, Priority.MEDIUM)
    assert meter.derived["daily_energy"].inputs == ["import_energy"]
    assert meter.params["rated_current_a"] == 1443.0


def test_sdm630_map_is_the_published_one() -> None:
    """The addresses of the Eastron "SDM630 Modbus Protocol" table, float32 ABCD."""
    profile = ProfileLibrary([LIBRARY_DIR]).load("eastron_sdm630")
    published = {
        "voltage_a": 0x00,
        "voltage_b": 0x02,
        "voltage_c": 0x04,
        "current_a": 0x06,
        "current_b": 0x08,
        "current_c": 0x0A,
        "active_power_a": 0x0C,
        "active_power_b": 0x0E,
        "active_power_c": 0x10,
        "pf_a": 0x1E,
        "pf_b": 0x20,
        "pf_c": 0x22,
        "active_power": 0x34,
        "apparent_power": 0x38,
        "reactive_power": 0x3C,
        "meter_pf": 0x3E,
        "frequency": 0x46,
        "import_energy": 0x48,
        "export_energy": 0x4A,
        "total_energy": 0x156,
    }
    assert {n: p.address for n, p in profile.points.items()} == published
    assert all(
        p.table == "input" and p.spec.type is DataType.FLOAT32 for p in profile.points.values()
    )
    assert profile.order == "ABCD"


def test_integer_meter_counts_daily_energy_across_the_counter_wrap() -> None:
    meter = resolve("power_meter_3ph")
    energy = meter.points["import_energy"]
    assert energy.spec.type is DataType.UINT32 and energy.scale == 0.01
    assert meter.derived["daily_energy"].wrap_at == pytest.approx(2**32 * 0.01)


def test_capacitor_bank_pf_limit_and_writable_target() -> None:
    bank = resolve("capacitor_bank_controller")
    assert limit(bank, "pf_low") == ("measured_pf", None, 0.9, Priority.MEDIUM)
    target = bank.points["pf_target"].write
    assert target is not None and (target.min, target.max) == (0.8, 1.0)
    assert "step_12" in bank.output_names() and "steps_in_service" in bank.derived


def test_pump_limits_fault_code_not_zero_and_low_pressure() -> None:
    pump = resolve("booster_pump_vfd")
    assert limit(pump, "drive_fault") == ("fault_code", 1, None, Priority.HIGH)
    assert limit(pump, "outlet_pressure_low")[0:3] == ("outlet_pressure", None, 0.25)
    assert limit(pump, "motor_overload")[0:2] == ("motor_load_percent", 105)
    assert pump.derived["run_hours"].inputs == ["running"]
    assert pump.derived["starts"].inputs == ["running"]
    reset = pump.points["fault_reset"].write
    assert reset is not None and reset.pulse_s == 1


def test_tank_low_level_is_a_high_priority_limit() -> None:
    tank = resolve("level_sensor")
    assert limit(tank, "low_level") == ("level_percent", None, 20, Priority.HIGH)
    assert limit(tank, "high_level")[0:2] == ("level_percent", 90)
    assert tank.derived["level_percent"].rating == "tank_height_m"


def test_dio_module_has_no_default_limits_and_writable_relays() -> None:
    dio = resolve("dio_module_16ch")
    assert dio.limits == {}
    assert [f"di_{i:02d}" for i in range(1, 17)] == [n for n in dio.points if n.startswith("di_")]
    relays = [p for n, p in dio.points.items() if n.startswith("do_")]
    assert len(relays) == 8 and all(p.write is not None for p in relays)


# --- site overrides ------------------------------------------------------------------------


def test_site_limit_override_changes_the_value_and_keeps_the_rest() -> None:
    tx = resolve("dry_type_tc", limits={"winding_alarm": {"high": 120}})
    assert limit(tx, "winding_alarm") == ("winding_temp_max", 120, None, Priority.HIGH)
    assert limit(tx, "winding_trip")[1] == 150  # untouched


def test_site_can_disable_a_limit_and_it_leaves_the_rules() -> None:
    config = driver_config(
        [
            {
                "device": "tx1",
                "unit": 1,
                "profile": "dry_type_tc",
                "limits": {"winding_trip": {"enabled": False}, "sensor_fault": {"priority": "low"}},
            }
        ]
    )
    rules = {(r.point, r.high, r.priority) for r in config.rules()}
    assert ("tx1.winding_temp_max", 130, Priority.HIGH) in rules
    assert ("tx1.sensor_fault", 1, Priority.LOW) in rules
    assert all(r.high != 150 for r in config.rules())
    assert "winding_trip" not in config.resolved[0].limits
    assert all(r.origin == "profile dry_type_tc" for r in config.rules())


def test_an_unknown_limit_name_lists_the_profiles_limits() -> None:
    with pytest.raises(ValidationError) as info:
        resolve("dry_type_tc", limits={"winding_hot": {"high": 120}})
    message = str(info.value)
    assert "'winding_hot' is not a limit of the profile" in message
    assert "winding_alarm" in message and "winding_trip" in message


def test_a_missing_parameter_is_named() -> None:
    with pytest.raises(ValidationError, match="rated_current_a"):
        driver_config([{"device": "pm1", "unit": 1, "profile": "eastron_sdm630"}])


def test_an_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError) as info:
        ProfileLibrary([LIBRARY_DIR]).load("dry_type_controller")
    message = str(info.value)
    assert "unknown profile 'dry_type_controller'" in message
    for name in PROFILES:
        assert name in message
    with pytest.raises(
        ValidationError, match=r"connections\[0\]\.devices\[0\] \(tx1\).*dry_type_tc"
    ):
        driver_config([{"device": "tx1", "unit": 1, "profile": "dry_type_controller"}])


def test_a_broken_profile_file_is_named(tmp_path: Path) -> None:
    site_profiles = tmp_path / "profiles"
    site_profiles.mkdir()
    text = (LIBRARY_DIR / "level_sensor.yaml").read_text(encoding="utf-8")
    text = text.replace("name: level_sensor", "name: broken_level")
    # A bad type option: 'bits' belongs to bitfield, not to uint16.
    text = text.replace("type: uint16, scale: 0.001", "type: uint16, bits: {x: 0}, scale: 0.001")
    assert "bits: {x: 0}" in text
    broken = site_profiles / "broken_level.yaml"
    broken.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        ProfileLibrary([site_profiles, LIBRARY_DIR]).load("broken_level")
    assert str(broken) in str(info.value)
    assert "points.level" in str(info.value) and "'bits'" in str(info.value)
    device = {"device": "t1", "unit": 1, "profile": "broken_level", "params": REQUIRED}
    with pytest.raises(ValidationError) as site_info:
        driver_config([device], base_dir=tmp_path)
    assert str(broken) in str(site_info.value)


def test_a_profile_whose_name_differs_from_its_file_is_refused(tmp_path: Path) -> None:
    shutil.copy(LIBRARY_DIR / "level_sensor.yaml", tmp_path / "tank_gauge.yaml")
    with pytest.raises(ProfileError, match=r"tank_gauge.yaml: name is 'level_sensor'"):
        ProfileLibrary([tmp_path]).load("tank_gauge")


def test_a_site_profile_shadows_the_library(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    text = (LIBRARY_DIR / "dry_type_tc.yaml").read_text(encoding="utf-8")
    (tmp_path / "profiles" / "dry_type_tc.yaml").write_text(
        text.replace("high: 130, priority: high", "high: 120, priority: high"), encoding="utf-8"
    )
    config = driver_config([{"device": "tx1", "unit": 1, "profile": "dry_type_tc"}], tmp_path)
    assert config.resolved[0].limits["winding_alarm"].high == 120
    assert resolve("dry_type_tc").limits["winding_alarm"].high == 130  # the library is untouched


# --- the README -----------------------------------------------------------------------------

README = LIBRARY_DIR / "README.md"


def test_readme_lists_every_profile() -> None:
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", README.read_text(encoding="utf-8"), re.MULTILINE)
    assert sorted(rows) == PROFILES


def test_readme_site_example_validates() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    site = yaml.safe_load(blocks[0])
    config = ModbusDriverConfig.model_validate(site["drivers"][0])
    assert set(config.devices()) == {d["id"] for d in site["devices"]}
    tx1 = config.resolved[0]
    assert tx1.limits["winding_alarm"].high == 125 and "trip_output" not in tx1.limits
    assert tx1.limits["sensor_fault"].priority is Priority.HIGH
    dio = config.resolved[3]
    assert dio.points["di_01"].description.startswith("B1 power room door")
    # The secondary-value example: currents scaled by the CT ratio.
    secondary = yaml.safe_load(blocks[1])["points"]
    meter = resolve("power_meter_3ph", points=secondary)
    assert meter.specs["current_a"].scale == 30
