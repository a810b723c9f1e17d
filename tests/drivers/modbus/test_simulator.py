"""The Modbus simulator against a real pymodbus 3.16 async TCP client on loopback."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ModbusPDU

from drivers.modbus.codec import decode, encode
from drivers.modbus.datatypes import DataType, EncodeError, ValueSpec
from drivers.modbus.faults import InvalidFaultError
from drivers.modbus.planner import Table
from drivers.modbus.simulator import (
    InvalidPointError,
    ModbusSimulator,
    SimPoint,
    SimulatedDevice,
    SimulatorStateError,
    UnknownPointError,
    UnknownUnitError,
    demo_devices,
    drift,
)
from gateway.clock import ManualClock

F32 = ValueSpec(DataType.FLOAT32)
I16_SCALED = ValueSpec(DataType.INT16, scale=0.1)
U16 = ValueSpec(DataType.UINT16)
U32_CDAB = ValueSpec(DataType.UINT32, order="CDAB")  # type: ignore[arg-type]
NAME = ValueSpec(DataType.STRING, length=4)
BOOL = ValueSpec(DataType.BOOL)
FAN = ValueSpec(DataType.BIT, bit=0)
TRIP = ValueSpec(DataType.BIT, bit=3)


def transformer(unit: int, winding: float = 85.2) -> SimulatedDevice:
    return SimulatedDevice(
        unit,
        [
            SimPoint("winding_a", Table.HOLDING, 0, I16_SCALED, winding),
            SimPoint("load_kw", Table.HOLDING, 1, F32, 312.5),
            SimPoint("setpoint", Table.HOLDING, 3, U16, 130),
            SimPoint("model", Table.HOLDING, 10, NAME, "TX-1"),
            SimPoint("fan", Table.HOLDING, 20, FAN, True),
            SimPoint("trip", Table.HOLDING, 20, TRIP, False),
            SimPoint("energy", Table.INPUT, 100, U32_CDAB, 70_000),
            SimPoint("fan_cmd", Table.COIL, 5, BOOL, True),
            SimPoint("gas_relay", Table.DISCRETE, 7, BOOL, True),
        ],
    )


@asynccontextmanager
async def client(port: int, timeout: float = 3.0) -> AsyncIterator[AsyncModbusTcpClient]:
    c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=timeout, retries=0)
    assert await c.connect()
    try:
        yield c
    finally:
        c.close()


async def read_holding(c: AsyncModbusTcpClient, address: int) -> ModbusPDU:
    return await c.read_holding_registers(address, count=1, device_id=1)


async def request_is_waiting_on(clock: ManualClock) -> None:
    """Wait (real time, bounded) until the server's slow answer sleeps on ``clock``."""
    for _ in range(500):
        if clock.sleepers:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request never reached the server")


@pytest_asyncio.fixture(loop_scope="function")  # the server must share the test's loop
async def sim() -> AsyncIterator[ModbusSimulator]:
    async with ModbusSimulator([transformer(1), transformer(2, winding=-12.0)]) as s:
        yield s


# --- reading and writing ------------------------------------------------------


async def test_reads_every_table(sim: ModbusSimulator) -> None:
    async with client(sim.port) as c:
        hr = await c.read_holding_registers(0, count=4, device_id=1)
        name = await c.read_holding_registers(10, count=4, device_id=1)
        status = await c.read_holding_registers(20, count=1, device_id=1)
        ir = await c.read_input_registers(100, count=2, device_id=1)
        co = await c.read_coils(5, count=1, device_id=1)
        di = await c.read_discrete_inputs(7, count=1, device_id=1)
    assert decode(hr.registers[0:1], I16_SCALED) == pytest.approx(85.2)
    assert decode(hr.registers[1:3], F32) == 312.5
    assert hr.registers[3] == 130
    assert decode(name.registers, NAME) == "TX-1"
    assert status.registers == [0b0001]  # fan bit 0 on, trip bit 3 off
    assert ir.registers == encode(70_000, U32_CDAB)
    assert co.bits[0] is True
    assert di.bits[0] is True


