"""The Modbus driver end to end against the simulator over real TCP.

Asserts values, events and counts, never durations.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from drivers.modbus.config import ModbusDriverConfig
from drivers.modbus.datatypes import ByteOrder, DataType, ValueSpec
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.planner import Table
from drivers.modbus.simulator import ModbusSimulator, SimPoint, SimulatedDevice
from gateway.model import Command, Quality, Reading
from tests.fixtures.driver_harness import Harness, running

MAP: dict[str, Any] = {
    "temp_a": {"table": "input", "address": 0, "type": "int16", "scale": 0.1, "unit": "°C"},
    "temp_b": {"table": "input", "address": 1, "type": "int16", "scale": 0.1, "unit": "°C"},
    "temp_c": {"table": "input", "address": 2, "type": "int16", "scale": 0.1, "unit": "°C"},
    "current": {"table": "holding", "address": 10, "type": "float32", "order": "CDAB"},
    "status": {"address": 12, "type": "bitfield", "bits": {"fan": 0, "alarm": 1}},
    "mode": {"address": 13, "type": "enum", "labels": {0: "auto", 1: "manual"}},
    "energy": {"table": "input", "address": 4, "type": "uint32", "scale": 0.01, "unit": "kWh"},
    "run": {"table": "coil", "address": 0},
    "speed": {"address": 14, "type": "uint16", "write": {"roles": ["engineer"], "max": 1500}},
}
DERIVED: dict[str, Any] = {
    "temp_max": {"function": "max", "inputs": ["temp_a", "temp_b", "temp_c"]},
    "load": {"function": "load_percent", "inputs": ["current"], "rating": "rated_a"},
    "run_hours": {"function": "run_hours", "inputs": ["run"]},
    "starts": {"function": "starts", "inputs": ["run"]},
    "energy_today": {"function": "daily_energy", "inputs": ["energy"], "wrap_at": 42949672.96},
}


def sim_device(unit: int, **values: Any) -> SimulatedDevice:
    init = {
        "temp_a": 81.5,
        "temp_b": 83.0,
        "temp_c": 79.9,
        "current": 120.0,
        "status": {"fan": True, "alarm": False},
        "mode": "auto",
        "energy": 1000.0,
        "run": True,
        "speed": 900,
    } | values
    specs = {
        "temp_a": (Table.INPUT, 0, ValueSpec(DataType.INT16, scale=0.1)),
        "temp_b": (Table.INPUT, 1, ValueSpec(DataType.INT16, scale=0.1)),
        "temp_c": (Table.INPUT, 2, ValueSpec(DataType.INT16, scale=0.1)),
        "energy": (Table.INPUT, 4, ValueSpec(DataType.UINT32, scale=0.01)),
        "current": (Table.HOLDING, 10, ValueSpec(DataType.FLOAT32, order=ByteOrder.CDAB)),
        "status": (Table.HOLDING, 12, ValueSpec(DataType.BITFIELD, bits={"fan": 0, "alarm": 1})),
        "mode": (Table.HOLDING, 13, ValueSpec(DataType.ENUM, labels={0: "auto", 1: "manual"})),
        "speed": (Table.HOLDING, 14, ValueSpec(DataType.UINT16)),
        "run": (Table.COIL, 0, ValueSpec(DataType.BOOL)),
    }
    # lenient: the planner reads across the unused register 3 (max_gap_registers)
    return SimulatedDevice(
        unit, [SimPoint(n, t, a, spec, init[n]) for n, (t, a, spec) in specs.items()], lenient=True
    )


def driver_config(
    port: int, units: list[int], tmp: Path, interval: float = 0.1, **conn: Any
) -> ModbusDriverConfig:
    block = {
        "type": "modbus",
        "id": "mb",
        "offline_min_s": 0.2,
        "offline_max_s": 1.0,
        "state_flush_s": 0.2,
        "connections": [
            {
                "host": "127.0.0.1",
                "port": port,
                "timeout_s": 0.3,
                "retries": 0,
                **conn,
                "devices": [
                    {
                        "device": f"d{u}",
                        "unit": u,
                        "interval_s": interval,
                        "params": {"rated_a": 200},
                        "points": MAP,
                        "derived": DERIVED,
                    }
                    for u in units
                ],
            }
        ],
    }
    return ModbusDriverConfig.model_validate(block, context={"base_dir": tmp})


@pytest_asyncio.fixture(loop_scope="function")
async def sim() -> AsyncIterator[ModbusSimulator]:
    async with ModbusSimulator([sim_device(1), sim_device(2)]) as s:
        yield s


def latest(h: Harness, point: str) -> Reading | None:
    found = [r for r in h.readings() if r.point == point]
    return found[-1] if found else None


async def test_every_point_becomes_a_reading(sim: ModbusSimulator, tmp_path: Path) -> None:
    driver = ModbusDriver(driver_config(sim.port, [1, 2], tmp_path))
    async with running(driver, tmp_path) as h:
        wanted = {f"d{u}.{n}" for u in (1, 2) for n in ("temp_a", "fan", "alarm", "load")}
        await h.until(lambda: wanted <= {r.point for r in h.readings()}, what="all points")
        values = {r.point: r for r in h.readings()}
    assert values["d1.temp_a"].value == pytest.approx(81.5)
    assert values["d1.current"].value == pytest.approx(120.0)
    assert values["d1.fan"].value is True and values["d1.alarm"].value is False
    assert "d1.status" not in values  # a bitfield publishes its bits, not the word
    assert values["d1.mode"].value == "auto"
    assert values["d1.run"].value is True
    assert values["d1.energy"].value == pytest.approx(1000.0)
    assert values["d1.temp_max"].value == pytest.approx(83.0)
    assert values["d1.load"].value == pytest.approx(60.0)
    assert all(r.quality is Quality.GOOD for r in values.values())


async def test_unknown_enum_code_is_uncertain(sim: ModbusSimulator, tmp_path: Path) -> None:
    sim.device(1).set("mode", "manual")
    driver = ModbusDriver(driver_config(sim.port, [1], tmp_path))
    async with running(driver, tmp_path) as h:
        await h.until(lambda: latest(h, "d1.mode"), what="mode")
        sim.device(1)._memory[Table.HOLDING][13] = 7  # a code the table does not know
        got = await h.until(
            lambda: (r := latest(h, "d1.mode")) is not None and r.value == "7" and r,
            what="unknown code",
        )
    assert got.quality is Quality.UNCERTAIN


async def test_exception_and_garbage_take_a_device_offline_and_back(
    sim: ModbusSimulator, tmp_path: Path
) -> None:
    driver = ModbusDriver(driver_config(sim.port, [1, 2], tmp_path))
    async with running(driver, tmp_path) as h:
        await h.until(lambda: latest(h, "d1.temp_a"), what="first reading")
        sim.faults(1).exception(4)
        off = await h.until(lambda: h.events("device.offline"), what="offline")
        assert off[0].source == "d1" and "DeviceException" in off[0].data["reason"]
        sim.faults(1).clear()
        await h.until(lambda: h.events("device.online"), what="online")
        sim.faults(2).garbage()
        await h.until(
            lambda: [e for e in h.events("device.offline") if e.source == "d2"], what="d2 off"
        )
        sim.faults(2).clear()
        await h.until(
            lambda: [e for e in h.events("device.online") if e.source == "d2"], what="d2 on"
        )
        # d1 kept answering while d2 was broken
        assert driver.pollers["d1"].stats.failures >= 1
        assert driver.pollers["d1"].stats.reads > 1


async def test_dead_slave_among_twenty_does_not_delay_the_others(tmp_path: Path) -> None:
    units = list(range(1, 22))
    async with ModbusSimulator([sim_device(u) for u in units]) as sim:
        sim.faults(21).silent()
        # 21 units x 3 requests at 0.5 s on one connection; without the breaker the
        # dead unit would cost 3 timeouts (0.9 s) per cycle and every unit would miss ticks.
        cfg = driver_config(sim.port, units, tmp_path, interval=0.5)
        driver = ModbusDriver(cfg)
        async with running(driver, tmp_path) as h:
            await h.until(lambda: len(driver.pollers) == 21, what="pollers")
            healthy = [driver.pollers[f"d{u}"] for u in units[:-1]]
            dead = driver.pollers["d21"]
            await h.until(lambda: min(p.stats.reads for p in healthy) >= 18, what="6 cycles")
            offline = [e for e in h.events("device.offline") if e.source == "d21"]
    # The dead unit is probed with backoff, not every cycle: far fewer attempts than
    # the healthy units' reads, and every healthy unit kept its period (no missed tick).
    assert dead.stats.reads == 0
    assert len(offline) >= 1
    assert dead.stats.failures + dead.stats.skipped >= 1
    assert dead.stats.failures < min(p.stats.reads for p in healthy) / 2
    assert sum(p.stats.missed for p in healthy) == 0, [p.stats.missed for p in healthy]


async def test_counter_wrap_and_meter_replacement(sim: ModbusSimulator, tmp_path: Path) -> None:
    sim.device(1).set("energy", 42949600.0)
    driver = ModbusDriver(driver_config(sim.port, [1], tmp_path))
    async with running(driver, tmp_path) as h:
        await h.until(lambda: latest(h, "d1.energy_today"), what="first energy")
        sim.device(1).set("energy", 10.0)  # wrapped past 42949672.96: +82.96 kWh
        await h.until(lambda: h.events("meter.counter_wrapped"), what="wrap event")
        today = await h.until(
            lambda: (r := latest(h, "d1.energy_today")) and r.value > 80 and r, what="after wrap"
        )
        assert today.value == pytest.approx(82.96, abs=0.02)
        sim.device(1).set("energy", 5.0)  # a drop with no wrap in sight: a new meter
        await h.until(lambda: h.events("meter.replaced"), what="replacement")
        sim.device(1).set("energy", 7.0)
        after = await h.until(
            lambda: (r := latest(h, "d1.energy_today")) and r.value > 84 and r, what="counting"
        )
    assert after.value == pytest.approx(84.96, abs=0.02)


async def test_run_hours_and_starts_survive_a_restart(sim: ModbusSimulator, tmp_path: Path) -> None:
    cfg = driver_config(sim.port, [1], tmp_path)
    async with running(ModbusDriver(cfg), tmp_path) as h:
        await h.until(
            lambda: (r := latest(h, "d1.run_hours")) and r.value > 0, what="run hours count"
        )
        sim.device(1).set("run", False)
        await h.until(lambda: (r := latest(h, "d1.run")) and r.value is False, what="stopped")
        sim.device(1).set("run", True)
        await h.until(lambda: (r := latest(h, "d1.starts")) and r.value >= 1, what="a start")
        await asyncio.sleep(0.3)
        before_hours = latest(h, "d1.run_hours")
        before_starts = latest(h, "d1.starts")
    assert before_hours is not None and before_starts is not None
    state = json.loads((tmp_path / "modbus-mb-derived.json").read_text())
    assert "d1" in state["devices"]
    async with running(ModbusDriver(cfg), tmp_path) as h:
        first = await h.until(lambda: latest(h, "d1.run_hours"), what="hours after restart")
        starts = await h.until(lambda: latest(h, "d1.starts"), what="starts after restart")
    assert first.value >= before_hours.value
    # still running across the restart: not a new start
    assert starts.value == before_starts.value


async def test_writes_are_checked_confirmed_and_audited(
    sim: ModbusSimulator, tmp_path: Path
) -> None:
    driver = ModbusDriver(driver_config(sim.port, [1], tmp_path))
    async with running(driver, tmp_path) as h:
        await h.until(lambda: latest(h, "d1.speed"), what="first reading")

        async def send(**kw: Any) -> dict[str, Any]:
            command = Command("d1", "write", id=f"c{len(h.events('command.write'))}", **kw)
            await h.bus.publish(command)
            events = await h.until(
                lambda: [
                    e for e in h.events("command.write") if e.data["command_id"] == command.id
                ],
                what=f"audit of {command}",
            )
            return dict(events[0].data)

        ok = await send(args={"point": "speed", "value": 1200}, user="li", role="engineer")
        assert ok["result"] == "confirmed" and ok["previous"] == 900 and ok["readback"] == 1200
        assert ok["user"] == "li" and ok["role"] == "engineer"
        assert sim.device(1).get("speed") == 1200

        refused = await send(args={"point": "speed", "value": 1000}, user="wang", role="guard")
        assert refused["result"] == "refused" and refused["reason"] == "role_not_allowed"
        anonymous = await send(args={"point": "speed", "value": 1000})
        assert anonymous["result"] == "refused" and anonymous["reason"] == "role_not_allowed"
        too_high = await send(args={"point": "speed", "value": 2000}, role="engineer")
        assert too_high["reason"] == "out_of_range"
        read_only = await send(args={"point": "temp_a", "value": 1}, role="engineer")
        assert read_only["reason"] == "not_writable"
        not_a_number = await send(args={"point": "speed", "value": "fast"}, role="engineer")
        assert not_a_number["result"] == "refused" and not_a_number["reason"] == "bad_value"
        no_value = await send(args={"point": "speed"}, role="engineer")
        assert no_value["reason"] == "bad_value"
        assert sim.device(1).get("speed") == 1200  # nothing refused reached the device

        sim.faults(1).exception(4)
        failed = await send(args={"point": "speed", "value": 1100}, role="engineer")
        assert failed["result"] == "failed" and failed["reason"] == "DeviceException"
        sim.faults(1).clear()


async def test_a_write_the_device_does_not_apply_is_unconfirmed(tmp_path: Path) -> None:
    class Ignoring(SimulatedDevice):
        def write(self, table: Table, address: int, values: Any) -> Any:
            return None  # accepts the write, keeps the old value

    base = sim_device(1)
    async with ModbusSimulator([Ignoring(1, base.points, lenient=True)]) as s:
        block = driver_config(s.port, [1], tmp_path).model_dump(mode="json")
        speed = block["connections"][0]["devices"][0]["points"]["speed"]
        speed["write"]["confirm_timeout_s"] = 0.3
        cfg = ModbusDriverConfig.model_validate(block, context={"base_dir": tmp_path})
        async with running(ModbusDriver(cfg), tmp_path) as h:
            await h.until(lambda: latest(h, "d1.speed"), what="first reading")
            await h.bus.publish(
                Command("d1", "write", {"point": "speed", "value": 1000}, id="x", role="engineer")
            )
            (event,) = await h.until(lambda: h.events("command.write"), what="audit")
    assert event.data["result"] == "unconfirmed" and event.data["readback"] == 900
