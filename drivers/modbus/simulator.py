"""A Modbus device simulator for tests, demos and benchmarks: TCP, RTU over TCP, serial RTU.

:class:`SimulatedDevice` holds the four tables of one unit id, filled from
named :class:`SimPoint` values through the codec (:func:`encode`); ``set``
changes a value live and ``get`` decodes what is there now, including what a
client wrote. :class:`ModbusSimulator` serves several devices (unit ids) on
one TCP port or one serial line with pymodbus and lets each unit misbehave
on demand (:mod:`drivers.modbus.faults`)::

    pump = SimulatedDevice(1, [SimPoint("speed", Table.HOLDING, 0, ValueSpec(DataType.UINT16), 0)])
    async with ModbusSimulator([pump]) as sim:
        ...  # a client on sim.port reads holding 0 of unit 1
        sim.faults(1).silent()

Like a real device, a request touching an address that no point covers is
answered with exception 2 (illegal data address); a ``lenient`` device reads
such addresses as zero and accepts writes to them. A unit id that is not
served is answered with exception 11 (gateway target failed to respond) on
Modbus TCP and not at all with RTU framing, as on a real bus.

Transports (``transport=``): ``"tcp"`` (Modbus TCP, the default),
``"rtu_over_tcp"`` (RTU frames on a TCP port, as a serial device server
passes them on) and ``"serial"`` (RTU on ``serial_port``, a real port or one
end of a pty pair). The same faults work on all three.

CLI for demos and manual tests (serves until Ctrl-C)::

    python -m drivers.modbus.simulator --port 5020 --units 1,2,3
    python -m drivers.modbus.simulator --transport serial --serial-port /dev/pts/3 \
        --baudrate 9600 --units 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, get_args

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType

from drivers.modbus.codec import Value, decode, encode
from drivers.modbus.datatypes import DataType, EncodeError, ValueSpec
from drivers.modbus.faults import (
    Fault,
    FaultControl,
    FaultInjectingSerialServer,
    FaultInjectingServer,
    FaultInjectingTcpServer,
)
from drivers.modbus.link import serial_settings_problem
from drivers.modbus.planner import ADDRESS_SPACE, Table
from gateway.clock import Clock, SystemClock

__all__ = [
    "InvalidPointError",
    "ModbusSimulator",
    "SimPoint",
    "SimTransport",
    "SimulatedDevice",
    "SimulatorError",
    "SimulatorStateError",
    "UnknownPointError",
    "UnknownUnitError",
    "demo_devices",
    "drift",
]


SimTransport = Literal["tcp", "rtu_over_tcp", "serial"]
"""How the simulator is reached: Modbus TCP, RTU over TCP, RTU on a serial device."""


class SimulatorError(Exception):
    """Base of the simulator's errors."""


class InvalidPointError(SimulatorError, ValueError):
    """A point or device cannot be simulated as given (names the point and the problem)."""


class UnknownPointError(SimulatorError, KeyError):
    """``set``/``get`` named a point the device does not have."""


class UnknownUnitError(SimulatorError, KeyError):
    """The simulator serves no device with that unit id."""


class SimulatorStateError(SimulatorError, RuntimeError):
    """start/stop/port used in the wrong state (e.g. ``port`` before ``start``)."""


@dataclass(frozen=True, slots=True)
class SimPoint:
    """A named value at ``address`` of ``table``, laid out by ``spec``; ``value`` is initial."""

    name: str
    table: Table
    address: int
    spec: ValueSpec
    value: Value


# Function code -> table it reads or writes (pymodbus asks the datastore per function code).
_FC_TABLE = {
    1: Table.COIL,
    5: Table.COIL,
    15: Table.COIL,
    2: Table.DISCRETE,
    4: Table.INPUT,
    3: Table.HOLDING,
    6: Table.HOLDING,
    16: Table.HOLDING,
    22: Table.HOLDING,
    23: Table.HOLDING,
}


