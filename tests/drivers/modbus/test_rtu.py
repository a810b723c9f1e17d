"""Modbus RTU end to end: ModbusSimulator on one end of a socat pty pair, ModbusLink on the other.

Also RTU framing over TCP (serial device servers). The line runs at 115200
baud (a pty ignores the rate; the setting is still passed through pyserial).
Timeouts are 0.3 s, so every test that waits for silence costs one of them.
RTU answer frames for the CRC and truncation cases are built here with a
hand-written CRC-16/MODBUS, not with pymodbus, so the two are checked
against each other.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pymodbus.framer import FramerType

from drivers.modbus.codec import decode, encode
from drivers.modbus.datatypes import DataType, ValueSpec
from drivers.modbus.link import (
    BadResponse,
    DeviceException,
    DeviceTimeout,
    LinkDown,
    ModbusLink,
    rtu_frame_gap_s,
    serial_client_factory,
    tcp_client_factory,
)
from drivers.modbus.planner import Table
from drivers.modbus.simulator import (
    InvalidPointError,
    ModbusSimulator,
    SimPoint,
    SimulatedDevice,
    SimulatorStateError,
    main,
)
from gateway.clock import ManualClock
from tests.drivers.modbus import golden_vectors as gv
from tests.fixtures.serial import SOCAT_MISSING, socat_pty_pair

BAUD = 115200
TIMEOUT = 0.3
U16 = ValueSpec(DataType.UINT16)
F32 = ValueSpec(DataType.FLOAT32)


def meter(unit: int, volts: float) -> SimulatedDevice:
    """A small device: a float at holding 0-1, a setpoint at 2, a coil at 0."""
    return SimulatedDevice(
        unit,
        [
            SimPoint("volts", Table.HOLDING, 0, F32, volts),
            SimPoint("setpoint", Table.HOLDING, 2, U16, 100 + unit),
            SimPoint("run", Table.COIL, 0, ValueSpec(DataType.BOOL), unit % 2 == 1),
        ],
    )


@dataclass
class Line:
    """The simulator end and the client end of one serial line."""

    sim: ModbusSimulator
    device: str  # the client's end of the pty pair

    def link(self, *, timeout_s: float = TIMEOUT, **kwargs: Any) -> ModbusLink:
        factory = serial_client_factory(self.device, baudrate=BAUD, timeout_s=2.0)
        return ModbusLink("rtu", factory, timeout_s=timeout_s, **kwargs)


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[tuple[str, str]]:
    if shutil.which("socat") is None:
        pytest.skip(SOCAT_MISSING)
    with socat_pty_pair(tmp_path) as ends:
        yield ends


async def open_line(
    ends: tuple[str, str], devices: list[SimulatedDevice], clock: ManualClock | None = None
) -> Line:
    sim = ModbusSimulator(
        devices, transport="serial", serial_port=ends[0], baudrate=BAUD, clock=clock
    )
    await sim.start()
    return Line(sim, ends[1])


@pytest_asyncio.fixture(loop_scope="function")  # the simulator must share the test's loop
async def line(pty: tuple[str, str]) -> AsyncIterator[Line]:
    opened = await open_line(pty, [meter(1, 230.0), meter(2, 231.5), meter(3, 229.0)])
    yield opened
    await opened.sim.stop()


def crc16(data: bytes) -> bytes:
    """CRC-16/MODBUS (reflected poly 0xA001, init 0xFFFF), low byte first on the wire."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def holding_answer(unit: int, registers: list[int]) -> bytes:
    """An RTU answer to function 3: unit, 3, byte count, registers, CRC."""
    body = bytes([unit, 3, 2 * len(registers)]) + b"".join(r.to_bytes(2, "big") for r in registers)
    return body + crc16(body)


# --- golden vectors over the line ---------------------------------------------


@dataclass
class Placed:
    vector: dict[str, Any]
    spec: ValueSpec
    unit: int
    table: Table
    address: int