async def test_several_units_on_one_port(sim: ModbusSimulator) -> None:
    async with client(sim.port) as c:
        one = await c.read_holding_registers(0, count=1, device_id=1)
        two = await c.read_holding_registers(0, count=1, device_id=2)
    assert decode(one.registers, I16_SCALED) == pytest.approx(85.2)
    assert decode(two.registers, I16_SCALED) == pytest.approx(-12.0)


async def test_set_is_seen_by_the_client(sim: ModbusSimulator) -> None:
    sim.device(1).set("load_kw", 401.25)
    sim.device(1).set("trip", True)
    sim.device(1).set("gas_relay", False)
    async with client(sim.port) as c:
        load = await c.read_holding_registers(1, count=2, device_id=1)
        status = await c.read_holding_registers(20, count=1, device_id=1)
        relay = await c.read_discrete_inputs(7, count=1, device_id=1)
        other = await c.read_holding_registers(1, count=2, device_id=2)
    assert decode(load.registers, F32) == 401.25
    assert status.registers == [0b1001]  # trip set, fan kept
    assert relay.bits[0] is False
    assert decode(other.registers, F32) == 312.5  # unit 2 untouched


async def test_client_writes_are_seen_by_get(sim: ModbusSimulator) -> None:
    async with client(sim.port) as c:
        single = await c.write_register(3, 140, device_id=1)
        multi = await c.write_registers(1, encode(99.5, F32), device_id=1)
        coil = await c.write_coil(5, False, device_id=1)
        bits = await c.write_register(20, 0b1000, device_id=1)
    assert not any(r.isError() for r in (single, multi, coil, bits))
    device = sim.device(1)
    assert device.get("setpoint") == 140
    assert device.get("load_kw") == 99.5
    assert device.get("fan_cmd") is False
    assert (device.get("fan"), device.get("trip")) == (False, True)
    assert sim.device(2).get("setpoint") == 130


async def test_unmapped_address_answers_illegal_address(sim: ModbusSimulator) -> None:
    async with client(sim.port) as c:
        nothing = await c.read_holding_registers(50, count=1, device_id=1)
        straddle = await c.read_holding_registers(3, count=3, device_id=1)  # 3 mapped, 4-5 not
        coil = await c.read_coils(0, count=1, device_id=1)
        write = await c.write_register(50, 1, device_id=1)
    for response in (nothing, straddle, coil, write):
        assert response.isError()
        assert response.exception_code == 2


async def test_lenient_device_reads_zero_and_takes_writes() -> None:
    device = SimulatedDevice(1, [SimPoint("x", Table.HOLDING, 10, U16, 7)], lenient=True)
    async with ModbusSimulator([device]) as sim, client(sim.port) as c:
        response = await c.read_holding_registers(8, count=4, device_id=1)
        write = await c.write_register(0, 5, device_id=1)
        back = await c.read_holding_registers(0, count=1, device_id=1)
    assert response.registers == [0, 0, 7, 0]
    assert not write.isError()
    assert back.registers == [5]


async def test_unknown_unit_answers_gateway_target_failed(sim: ModbusSimulator) -> None:
    async with client(sim.port) as c:
        response = await c.read_holding_registers(0, count=1, device_id=9)
    assert response.isError()
    assert response.exception_code == 11


# --- faults -------------------------------------------------------------------


async def test_silent_unit_times_out_while_others_answer(sim: ModbusSimulator) -> None:
    sim.faults(1).silent()
    async with client(sim.port, timeout=0.3) as c:
        with pytest.raises(ModbusIOException, match="No response received"):
            await c.read_holding_registers(0, count=1, device_id=1)
    async with client(sim.port) as c:
        other = await c.read_holding_registers(3, count=1, device_id=2)
        sim.faults(1).clear()
        back = await c.read_holding_registers(3, count=1, device_id=1)
    assert other.registers == [130]
    assert back.registers == [130]


