"""The simulated estate: physics in virtual time, then served over real TCP and RTU over TCP.

Physics runs through the pure ``Estate.step(dt, now)`` (virtual time, no
sleeping); values are read back from the simulated devices' registers, the
way a Modbus client sees them. The served part reads every device of the
estate's own site block with ``ModbusLink`` + the codec, writes coils with a
real pymodbus client, and drives faults through the control port and the CLI.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
import yaml
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType

from drivers.modbus.codec import Value, decode
from drivers.modbus.config import ModbusDriverConfig, ResolvedDevice
from drivers.modbus.estate import (
    LAYOUT,
    ControlError,
    ControlServer,
    Estate,
    main,
    send_command,
    sim_device,
)
from drivers.modbus.faults import FaultKind
from drivers.modbus.link import DeviceException, DeviceTimeout, ModbusLink, tcp_client_factory
from drivers.modbus.physics import load_curve, water_demand_curve
from drivers.modbus.profiles import LIBRARY_DIR, ProfileLibrary
from drivers.modbus.simulator import InvalidPointError
from gateway.clock import ManualClock
from gateway.config.loader import load_site
from gateway.rules import LimitRuleConfig

TZ = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parents[3]


def local(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=TZ)


def advance(estate: Estate, seconds: float, dt: float) -> None:
    """Step the estate ``seconds`` of virtual time in steps of ``dt``."""
    for _ in range(round(seconds / dt)):
        estate.step(dt, estate.now + timedelta(seconds=dt))


def num(estate: Estate, device: str, point: str) -> float:
    value = estate.read_point(device, point)
    assert isinstance(value, int | float)
    return float(value)


# --- physics in virtual time -------------------------------------------------------------


def test_daily_curves_have_morning_and_evening_peaks() -> None:
    night, morning, noon, evening = (load_curve(h) for h in (3.5, 7.5, 14.5, 20.0))
    assert night < noon < morning < evening <= 1.0
    assert min(load_curve(h / 4) for h in range(96)) == pytest.approx(night, abs=0.02)
    assert water_demand_curve(7.0) > 0.9 and water_demand_curve(3.0) < 0.1


@dataclass
class Sample:
    when: datetime
    load_kva: float
    temps: tuple[float, float, float]
    tank1: float
    pf1: float
    pf2: float


@pytest.fixture(scope="module")
def day() -> list[Sample]:
    """One day of the estate in 2-minute steps (virtual time)."""
    estate = Estate(now=local(0), max_substep_s=30)
    samples = []
    for _ in range(24 * 30):
        estate.step(120, estate.now + timedelta(seconds=120))
        temps = tuple(num(estate, "tx1", f"winding_temp_{p}") for p in "abc")
        samples.append(
            Sample(
                estate.now,
                num(estate, "pm1", "apparent_power"),
                (temps[0], temps[1], temps[2]),
                num(estate, "tank1", "level"),
                num(estate, "pm1", "meter_pf"),
                num(estate, "pm2", "meter_pf"),
            )
        )
    return samples


def test_winding_temperature_lags_the_load(day: list[Sample]) -> None:
    peak_load = max(day, key=lambda s: s.load_kva)
    peak_temp = max(day, key=lambda s: s.temps[1])
    lag = peak_temp.when - peak_load.when
    assert timedelta(minutes=5) <= lag <= timedelta(hours=2), lag
    assert 19 <= peak_load.when.hour <= 21  # the evening peak, in site-local time
    night = min(day, key=lambda s: s.temps[1])
    assert peak_temp.temps[1] - night.temps[1] > 25  # steady state ~ ambient + k * load²
    assert 20 < night.temps[1] < peak_temp.temps[1] < 110  # fans never needed on a normal day


def test_phases_differ_slightly_with_b_the_hottest(day: list[Sample]) -> None:
    assert all(s.temps[1] >= s.temps[0] >= s.temps[2] for s in day)
    hottest = max(day, key=lambda s: s.temps[1])
    assert 1.0 < hottest.temps[1] - hottest.temps[2] < 10.0


def test_power_factors_stay_plausible_with_the_bank_compensating(day: list[Sample]) -> None:
    # tx1's load alone is ~0.85-0.87 lagging; the capacitor bank lifts it.
    assert all(0.93 <= s.pf1 <= 1.0 for s in day)
    assert all(0.90 <= s.pf2 <= 0.97 for s in day)


def test_tank_level_falls_with_demand_and_refills(day: list[Sample]) -> None:
    levels = [s.tank1 for s in day]
    assert max(levels) - min(levels) > 0.15
    assert min(levels) > 0.6  # 20 % of 3 m: the low-level limit never trips on a normal day
    morning = [s.tank1 for s in day if 6 <= s.when.hour < 8]
    assert any(b < a for a, b in itertools.pairwise(morning))
    assert any(b > a for a, b in itertools.pairwise(levels))


def test_kwh_counts_up_by_the_integrated_power() -> None:
    estate = Estate(now=local(6), max_substep_s=60)
    start = {m: num(estate, m, "import_energy") for m in ("pm1", "pm2")}
    integral = dict.fromkeys(start, 0.0)
    previous = dict(start)
    for _ in range(180):  # three hours, one-minute steps
        estate.step(60, estate.now + timedelta(seconds=60))
        for meter in start:
            energy = num(estate, meter, "import_energy")
            assert energy >= previous[meter]  # never goes back
            previous[meter] = energy
            integral[meter] += num(estate, meter, "active_power") * 60 / 3600
    for meter in start:
        counted = previous[meter] - start[meter]
        assert counted > 500  # a morning of a 1000 kVA transformer
        assert counted == pytest.approx(integral[meter], rel=2e-3)
    total = num(estate, "pm1", "total_energy")
    assert total == pytest.approx(previous["pm1"] + num(estate, "pm1", "export_energy"), abs=0.2)


def test_the_integer_meter_register_rolls_over_like_the_meter() -> None:
    estate = Estate(now=local(20))
    wrap = 2**32 * 0.01  # uint32 x 0.01 kWh, the profile's wrap_at
    estate.physics.meters["pm2"].import_kwh = wrap - 1.0
    estate.step(0, estate.now)  # publish it
    before = num(estate, "pm2", "import_energy")
    advance(estate, 600, 10)  # ~100 kWh at the evening peak
    after = num(estate, "pm2", "import_energy")
    assert before > wrap - 1.1 and 0 < after < 200
    assert estate.physics.meters["pm2"].import_kwh > wrap  # the meter itself kept counting


def test_a_written_pf_target_is_honoured_by_the_bank() -> None:
    estate = Estate(now=local(20))
    steps_before = sum(bool(estate.read_point("cap1", f"step_{i:02d}")) for i in range(1, 13))
    estate.device("cap1").set("pf_target", 0.99)  # as a client's write would
    advance(estate, 600, 10)
    steps_after = sum(bool(estate.read_point("cap1", f"step_{i:02d}")) for i in range(1, 13))
    assert steps_after > steps_before
    assert num(estate, "cap1", "measured_pf") >= 0.98


def test_a_tripped_pump_drops_the_pressure_and_its_reset_restores_it() -> None:
    estate = Estate(now=local(7))  # morning peak: the low zone needs both pumps
    advance(estate, 120, 5)
    assert estate.read_point("pump1", "running") and estate.read_point("pump2", "running")
    assert num(estate, "pump1", "outlet_pressure") == pytest.approx(0.45, abs=0.01)

    estate.trip_pump("pump1")
    assert estate.read_point("pump1", "faulted") is True
    assert estate.read_point("pump1", "running") is False
    assert estate.read_point("pump1", "fault_code") == 2
    advance(estate, 60, 5)
    assert num(estate, "pump2", "outlet_pressure") < 0.25  # the profile's low-pressure limit
    assert estate.read_point("pump2", "running") is True
    assert num(estate, "pump2", "output_frequency") == 50.0
    assert num(estate, "pump3", "outlet_pressure") == pytest.approx(0.45, abs=0.01)  # other zone

    estate.device("pump1").set("fault_reset", True)  # a client pulses the reset coil
    advance(estate, 5, 5)
    assert estate.read_point("pump1", "fault_code") == 0
    estate.device("pump1").set("fault_reset", False)
    advance(estate, 60, 5)
    assert estate.read_point("pump1", "running") is True
    assert num(estate, "pump1", "outlet_pressure") == pytest.approx(0.45, abs=0.01)


def test_the_start_stop_coil_takes_a_pump_out_of_service() -> None:
    estate = Estate(now=local(7))
    estate.device("pump2").set("start_stop", False)
    advance(estate, 60, 5)
    assert estate.read_point("pump2", "running") is False
    assert num(estate, "pump2", "motor_current") == 0.0
    assert num(estate, "pump1", "outlet_pressure") < 0.3
    estate.device("pump2").set("start_stop", True)
    advance(estate, 60, 5)
    assert estate.read_point("pump2", "running") is True


def test_pumps_sleep_at_night_and_wake_on_the_pressure_band() -> None:
    estate = Estate(now=local(1))
    running, pressures = [], []
    for _ in range(2 * 360):  # two hours, 10 s steps
        estate.step(10, estate.now + timedelta(seconds=10))
        running.append(bool(estate.read_point("pump1", "running")))
        pressures.append(num(estate, "pump1", "outlet_pressure"))
    starts = sum(1 for a, b in itertools.pairwise(running) if b and not a)
    assert starts >= 2 and not all(running)
    assert min(pressures) >= 0.39 and max(pressures) <= 0.46
    assert not estate.read_point("pump2", "running")  # the lag pump is not needed at night


def test_overheat_raises_the_alarm_and_the_trip_stays_latched_until_reset() -> None:
    estate = Estate(now=local(14))
    estate.overheat("tx1", 140)
    estate.step(1, estate.now + timedelta(seconds=1))
    assert max(num(estate, "tx1", f"winding_temp_{p}") for p in "abc") >= 135
    assert estate.read_point("tx1", "alarm_output") is True
    assert estate.read_point("tx1", "fan_running") is True
    assert estate.read_point("tx1", "trip_output") is False
    assert estate.read_point("tx2", "alarm_output") is False

    estate.overheat("tx1", 155)
    estate.step(1, estate.now + timedelta(seconds=1))
    assert estate.read_point("tx1", "trip_output") is True
    estate.cool("tx1")
    advance(estate, 3 * 3600, 60)
    assert max(num(estate, "tx1", f"winding_temp_{p}") for p in "abc") < 90
    assert estate.read_point("tx1", "alarm_output") is False
    assert estate.read_point("tx1", "fan_running") is False
    assert estate.read_point("tx1", "trip_output") is True  # latched
    estate.device("tx1").set("reset_alarm", True)
    estate.step(1, estate.now + timedelta(seconds=1))
    assert estate.read_point("tx1", "trip_output") is False


def test_a_pinned_point_is_left_alone_until_released() -> None:
    estate = Estate(now=local(10))
    estate.set_point("tx1", "winding_temp_a", 99.9)
    estate.set_point("tx1", "sensor_b_short", True)
    advance(estate, 60, 10)
    assert estate.read_point("tx1", "winding_temp_a") == pytest.approx(99.9)
    assert estate.read_point("tx1", "sensor_fault") is True  # the summary bit follows
    assert estate.release("tx1") == ["winding_temp_a", "sensor_b_short"]
    estate.set_point("tx1", "sensor_b_short", False)
    estate.release("tx1", "sensor_b_short")
    advance(estate, 10, 10)
    assert num(estate, "tx1", "winding_temp_a") < 60
    assert estate.read_point("tx1", "sensor_fault") is False


def test_bad_pins_are_refused_and_change_nothing() -> None:
    estate = Estate(now=local(10))
    before = estate.read_point("tx1", "winding_temp_a")
    with pytest.raises(ControlError, match="winding_temp_a"):
        estate.set_point("tx1", "winding_temp_a", "hot")
    with pytest.raises(ControlError, match="no point 'fan_speed'"):
        estate.set_point("tx1", "fan_speed", 1)
    with pytest.raises(ControlError, match="no device 'tx9'"):
        estate.set_point("tx9", "winding_temp_a", 1)
    with pytest.raises(ControlError, match="not pinned"):
        estate.release("tx1", "winding_temp_a")
    assert estate.read_point("tx1", "winding_temp_a") == before
    assert estate.pins == {}


async def test_run_steps_the_physics_on_the_injected_clock() -> None:
    clock = ManualClock(local(20))
    estate = Estate(now=clock.now())
    energy = num(estate, "pm1", "import_energy")
    power = num(estate, "pm1", "active_power")
    task = asyncio.create_task(estate.run(clock, period=1.0))
    try:
        await clock.advance(600)
    finally:
        task.cancel()
    assert estate.now == clock.now()
    assert num(estate, "pm1", "import_energy") - energy == pytest.approx(power / 6, rel=0.05)


# --- sim_device -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in LIBRARY_DIR.glob("*.yaml")))
def test_every_profile_plays_on_a_simulated_device(name: str) -> None:
    profile = ProfileLibrary([LIBRARY_DIR]).load(name)
    device = sim_device(profile, 7, lenient=False)
    assert device.unit == 7 and {p.name for p in device.points} == set(profile.points)
    for point in profile.points.values():  # every point is mapped where the profile says
        assert isinstance(device.read(point.table, point.address, point.spec.count), list)


def test_sim_device_overrides_by_point_and_by_bit() -> None:
    profile = ProfileLibrary([LIBRARY_DIR]).load("dry_type_tc")
    device = sim_device(profile, 1, overrides={"winding_temp_a": 88.5, "fan_running": True})
    assert device.get("winding_temp_a") == pytest.approx(88.5)
    assert device.get("status") == {
        "fan_running": True,
        "alarm_output": False,
        "trip_output": False,
        "sensor_fault": False,
    }
    with pytest.raises(InvalidPointError, match="fan_speed"):
        sim_device(profile, 1, overrides={"fan_speed": 1})
    with pytest.raises(InvalidPointError, match="winding_temp_a"):
        sim_device(profile, 1, overrides={"winding_temp_a": 99999.0})  # beyond int16 x 0.1


# --- served over TCP -------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="function")  # the servers must share the test's loop
async def served() -> AsyncIterator[Estate]:
    async with Estate(now=local(20)) as estate:
        yield estate


def link_for(estate: Estate, room: str, timeout_s: float = 1.0) -> ModbusLink:
    framer = FramerType.RTU if room == "power_room" else FramerType.SOCKET
    factory = tcp_client_factory("127.0.0.1", estate.ports[room], framer=framer)
    return ModbusLink(room, factory, timeout_s=timeout_s, pause_s=0.002)


async def read_device(link: ModbusLink, device: ResolvedDevice) -> dict[str, Value]:
    values: dict[str, Value] = {}
    for request in device.plan:
        answer = await link.read(request.table, request.start, request.count, device.unit)
        for served_point in request.points:
            chunk = answer[served_point.offset : served_point.offset + served_point.count]
            values[served_point.name] = decode(
                [int(v) for v in chunk], device.specs[served_point.name]
            )
    return values


def resolved(estate: Estate) -> dict[str, ResolvedDevice]:
    config = ModbusDriverConfig.model_validate(estate.driver_block())
    return {d.device: d for d in config.resolved}


async def test_every_device_reads_back_over_tcp_and_rtu_over_tcp(served: Estate) -> None:
    devices = resolved(served)
    rooms = {p.device: p.room for p in LAYOUT}
    links = {room: link_for(served, room) for room in set(rooms.values())}
    try:
        for name, device in devices.items():
            values = await read_device(links[rooms[name]], device)
            assert values == {p: served.device(name).get(p) for p in device.points}, name
    finally:
        for link in links.values():
            await link.close()
        assert links["power_room"].requests > 0 and links["pump_room"].requests > 0
    assert 40 < num(served, "tx1", "winding_temp_b") < 110
    assert num(served, "pm1", "import_energy") > 1.2e6


async def test_a_client_write_is_honoured_by_the_physics(served: Estate) -> None:
    pumps = resolved(served)
    link = link_for(served, "pump_room")
    client = AsyncModbusTcpClient("127.0.0.1", port=served.ports["pump_room"], retries=0)
    assert await client.connect()
    try:
        assert not (await client.write_coil(0, False, device_id=2)).isError()  # stop pump2
        served.trip_pump("pump1")
        assert not (await client.write_coil(1, True, device_id=1)).isError()  # reset pump1
        served.step(30, served.now + timedelta(seconds=30))
        pump1 = await read_device(link, pumps["pump1"])
        pump2 = await read_device(link, pumps["pump2"])
    finally:
        client.close()
        await link.close()
    assert pump2["start_stop"] is False and pump2["status"] == {
        "running": False,
        "faulted": False,
        "remote": True,
    }
    assert pump1["fault_code"] == 0
    assert pump1["status"] == {"running": True, "faulted": False, "remote": True}


async def answer(port: int, line: str) -> dict[str, Any]:
    return await asyncio.to_thread(send_command, port, line)


async def test_faults_through_the_control_port(served: Estate) -> None:
    devices = resolved(served)
    pump_port, power_port = served.ports["pump_room"], served.ports["power_room"]
    pumps, power = link_for(served, "pump_room", 0.3), link_for(served, "power_room", 0.3)
    async with ControlServer(served) as control:
        try:
            reply = await answer(control.port, "pump1 silent")
            assert reply == {"ok": True, "device": "pump1", "action": "silent", "fault": "silent"}
            with pytest.raises(DeviceTimeout):
                await read_device(pumps, devices["pump1"])
            await read_device(pumps, devices["pump2"])  # the other units still answer
            assert (await answer(control.port, f"{pump_port}/1 clear"))["fault"] == "none"
            await read_device(pumps, devices["pump1"])

            await answer(control.port, f"{power_port}/11 exception 6")
            assert served.faults("pm1").current.kind is FaultKind.EXCEPTION
            with pytest.raises(DeviceException) as info:
                await read_device(power, devices["pm1"])
            assert info.value.code == 6
            await answer(control.port, "pm1 clear")

            await answer(control.port, "pump3 trip 7")
            pump3 = await read_device(pumps, devices["pump3"])
            assert pump3["fault_code"] == 7
            assert pump3["status"] == {"running": False, "faulted": True, "remote": True}
            await answer(control.port, "pump3 reset")
            assert (await read_device(pumps, devices["pump3"]))["fault_code"] == 0

            await answer(control.port, "tx1 overheat 140")
            tx1 = await read_device(power, devices["tx1"])
            assert isinstance(tx1["winding_temp_b"], float) and tx1["winding_temp_b"] >= 135

            reply = await answer(control.port, "dio1 set di_01 1")
            assert reply["value"] is True
            assert (await read_device(pumps, devices["dio1"]))["di_01"] is True
            status = await answer(control.port, "status")
            assert status["pins"] == {"dio1": {"di_01": 1}}
            assert status["rooms"]["pump_room"]["port"] == pump_port
            assert (await answer(control.port, "pump4 slow 0.5"))["fault"] == "slow"
            assert status["faults"] == {}
            assert (await answer(control.port, "status"))["faults"] == {"pump4": "slow"}
        finally:
            await pumps.close()
            await power.close()


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("nope silent", "no device 'nope' (devices: tx1, tx2, pm1"),
        ("pump1 exception x", "'x' is not an integer"),
        ("pump1 exception 0", "exception code must be an integer 1..255"),
        ("pump1 slow -1", "delay must be a number of seconds >= 0"),
        ("tx1 trip", "'tx1' is not a pump"),
        ("pump1 overheat", "'pump1' is not a transformer"),
        ("pump1 dance", "unknown action 'dance'"),
        ("pump1 silent now", "silent takes no arguments"),
        ("pump1 set running", "usage: TARGET set POINT VALUE"),
        ("99/1 silent", "no room listens on port 99"),
        ("pump1", "expected TARGET ACTION"),
        ("", "empty command"),
        ("pump1 'silent", "cannot parse"),
    ],
)
async def test_bad_control_commands_are_refused_and_change_nothing(
    served: Estate, line: str, error: str
) -> None:
    async with ControlServer(served) as control:
        reply = await answer(control.port, line)
    assert reply["ok"] is False and error in str(reply["error"])
    assert all(d.faults.current.kind is FaultKind.NONE for d in served.devices.values())
    assert served.pins == {} and served.read_point("pump1", "fault_code") == 0


async def test_control_port_answers_garbage_bytes_and_keeps_serving(served: Estate) -> None:
    async with ControlServer(served) as control:
        reader, writer = await asyncio.open_connection("127.0.0.1", control.port)
        writer.write(b"\xff\xfe\n" + b"help\n")
        await writer.drain()
        first = json.loads(await reader.readline())
        second = json.loads(await reader.readline())
        writer.close()
    assert first == {"ok": False, "error": "the command is not UTF-8"}
    assert second["ok"] is True and any("trip" in c for c in second["commands"])


async def test_cli_inject_talks_to_the_control_port(
    served: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    port = served.ports["pump_room"]
    async with ControlServer(served) as control:
        base = ["inject", "--control", str(control.port)]
        assert await asyncio.to_thread(main, [*base, "--device", "pump4", "slow", "0.5"]) == 0
        assert served.faults("pump4").current.kind is FaultKind.SLOW
        assert json.loads(capsys.readouterr().out)["fault"] == "slow"
        unit = [*base, "--port", str(port), "--unit", "4", "clear"]
        assert await asyncio.to_thread(main, unit) == 0
        assert served.faults("pump4").current.kind is FaultKind.NONE
        capsys.readouterr()
        assert await asyncio.to_thread(main, [*base, "--device", "pump9", "silent"]) == 1
        assert "no device 'pump9'" in json.loads(capsys.readouterr().out)["error"]
        assert await asyncio.to_thread(main, [*base, "--port", str(port), "silent"]) == 2


async def test_site_fragment_loads_as_a_site_file(served: Estate, tmp_path: Path) -> None:
    fragment = yaml.safe_load(served.site_fragment())
    site = {"version": 1, "site": {"id": "demo"}, "data_dir": str(tmp_path / "var"), **fragment}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    loaded = load_site(path)
    assert loaded.device_kinds()["cap1"] == "capacitor_bank"
    rules = {
        (r.point, r.levels().get("H", (None,))[0], r.levels().get("L", (None,))[0])
        for r in loaded.rules
        if isinstance(r, LimitRuleConfig)
    }
    assert ("tx1.winding_temp_max", 130, None) in rules
    assert ("pump4.fault_code", 1, None) in rules
    assert ("tank2.level_percent", None, 20) in rules
    points = {p.name for p in loaded.points if p.device == "dio1"}
    assert {"di_01", "do_08"} <= points


# --- the CLI serving the estate ----------------------------------------------------------------


@pytest.fixture
def serving() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """``python -m drivers.modbus.estate`` on free ports; its output lines, as they come."""
    argv = [sys.executable, "-m", "drivers.modbus.estate", "--power-room-port", "0"]
    argv += ["--pump-room-port", "0", "--control-port", "0"]
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        lines.extend(proc.stdout)  # list.extend of an iterator appends line by line

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield proc, lines
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(10)


def test_cli_serves_the_estate_and_takes_commands(
    serving: tuple[subprocess.Popen[str], list[str]],
) -> None:
    proc, lines = serving
    deadline = time.monotonic() + 30
    while not any(line.startswith("control: ") for line in list(lines)):
        assert time.monotonic() < deadline, f"no control port printed: {lines}"
        assert proc.poll() is None, f"the estate exited: {lines}"
        time.sleep(0.05)
    control = int(next(x for x in lines if x.startswith("control: ")).split(":")[2].split()[0])
    status = send_command(control, "status")
    for room in ("power_room", "pump_room"):
        port = status["rooms"][room]["port"]
        assert any(f"127.0.0.1:{port}" in line for line in lines)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # it listens
    assert send_command(control, "pump2 trip")["ok"] is True
    assert send_command(control, "pump2 get fault_code")["value"] == 2