def _place(vectors: list[dict[str, Any]]) -> tuple[list[SimulatedDevice], list[Placed]]:
    """Spread the vectors over units 1-3 and two tables each, at consecutive addresses."""
    placed: list[Placed] = []
    points: dict[int, list[SimPoint]] = {1: [], 2: [], 3: []}
    next_free: dict[tuple[int, Table], int] = {}
    for i, vector in enumerate(vectors):
        spec = gv.spec(vector)
        unit = 1 + i % 3
        if spec.is_bit_table:
            table = Table.COIL if i % 2 else Table.DISCRETE
        else:
            table = Table.HOLDING if i % 2 else Table.INPUT
        address = next_free.get((unit, table), 0)
        next_free[(unit, table)] = address + spec.count
        points[unit].append(SimPoint(f"v{i}", table, address, spec, gv.expected(vector)))
        placed.append(Placed(vector, spec, unit, table, address))
    return [SimulatedDevice(unit, pts) for unit, pts in points.items()], placed


GOLDEN_FILES = [p.name for p in gv.files()]


@pytest.mark.parametrize("name", GOLDEN_FILES)
async def test_golden_vectors_round_trip_over_rtu(pty: tuple[str, str], name: str) -> None:
    """Simulator encodes each golden value, the link reads it over RTU, the codec decodes it.

    Where the golden registers are the only encoding of the value (not
    'lossy', no foreign bits around a bit), the wire must carry exactly them.
    """
    vectors = gv.vectors(gv.GOLDEN / name)
    devices, placed = _place(vectors)
    opened = await open_line(pty, devices)
    link = opened.link()
    try:
        for p in placed:
            raw = await link.read(p.table, p.address, p.spec.count, unit=p.unit)
            registers = [int(v) for v in raw]
            where = f"{name} {p.vector}"
            assert gv.same(decode(registers, p.spec), gv.expected(p.vector)), where
            assert registers == encode(gv.expected(p.vector), p.spec), where
            exact = not p.vector.get("lossy") and p.vector["type"] not in ("bit", "bitfield")
            if exact:
                golden = gv.registers(p.vector)
                assert registers == golden, where
        assert link.requests == len(vectors)
        assert link.connects == 1
    finally:
        await link.close()
        await opened.sim.stop()


# --- several units on one line ----------------------------------------------------


async def test_several_units_share_the_line(line: Line) -> None:
    link = line.link()
    try:
        one = await link.read(Table.HOLDING, 0, 3, unit=1)
        two = await link.read(Table.HOLDING, 0, 3, unit=2)
        three = await link.read(Table.COIL, 0, 1, unit=3)
        assert decode(one[:2], F32) == 230.0 and one[2] == 101
        assert decode(two[:2], F32) == 231.5 and two[2] == 102
        assert three == [True]
        # Concurrent callers: one request at a time on the line, each gets its unit's answer.
        results = await asyncio.gather(
            *(link.read(Table.HOLDING, 2, 1, unit=1 + i % 3) for i in range(12))
        )
        assert results == [[101 + i % 3] for i in range(12)]
        assert link.connects == 1
    finally:
        await link.close()


async def test_set_on_the_simulator_is_read_over_rtu(line: Line) -> None:
    link = line.link()
    try:
        line.sim.device(2).set("volts", 400.25)
        assert decode(await link.read(Table.HOLDING, 0, 2, unit=2), F32) == 400.25
        assert decode(await link.read(Table.HOLDING, 0, 2, unit=1), F32) == 230.0
    finally:
        await link.close()


async def test_close_and_reopen_the_port(line: Line) -> None:
    link = line.link()
    try:
        assert await link.read(Table.HOLDING, 2, 1, unit=1) == [101]
        await link.close()
        assert not link.connected
        assert await link.read(Table.HOLDING, 2, 1, unit=1) == [101]
        assert link.connects == 2
    finally:
        await link.close()