@pytest.mark.parametrize("code", [2, 6, 4])
async def test_exception_fault_answers_that_code(sim: ModbusSimulator, code: int) -> None:
    sim.faults(2).exception(code)
    async with client(sim.port) as c:
        read = await c.read_input_registers(100, count=2, device_id=2)
        write = await c.write_coil(5, False, device_id=2)
        sim.faults(2).clear()
        back = await c.read_input_registers(100, count=2, device_id=2)
    assert read.isError() and read.exception_code == code
    assert read.function_code == 0x84
    assert write.isError() and write.exception_code == code
    assert sim.device(2).get("fan_cmd") is True  # the refused write changed nothing
    assert back.registers == encode(70_000, U32_CDAB)


async def test_garbage_is_an_io_error_for_the_client(sim: ModbusSimulator) -> None:
    # pymodbus 3.16 cannot decode the frame, asyncio drops the client's connection
    # and the request ends as "no response": ModbusIOException after the timeout.
    sim.faults(1).garbage()
    async with client(sim.port, timeout=0.3) as c:
        with pytest.raises(ModbusIOException, match="No response received"):
            await c.read_holding_registers(0, count=1, device_id=1)
    sim.faults(1).garbage(b"not modbus at all\r\n")
    async with client(sim.port, timeout=0.3) as c:
        with pytest.raises(ModbusIOException, match="No response received"):
            await c.read_coils(5, count=1, device_id=1)
    sim.faults(1).clear()
    async with client(sim.port) as c:
        back = await c.read_holding_registers(3, count=1, device_id=1)
    assert back.registers == [130]


async def test_slow_answers_after_the_clock_moves() -> None:
    clock = ManualClock()
    async with ModbusSimulator([transformer(1)], clock=clock) as sim, client(sim.port) as c:
        sim.faults(1).slow(30.0)
        pending = asyncio.create_task(read_holding(c, 3))
        await request_is_waiting_on(clock)
        assert not pending.done()
        await clock.advance(30.0)
        response = await pending
        sim.faults(1).clear()
        normal = await c.read_holding_registers(3, count=1, device_id=1)
    assert response.registers == [130]
    assert normal.registers == [130]


async def test_slow_on_the_system_clock_still_answers(sim: ModbusSimulator) -> None:
    sim.faults(1).slow(0.2)
    async with client(sim.port, timeout=3.0) as c:
        response = await c.read_holding_registers(0, count=1, device_id=1)
    assert decode(response.registers, I16_SCALED) == pytest.approx(85.2)


async def test_stop_cancels_a_slow_answer_in_progress() -> None:
    clock = ManualClock()
    sim = ModbusSimulator([transformer(1)], clock=clock)
    await sim.start()
    async with client(sim.port, timeout=0.5) as c:
        sim.faults(1).slow(60.0)
        pending = asyncio.create_task(read_holding(c, 0))
        await request_is_waiting_on(clock)
        await sim.stop()
        with pytest.raises(ModbusIOException):
            await pending
    assert clock.sleepers == 0


# --- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda f: f.exception(0), "1..255"),
        (lambda f: f.exception(256), "1..255"),
        (lambda f: f.exception(True), "1..255"),
        (lambda f: f.slow(-1), ">= 0"),
        (lambda f: f.garbage(b""), "non-empty"),
    ],
)
def test_bad_fault_parameters_are_refused_and_keep_the_fault(
    call: Callable[..., None], match: str
) -> None:
    device = transformer(1)
    device.faults.silent()
    with pytest.raises(InvalidFaultError, match=match):
        call(device.faults)
    assert device.faults.current.kind == "silent"


