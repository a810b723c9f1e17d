"""The ``type: modbus`` block through the real site loader: profiles, merging, errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from drivers.modbus.config import ModbusDriverConfig
from drivers.modbus.datatypes import ByteOrder
from gateway.config.loader import ConfigError, load_site
from gateway.model import Priority

PROFILE = """\
name: test_tc
kind: transformer
title: {en: Test TC, zh-CN: 测试温控器}
description: A test map.
source: Written for this test.
order: CDAB
params: {rated_current_a: null, fan_on_c: 110}
points:
  temp_a: {table: input, address: 0, type: int16, scale: 0.1, unit: "°C"}
  temp_b: {table: input, address: 1, type: int16, scale: 0.1, unit: "°C"}
  current: {table: input, address: 2, type: float32}
  status: {address: 0, type: bitfield, bits: {fan: 0, trip: 2}}
derived:
  temp_max: {function: max, inputs: [temp_a, temp_b], unit: "°C"}
  load: {function: load_percent, inputs: [current], rating: rated_current_a, unit: "%"}
limits:
  hot: {point: temp_max, high: 130, priority: high, description: winding alarm}
  trip: {point: trip, high: 1, priority: critical}
"""


def site(tmp: Path, device: str, rules: str = "") -> Path:
    (tmp / "profiles").mkdir(exist_ok=True)
    (tmp / "profiles" / "test_tc.yaml").write_text(PROFILE, encoding="utf-8")
    body = textwrap.indent(textwrap.dedent(device).strip(), " " * 10)
    text = f"""\
version: 1
site: {{id: t}}
devices:
  - {{id: tx1, kind: transformer}}
  - {{id: tx2, kind: transformer}}