async def test_writes_over_rtu(line: Line) -> None:
    """The simulator takes writes over RTU (ModbusLink only reads: a raw client writes)."""
    client = serial_client_factory(line.device, baudrate=BAUD, timeout_s=2.0)()
    assert await client.connect()
    try:
        single = await client.write_register(2, 7, device_id=2)
        multi = await client.write_registers(0, encode(12.5, F32), device_id=2)
        coil = await client.write_coil(0, True, device_id=2)
        refused = await client.write_register(50, 1, device_id=2)  # no point there
    finally:
        client.close()
    assert not any(r.isError() for r in (single, multi, coil))
    assert refused.isError() and refused.exception_code == 2
    device = line.sim.device(2)
    assert (device.get("setpoint"), device.get("volts"), device.get("run")) == (7, 12.5, True)
    assert line.sim.device(1).get("setpoint") == 101  # other unit untouched
    link = line.link()
    try:
        assert await link.read(Table.HOLDING, 0, 3, unit=2) == [*encode(12.5, F32), 7]
    finally:
        await link.close()


# --- faults -----------------------------------------------------------------------


async def test_exception_response_is_typed_with_its_code(line: Line) -> None:
    link = line.link(retries=2)
    try:
        line.sim.faults(1).exception(6)
        with pytest.raises(DeviceException) as info:
            await link.read(Table.HOLDING, 0, 2, unit=1)
        assert info.value.code == 6
        with pytest.raises(DeviceException) as info:
            await link.read(Table.HOLDING, 10, 1, unit=2)  # no point at 10
        assert info.value.code == 2
        assert link.requests == 2  # the device answered: no retries
        line.sim.faults(1).clear()
        assert await link.read(Table.HOLDING, 2, 1, unit=1) == [101]
    finally:
        await link.close()


async def test_silent_unit_times_out_and_the_other_unit_still_answers(line: Line) -> None:
    link = line.link(retries=1, close_after_timeouts=10)
    try:
        line.sim.faults(1).silent()
        with pytest.raises(DeviceTimeout):
            await link.read(Table.HOLDING, 0, 2, unit=1)
        assert link.requests == 2  # a timeout is retried
        assert await link.read(Table.HOLDING, 2, 1, unit=2) == [102]
        line.sim.faults(1).clear()
        assert await link.read(Table.HOLDING, 2, 1, unit=1) == [101]
        assert link.connects == 1  # a timeout on a serial line keeps the port open
    finally:
        await link.close()


async def test_unit_nobody_serves_is_silence_on_rtu(line: Line) -> None:
    """On a bus, an address nobody owns gets no answer (Modbus TCP answers exception 11)."""
    link = line.link()
    try:
        with pytest.raises(DeviceTimeout):
            await link.read(Table.HOLDING, 0, 1, unit=9)
        assert await link.read(Table.HOLDING, 2, 1, unit=3) == [103]
    finally:
        await link.close()


async def test_garbage_frames_are_typed_errors_and_the_line_recovers(line: Line) -> None:
    link = line.link()
    good = holding_answer(1, [0x1234])
    cases: list[tuple[bytes | None, int, type[Exception] | None]] = [
        (good, 1, None),  # the hand-built frame is right: it is taken as the answer
        (None, 1, DeviceTimeout),  # default garbage: unknown function 0x63, nothing to decode
        (good[:-1] + bytes([good[-1] ^ 0x01]), 1, DeviceTimeout),  # CRC error: frame dropped
        (good[:-2], 1, DeviceTimeout),  # truncated: the framer waits for the rest
        (b"\xff\x00\x17 not modbus", 1, DeviceTimeout),  # line noise
        (holding_answer(2, [0x1234]), 1, DeviceTimeout),  # another unit's answer is skipped
        (good, 2, BadResponse),  # valid frame, one register where two were asked for
    ]
    try:
        for data, count, error in cases:
            line.sim.faults(1).garbage(data)
            if error is None:
                assert await link.read(Table.HOLDING, 0, count, unit=1) == [0x1234]
            else:
                with pytest.raises(error):
                    await link.read(Table.HOLDING, 0, count, unit=1)
            line.sim.faults(1).clear()
            assert await link.read(Table.HOLDING, 2, 1, unit=1) == [101], data
    finally:
        await link.close()