class SimulatedDevice:
    """One unit id: its points, its four tables and its fault switch (``faults``).

    Points may share registers only when they span exactly the same
    addresses (e.g. ``bit`` points of one status word); ``set`` on a ``bit``
    or ``bitfield`` point keeps the register's other bits.
    """

    def __init__(self, unit: int, points: Sequence[SimPoint], *, lenient: bool = False) -> None:
        if isinstance(unit, bool) or not isinstance(unit, int) or not 1 <= unit <= 255:
            raise InvalidPointError(f"unit id must be an integer 1..255, got {unit!r}")
        self.unit = unit
        self.lenient = lenient
        self.faults = FaultControl()
        self._points: dict[str, SimPoint] = {}
        self._memory: dict[Table, dict[int, int]] = {table: {} for table in Table}
        spans: dict[Table, dict[int, tuple[str, int, int]]] = {table: {} for table in Table}
        for point in points:
            self._add(point, spans[point.table] if isinstance(point.table, Table) else {})

    def _add(self, point: SimPoint, span_of: dict[int, tuple[str, int, int]]) -> None:
        where = f"unit {self.unit}, point {point.name!r}"
        if not isinstance(point.table, Table):
            raise InvalidPointError(f"{where}: table must be a Table, got {point.table!r}")
        if point.name in self._points:
            raise InvalidPointError(f"{where}: name is used twice")
        if point.spec.is_bit_table != point.table.is_bit:
            raise InvalidPointError(
                f"{where}: type {point.spec.type} does not fit table {point.table} "
                "(bool lives in coil/discrete, every other type in holding/input)"
            )
        end = point.address + point.spec.count
        if not isinstance(point.address, int) or point.address < 0 or end > ADDRESS_SPACE:
            raise InvalidPointError(
                f"{where}: address {point.address!r} (+{point.spec.count}) is outside 0..65535"
            )
        for address in range(point.address, end):
            other = span_of.get(address)
            if other is not None and other[1:] != (point.address, end):
                raise InvalidPointError(
                    f"{where}: overlaps point {other[0]!r}; points may share only identical spans"
                )
        try:
            registers = self._encode(point, point.value)
        except EncodeError as exc:
            raise InvalidPointError(f"{where}: initial value: {exc}") from exc
        for address in range(point.address, end):
            span_of[address] = (point.name, point.address, end)
        self._points[point.name] = point
        self._store(point, registers)

    # --- values ---------------------------------------------------------------

    @property
    def points(self) -> tuple[SimPoint, ...]:
        """The points as configured (initial values)."""
        return tuple(self._points.values())

    def set(self, name: str, value: Value) -> None:
        """Change a point's value now; raises EncodeError (nothing changes) for a bad value."""
        point = self._point(name)
        self._store(point, self._encode(point, value))

    def get(self, name: str) -> Value:
        """The point's value as the registers hold it now (e.g. after a client's write)."""
        point = self._point(name)
        table = self._memory[point.table]
        registers = [table[a] for a in range(point.address, point.address + point.spec.count)]
        return decode(registers, point.spec)

    def _point(self, name: str) -> SimPoint:
        try:
            return self._points[name]
        except KeyError:
            raise UnknownPointError(f"unit {self.unit} has no point {name!r}") from None

    def _encode(self, point: SimPoint, value: Value) -> list[int]:
        base = self._memory[point.table].get(point.address, 0)
        return encode(value, point.spec, base=base)

    def _store(self, point: SimPoint, registers: list[int]) -> None:
        table = self._memory[point.table]
        for offset, register in enumerate(registers):
            table[point.address + offset] = register

    # --- wire side (called by the server) -----------------------------------------

    def read(self, table: Table, address: int, count: int) -> list[int] | ExcCodes:
        """Registers (0/1 for bit tables) of a request, or the exception to answer."""
        memory = self._memory[table]
        if not self.lenient and any(a not in memory for a in range(address, address + count)):
            return ExcCodes.ILLEGAL_ADDRESS
        return [memory.get(a, 0) for a in range(address, address + count)]

    def write(self, table: Table, address: int, values: Sequence[int]) -> ExcCodes | None:
        """Store a client's write, or return the exception to answer."""
        memory = self._memory[table]
        if not self.lenient and any(a not in memory for a in range(address, address + len(values))):
            return ExcCodes.ILLEGAL_ADDRESS
        for offset, value in enumerate(values):
            memory[address + offset] = int(value)
        return None


class _Store:
    """The duck-typed datastore pymodbus request PDUs call (see faults.RequestStore)."""

    def __init__(self, devices: dict[int, SimulatedDevice]) -> None:
        self._devices = devices

    def fault(self, unit: int) -> Fault | None:
        device = self._devices.get(unit)
        return None if device is None else device.faults.current

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        table = _FC_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        values = self._devices[device_id].read(table, address, count)
        if table.is_bit and isinstance(values, list):
            return [bool(v) for v in values]
        return values

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        table = _FC_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        return self._devices[device_id].write(table, address, [int(v) for v in values])