drivers:
  - type: modbus
    id: mb
    connections:
      - host: 127.0.0.1
        devices:
{body}
{rules}
"""
    path = tmp / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def modbus(path: Path) -> ModbusDriverConfig:
    cfg = load_site(path).config.drivers[0]
    assert isinstance(cfg, ModbusDriverConfig)
    return cfg


def problems(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_site(path)
    return str(info.value)


def test_profile_points_derived_and_limits_are_merged(tmp_path: Path) -> None:
    path = site(
        tmp_path,
        """
        - device: tx1
          profile: test_tc
          params: {rated_current_a: 1443}
          points:
            temp_c: {table: input, address: 4, type: int16, scale: 0.1}
          limits:
            hot: {high: 120}
            trip: {enabled: false}
        """,
        "rules:\n  - {id: tx1-hot, point: tx1.temp_max, high: 125, priority: critical}\n",
    )
    loaded = load_site(path)
    (dev,) = modbus(path).resolved
    assert set(dev.points) == {"temp_a", "temp_b", "current", "status", "temp_c"}
    assert dev.params == {"rated_current_a": 1443, "fan_on_c": 110}
    assert dev.specs["current"].order is ByteOrder.CDAB  # the profile's order
    assert dev.specs["temp_a"].order is ByteOrder.AB  # one register: only the byte swap counts
    points = {p.point for p in loaded.points}
    assert {"tx1.fan", "tx1.trip", "tx1.temp_max", "tx1.load", "tx1.temp_c"} <= points
    assert "tx1.status" not in points
    assert set(dev.limits) == {"hot"} and dev.limits["hot"].high == 120
    (rule,) = [r for r in loaded.rules if r.id == "tx1-hot"]
    assert rule.levels()["H"][0] == 125
    assert rule.priority is Priority.CRITICAL and rule.origin == "site"


def test_profile_default_limit_becomes_a_rule(tmp_path: Path) -> None:
    path = site(tmp_path, "- {device: tx1, profile: test_tc, params: {rated_current_a: 100}}")
    rules = {r.id: r for r in load_site(path).rules}
    assert rules["tx1-hot"].levels()["H"][0] == 130 and rules["tx1-hot"].point == "tx1.temp_max"
    assert rules["tx1-trip"].priority is Priority.CRITICAL
    assert rules["tx1-hot"].origin == "profile test_tc"


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("- {device: tx1, profile: nope}", "unknown profile 'nope'"),
        ("- {device: tx1, profile: test_tc}", "rated_current_a"),
        (
            "- {device: tx1, profile: test_tc, params: {rated_current_a: 1}, "
            "limits: {cold: {low: 1}}}",
            "'cold' is not a limit of the profile (it has: hot, trip)",
        ),
        (
            "- {device: tx1, points: {a: {address: 0}, b: {address: 1, type: bitfield, "
            "bits: {a: 0}}}}",
            "point name 'a' is produced twice",
        ),
        (
            "- {device: tx1, points: {a: {address: 0}}, derived: {m: {function: max, "
            "inputs: [a, zz]}}}",
            "input 'zz' is not a point of the device",
        ),
        (
            "- {device: tx1, points: {a: {table: coil, address: 0, type: int16}}}",
            "type int16 does not fit table coil",
        ),
        (
            "- {device: tx1, points: {a: {table: input, address: 0, write: {roles: [admin]}}}}",
            "a input point cannot be written",
        ),
        (
            "- {device: tx1, points: {a: {address: 0, type: int16, bit: 3}}}",
            "option 'bit': not allowed",
        ),
        (
            "- {device: tx1, points: {s: {address: 0, type: string, length: 130}}}",
            "length",
        ),
        (
            "- {device: tx1, unit: 3, points: {a: {address: 0}}}\n"
            "- {device: tx2, unit: 3, points: {a: {address: 0}}}",
            "unit 3 is used by both tx1 and tx2",
        ),
        ("- {device: tx1, points: {A-b: {address: 0}}}", "point name 'A-b'"),
        ("- {device: tx1}", "no points: give a profile or points"),
        (
            "- {device: tx1, workarounds: {max_registers: 2}, points: "
            "{a: {address: 0, type: float64}}}",
            "needs 4 regs but one request carries at most 2",
        ),
    ],
)
def test_errors_name_the_problem(tmp_path: Path, device: str, message: str) -> None:
    text = problems(site(tmp_path, device))
    assert message in text, text
    assert "site.yaml:" in text  # every problem points into the file


def test_broken_profile_names_its_file(tmp_path: Path) -> None:
    path = site(tmp_path, "- {device: tx1, profile: test_tc, params: {rated_current_a: 1}}")
    broken = PROFILE.replace("type: float32}", "type: float32, bit: 2}")
    (tmp_path / "profiles" / "test_tc.yaml").write_text(broken, encoding="utf-8")
    text = problems(path)
    assert "test_tc.yaml" in text and "points.current" in text and "'bit'" in text


def test_serial_connection_needs_a_port_and_gets_a_pause(tmp_path: Path) -> None:
    base = {"type": "modbus", "id": "m"}
    dev = [{"device": "p1", "points": {"a": {"address": 0}}}]
    with pytest.raises(ValueError, match="transport rtu needs serial_port"):
        ModbusDriverConfig.model_validate(
            base | {"connections": [{"transport": "rtu", "devices": dev}]}
        )
    cfg = ModbusDriverConfig.model_validate(
        base
        | {
            "connections": [
                {"transport": "rtu", "serial_port": "/dev/ttyS1", "baudrate": 9600, "devices": dev}
            ]
        }
    )
    conn = cfg.connections[0]
    assert conn.name == "/dev/ttyS1"
    assert conn.effective_pause_s == pytest.approx(3.5 * 11 / 9600)


def test_the_sample_block_loads(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[3] / "drivers" / "modbus" / "sample.yaml"
    kinds = {"tx1": "transformer", "pm1": "power_meter", "pump1": "pump", "pump2": "pump"}
    kinds |= {"tank1": "tank", "dio1": "other", "hvac1": "hvac"}
    devices = "".join(f"  - {{id: {d}, kind: {k}}}\n" for d, k in kinds.items())
    site_file = tmp_path / "site.yaml"
    site_file.write_text(f"version: 1\nsite: {{id: s}}\ninclude: [{sample}]\ndevices:\n{devices}")
    loaded = load_site(site_file)
    points = {p.point for p in loaded.points}
    assert {"tx1.winding_temp_max", "pm1.daily_energy", "hvac1.compressor_on"} <= points
    rules = {r.id: r for r in loaded.rules}
    assert rules["tx1-winding_alarm"].levels()["H"][0] == 125
    assert rules["pm1-pf_low"].levels()["L"][0] == 0.92
    assert rules["pm1-pf_low"].priority is Priority.HIGH