async def test_slow_answer_arrives_when_the_simulator_clock_moves(pty: tuple[str, str]) -> None:
    clock = ManualClock()
    opened = await open_line(pty, [meter(1, 230.0), meter(2, 231.5)], clock=clock)
    link = opened.link(timeout_s=10.0)  # generous: the simulator's clock decides
    try:
        opened.sim.faults(1).slow(30.0)
        pending = asyncio.create_task(link.read(Table.HOLDING, 2, 1, unit=1))
        await waiting_on(clock)
        assert not pending.done()
        await clock.advance(30.0)
        assert await pending == [101]
    finally:
        await link.close()
        await opened.sim.stop()


async def test_late_answer_of_one_unit_is_not_taken_for_another(pty: tuple[str, str]) -> None:
    """A unit answers after the link gave up; the next request (another unit) gets its own."""
    clock = ManualClock()
    opened = await open_line(pty, [meter(1, 230.0), meter(2, 231.5)], clock=clock)
    link = opened.link()
    try:
        opened.sim.faults(1).slow(5.0)
        with pytest.raises(DeviceTimeout):
            await link.read(Table.HOLDING, 2, 1, unit=1)
        await clock.advance(5.0)  # unit 1's answer [101] goes out now
        assert await link.read(Table.HOLDING, 2, 1, unit=2) == [102]
    finally:
        await link.close()
        await opened.sim.stop()


async def test_pymodbus_timeout_firing_first_is_still_device_timeout(line: Line) -> None:
    """The factory's timeout_s (pymodbus' own) below the link's: still DeviceTimeout."""
    factory = serial_client_factory(line.device, baudrate=BAUD, timeout_s=0.2)
    link = ModbusLink("rtu", factory, timeout_s=30.0)
    try:
        line.sim.faults(2).silent()
        with pytest.raises(DeviceTimeout, match="No response received"):
            await link.read(Table.HOLDING, 0, 1, unit=2)
        line.sim.faults(2).clear()
        assert await link.read(Table.HOLDING, 2, 1, unit=2) == [102]
    finally:
        await link.close()


async def waiting_on(clock: ManualClock) -> None:
    """Wait (real time, bounded) until the simulator's slow answer sleeps on ``clock``."""
    for _ in range(500):
        if clock.sleepers:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request never reached the simulator")


# --- RTU over TCP ---------------------------------------------------------------------


async def test_rtu_over_tcp_against_the_simulator() -> None:
    devices = [meter(1, 230.0), meter(2, 231.5)]
    async with ModbusSimulator(devices, transport="rtu_over_tcp") as sim:
        factory = tcp_client_factory("127.0.0.1", sim.port, framer=FramerType.RTU)
        link = ModbusLink("rtu-tcp", factory, timeout_s=TIMEOUT, close_after_timeouts=10)
        try:
            assert decode(await link.read(Table.HOLDING, 0, 2, unit=2), F32) == 231.5
            assert await link.read(Table.COIL, 0, 1, unit=1) == [True]
            sim.faults(1).exception(4)
            with pytest.raises(DeviceException) as info:
                await link.read(Table.HOLDING, 0, 2, unit=1)
            assert info.value.code == 4
            sim.faults(1).silent()
            with pytest.raises(DeviceTimeout):
                await link.read(Table.HOLDING, 0, 2, unit=1)
            assert await link.read(Table.HOLDING, 2, 1, unit=2) == [102]
            sim.faults(1).garbage()
            with pytest.raises(DeviceTimeout):
                await link.read(Table.HOLDING, 0, 2, unit=1)
            sim.faults(1).garbage(holding_answer(1, [7, 8]))  # a good RTU frame passes TCP
            assert await link.read(Table.HOLDING, 0, 2, unit=1) == [7, 8]
            with pytest.raises(DeviceTimeout):  # behind a serial server: nobody answers
                await link.read(Table.HOLDING, 0, 1, unit=9)
            sim.faults(1).clear()
            assert await link.read(Table.HOLDING, 2, 1, unit=1) == [101]
            assert link.connects == 1
        finally:
            await link.close()