class ModbusSimulator:
    """Serve ``devices`` (one per unit id) on one Modbus TCP port or one serial line.

    ``transport`` picks the framing and medium (:data:`SimTransport`). On the
    TCP ones ``port=0`` picks a free port; read :attr:`port` after
    :meth:`start`. ``"serial"`` opens ``serial_port`` with ``baudrate``,
    ``parity``, ``stopbits`` and ``bytesize``; ``host`` and ``port`` do not
    apply to it. Usable as ``async with``. ``clock`` times the ``slow`` fault.
    """

    def __init__(
        self,
        devices: Sequence[SimulatedDevice],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Clock | None = None,
        transport: SimTransport = "tcp",
        serial_port: str | None = None,
        baudrate: int = 19200,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
    ) -> None:
        self._devices: dict[int, SimulatedDevice] = {}
        for device in devices:
            if device.unit in self._devices:
                raise InvalidPointError(f"unit id {device.unit} is given twice")
            self._devices[device.unit] = device
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidPointError(f"port must be 0..65535, got {port!r}")
        if transport not in get_args(SimTransport):
            raise InvalidPointError(
                f"transport must be one of {', '.join(get_args(SimTransport))}, got {transport!r}"
            )
        if transport == "serial":
            if not serial_port or not isinstance(serial_port, str):
                raise InvalidPointError("transport 'serial' needs serial_port (a device path)")
            problem = serial_settings_problem(baudrate, parity, stopbits, bytesize)
            if problem is not None:
                raise InvalidPointError(f"serial port {serial_port}: {problem}")
        elif serial_port is not None:
            raise InvalidPointError(
                f"serial_port applies only to transport 'serial', not {transport!r}"
            )
        self.host = host
        self.transport: SimTransport = transport
        self.serial_port = serial_port
        self.baudrate, self.parity, self.stopbits, self.bytesize = (
            baudrate,
            parity,
            stopbits,
            bytesize,
        )
        self._requested_port = port
        self._clock = clock or SystemClock()
        self._server: FaultInjectingServer | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The TCP port listened on; raises SimulatorStateError before start() or on serial."""
        if self.transport == "serial":
            raise SimulatorStateError(
                f"transport 'serial' has no TCP port; it serves {self.serial_port}"
            )
        if self._port is None:
            raise SimulatorStateError("the simulator is not started; call start() first")
        return self._port

    @property
    def units(self) -> tuple[int, ...]:
        return tuple(self._devices)

    def device(self, unit: int) -> SimulatedDevice:
        try:
            return self._devices[unit]
        except KeyError:
            raise UnknownUnitError(f"no simulated device with unit id {unit}") from None

    def faults(self, unit: int) -> FaultControl:
        """The fault switch of ``unit`` (same as ``device(unit).faults``)."""
        return self.device(unit).faults

    async def start(self) -> None:
        """Listen; raises OSError when the port cannot be bound or the device opened."""
        if self._server is not None:
            raise SimulatorStateError("the simulator is already started")
        store = _Store(self._devices)
        server: FaultInjectingServer
        if self.transport == "serial":
            assert self.serial_port is not None  # checked in __init__
            server = FaultInjectingSerialServer(
                store,
                self._clock,
                self.serial_port,
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
                bytesize=self.bytesize,
            )
            where = f"serial port {self.serial_port}"
        else:
            framer = FramerType.RTU if self.transport == "rtu_over_tcp" else FramerType.SOCKET
            server = FaultInjectingTcpServer(
                store, self._clock, self.host, self._requested_port, framer=framer
            )
            where = f"{self.host}:{self._requested_port}"
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus' only signal that listen() failed
            verb = "open" if self.transport == "serial" else "listen on"
            raise OSError(f"cannot {verb} {where}: {exc}") from exc
        self._server = server
        if isinstance(server, FaultInjectingTcpServer):
            self._port = server.bound_port

    async def stop(self) -> None:
        """Stop listening and drop every connection; a no-op when not started."""
        server, self._server, self._port = self._server, None, None
        if server is not None:
            await server.close_all()

    async def __aenter__(self) -> ModbusSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


# --- demo map and CLI --------------------------------------------------------------


def demo_devices(units: Sequence[int], *, lenient: bool = False) -> list[SimulatedDevice]:
    """A small plausible map per unit: temperatures, a float voltage and current, a counter."""
    f32 = ValueSpec(DataType.FLOAT32)
    return [
        SimulatedDevice(
            unit,
            [
                SimPoint(
                    "temperature", Table.HOLDING, 0, ValueSpec(DataType.INT16, scale=0.1), 45.0
                ),
                SimPoint("voltage", Table.HOLDING, 1, f32, 230.0),
                SimPoint("current", Table.HOLDING, 3, f32, 12.5),
                SimPoint("setpoint", Table.HOLDING, 5, ValueSpec(DataType.UINT16), 50),
                SimPoint("energy_kwh", Table.INPUT, 0, ValueSpec(DataType.UINT32), 1000),
                SimPoint("run", Table.COIL, 0, ValueSpec(DataType.BOOL), True),
                SimPoint("alarm", Table.DISCRETE, 0, ValueSpec(DataType.BOOL), False),
            ],
            lenient=lenient,
        )
        for unit in units
    ]


async def drift(devices: Sequence[SimulatedDevice], clock: Clock, period: float = 1.0) -> None:
    """Move the demo values every ``period`` seconds until cancelled (for demo_devices maps)."""
    start = clock.monotonic()
    while True:
        t = clock.monotonic() - start
        for device in devices:
            phase = device.unit * 0.7
            device.set("temperature", round(45.0 + 5.0 * math.sin(t / 60.0 + phase), 1))
            device.set("voltage", 230.0 + 2.0 * math.sin(t / 7.0 + phase))
            device.set("current", 12.5 + 3.0 * math.sin(t / 11.0 + phase))
            energy = device.get("energy_kwh")
            assert isinstance(energy, int)
            device.set("energy_kwh", (energy + 1) % 2**32)
        await clock.sleep(period)


def _parse_units(text: str) -> list[int]:
    try:
        units = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"units must be comma-separated integers, got {text!r}"
        ) from None
    if not units:
        raise argparse.ArgumentTypeError("give at least one unit id")
    return units


async def _serve(args: argparse.Namespace) -> None:
    clock = SystemClock()
    units: list[int] = args.units
    devices = demo_devices(units, lenient=args.lenient)
    serial = args.transport == "serial"
    sim = ModbusSimulator(
        devices,
        args.host,
        args.port,
        clock=clock,
        transport=args.transport,
        serial_port=args.serial_port if serial else None,
        baudrate=args.baudrate,
        parity=args.parity,
        stopbits=args.stopbits,
    )
    async with sim:
        names = ", ".join(p.name for p in devices[0].points)
        if serial:
            line = f"{args.baudrate} baud 8{args.parity}{args.stopbits}"
            where = f"(RTU) on {args.serial_port} at {line}"
        elif args.transport == "rtu_over_tcp":
            where = f"(RTU over TCP) on {args.host}:{sim.port}"
        else:
            where = f"on {args.host}:{sim.port}"
        print(f"Modbus simulator {where}, units {units}: {names}", flush=True)
        await drift(devices, clock)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a demo Modbus map until Ctrl-C.")
    parser.add_argument("--transport", choices=get_args(SimTransport), default="tcp")
    parser.add_argument("--host", default="127.0.0.1", help="tcp, rtu_over_tcp")
    parser.add_argument("--port", type=int, default=5020, help="tcp, rtu_over_tcp")
    parser.add_argument("--serial-port", help="serial: device path, e.g. /dev/ttyUSB0")
    parser.add_argument("--baudrate", type=int, default=19200, help="serial")
    parser.add_argument("--parity", choices=("N", "E", "O"), default="N", help="serial")
    parser.add_argument("--stopbits", type=int, choices=(1, 2), default=1, help="serial")
    parser.add_argument("--units", type=_parse_units, default=[1])
    parser.add_argument("--lenient", action="store_true", help="unmapped addresses read 0")
    args = parser.parse_args(argv)
    if args.transport == "serial" and not args.serial_port:
        parser.error("--transport serial needs --serial-port")
    if args.transport != "serial" and args.serial_port:
        parser.error("--serial-port applies only to --transport serial")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