@pytest.mark.parametrize(
    ("points", "match"),
    [
        ([SimPoint("a", Table.HOLDING, 0, U16, 1)] * 2, "used twice"),
        ([SimPoint("a", Table.HOLDING, 0, BOOL, True)], "does not fit table"),
        ([SimPoint("a", Table.COIL, 0, U16, 1)], "does not fit table"),
        ([SimPoint("a", Table.HOLDING, 65535, F32, 1.0)], "outside 0..65535"),
        ([SimPoint("a", Table.HOLDING, -1, U16, 1)], "outside 0..65535"),
        (
            [SimPoint("a", Table.HOLDING, 0, F32, 1.0), SimPoint("b", Table.HOLDING, 1, U16, 1)],
            "overlaps point 'a'",
        ),
        ([SimPoint("a", Table.HOLDING, 0, U16, 70_000)], "initial value"),
        ([SimPoint("a", "holding", 0, U16, 1)], "must be a Table"),  # type: ignore[arg-type]
    ],
)
def test_bad_points_are_refused(points: list[SimPoint], match: str) -> None:
    with pytest.raises(InvalidPointError, match=match):
        SimulatedDevice(1, points)


@pytest.mark.parametrize("unit", [0, 256, True])
def test_bad_unit_is_refused(unit: int) -> None:
    with pytest.raises(InvalidPointError, match="unit id"):
        SimulatedDevice(unit, [])


def test_bad_set_keeps_the_value_and_unknown_names_raise() -> None:
    device = transformer(1)
    with pytest.raises(EncodeError):
        device.set("setpoint", -1)
    assert device.get("setpoint") == 130
    with pytest.raises(UnknownPointError, match="'nope'"):
        device.set("nope", 1)
    with pytest.raises(UnknownPointError):
        device.get("nope")


async def test_simulator_state_errors() -> None:
    with pytest.raises(InvalidPointError, match="given twice"):
        ModbusSimulator([transformer(1), transformer(1)])
    sim = ModbusSimulator([transformer(1)])
    with pytest.raises(SimulatorStateError):
        _ = sim.port
    with pytest.raises(UnknownUnitError):
        sim.faults(3)
    await sim.start()
    try:
        with pytest.raises(SimulatorStateError, match="already started"):
            await sim.start()
        with pytest.raises(OSError, match="cannot listen"):
            await ModbusSimulator([transformer(1)], port=sim.port).start()
    finally:
        await sim.stop()
    await sim.stop()  # idempotent


# --- demo map and CLI ---------------------------------------------------------


async def test_drift_moves_demo_values_on_the_clock() -> None:
    clock = ManualClock()
    devices = demo_devices([1, 2])
    task = asyncio.create_task(drift(devices, clock, period=1.0))
    try:
        await clock.advance(0)
        first = [d.get("energy_kwh") for d in devices]
        await clock.advance(10.0)
        assert [d.get("energy_kwh") for d in devices] == [e + 10 for e in first]  # type: ignore[operator]
        assert devices[0].get("voltage") != devices[1].get("voltage")
    finally:
        task.cancel()


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    yield port


async def test_cli_serves_the_demo_map_until_interrupted(free_port: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.modbus.simulator",
        "--port",
        str(free_port),
        "--units",
        "1,3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        banner = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
        assert f"127.0.0.1:{free_port}, units [1, 3]" in banner.decode()
        async with client(free_port) as c:
            temperature = await c.read_holding_registers(0, count=1, device_id=3)
            energy = await c.read_input_registers(0, count=2, device_id=1)
        assert 40.0 <= decode(temperature.registers, I16_SCALED) <= 50.0  # type: ignore[operator]
        assert decode(energy.registers, ValueSpec(DataType.UINT32)) >= 1000  # type: ignore[operator]
    finally:
        proc.send_signal(signal.SIGINT)
        returncode = await asyncio.wait_for(proc.wait(), timeout=10)
    assert returncode == 0