# --- settings, state and the CLI ------------------------------------------------------


def test_rtu_frame_gap() -> None:
    assert rtu_frame_gap_s(9600) == pytest.approx(3.5 * 10 / 9600)  # 8N1: 10 bits, ~3.6 ms
    assert rtu_frame_gap_s(9600, parity="E") == pytest.approx(3.5 * 11 / 9600)
    assert rtu_frame_gap_s(19200, stopbits=2) == pytest.approx(3.5 * 11 / 19200)
    assert rtu_frame_gap_s(115200) == 0.00175  # the spec's fixed gap above 19200 baud
    with pytest.raises(ValueError, match="baudrate"):
        rtu_frame_gap_s(0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"baudrate": 0}, "baudrate"),
        ({"parity": "X"}, "parity"),
        ({"stopbits": 3}, "stopbits"),
        ({"bytesize": 6}, "bytesize"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_bad_serial_settings_are_refused_at_once(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        serial_client_factory("/dev/ttyUSB0", **kwargs)


async def test_missing_serial_device_is_link_down(tmp_path: Path) -> None:
    link = ModbusLink("rtu", serial_client_factory(str(tmp_path / "nope")), timeout_s=TIMEOUT)
    with pytest.raises(LinkDown):
        await link.read(Table.HOLDING, 0, 1, unit=1)
    await link.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"transport": "udp"}, "transport must be one of"),
        ({"transport": "serial"}, "needs serial_port"),
        ({"transport": "serial", "serial_port": "/dev/x", "parity": "X"}, "parity"),
        ({"transport": "rtu_over_tcp", "serial_port": "/dev/x"}, "applies only"),
    ],
)
def test_bad_simulator_transport_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidPointError, match=match):
        ModbusSimulator([meter(1, 1.0)], **kwargs)


async def test_serial_simulator_state(tmp_path: Path, line: Line) -> None:
    with pytest.raises(SimulatorStateError, match="no TCP port"):
        _ = line.sim.port
    with pytest.raises(OSError, match="cannot open serial port"):
        await ModbusSimulator(
            [meter(1, 1.0)], transport="serial", serial_port=str(tmp_path / "nope")
        ).start()


def test_cli_refuses_serial_without_a_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--transport", "serial"])
    assert info.value.code == 2
    assert "--serial-port" in capsys.readouterr().err


async def test_cli_serves_the_demo_map_on_a_serial_line(pty: tuple[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.modbus.simulator",
        "--transport",
        "serial",
        "--serial-port",
        pty[0],
        "--baudrate",
        "9600",
        "--units",
        "1,2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    link = ModbusLink("cli", serial_client_factory(pty[1], baudrate=9600), timeout_s=2.0)
    try:
        assert proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode()
        assert f"(RTU) on {pty[0]} at 9600 baud 8N1, units [1, 2]" in banner
        temperature = await link.read(Table.HOLDING, 0, 1, unit=2)
        energy = await link.read(Table.INPUT, 0, 2, unit=1)
        scaled = decode(temperature, ValueSpec(DataType.INT16, scale=0.1))
        assert isinstance(scaled, float) and 40.0 <= scaled <= 50.0
        counted = decode(energy, ValueSpec(DataType.UINT32))
        assert isinstance(counted, int) and counted >= 1000
    finally:
        await link.close()
        proc.send_signal(signal.SIGINT)
        returncode = await asyncio.wait_for(proc.wait(), timeout=10)
    assert returncode == 0
