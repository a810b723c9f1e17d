"""The simulated estate of the demo: the device profiles played on Modbus servers, with physics.

Two rooms, each one :class:`~drivers.modbus.simulator.ModbusSimulator` on a
loopback port, several unit ids per port as on a real bus:

===========  ==============  =====================================================
room         transport       devices (unit: device, profile)
===========  ==============  =====================================================
power room   RTU over TCP    1 tx1, 2 tx2 (dry_type_tc); 11 pm1 (eastron_sdm630);
             (a serial       12 pm2 (power_meter_3ph); 21 cap1
             device server)  (capacitor_bank_controller)
pump room    Modbus TCP      1-4 pump1..pump4 (booster_pump_vfd); 11 tank1,
                             12 tank2 (level_sensor); 21 dio1 (dio_module_16ch)
===========  ==============  =====================================================

:class:`Estate` builds the devices from the profile library
(:func:`sim_device`), steps the physics (:mod:`drivers.modbus.physics`) on
an injectable clock (``await estate.run(clock)``, or ``estate.step(dt,
now)`` in tests), honours what clients write (start/stop and reset coils,
setpoints: read back from the simulated registers each step) and gives the
site file its ``type: modbus`` driver block and ``devices:`` entries
(:meth:`Estate.driver_block`, :meth:`Estate.device_entries`,
:meth:`Estate.site_fragment`).

Faults: the wire misbehaves per unit (``estate.faults("pump1").silent()``,
see :mod:`drivers.modbus.faults`); the plant misbehaves through the physics
(:meth:`Estate.trip_pump`, :meth:`Estate.overheat`); any point can be pinned
to a value the physics then leaves alone (:meth:`Estate.set_point`, e.g. a
door contact or a sensor fault bit) until released.

Control port and CLI (one text command per line, one JSON answer per line,
on 127.0.0.1 only; ``help`` lists the commands)::

    python -m drivers.modbus.estate                    # serve; prints ports and the site block
    python -m drivers.modbus.estate inject --control 5029 --device pump1 trip
    python -m drivers.modbus.estate inject --control 5029 --port 5021 --unit 1 exception 6
    printf 'tx1 overheat 140\\n' | nc 127.0.0.1 5029
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from zoneinfo import ZoneInfo

import yaml

from drivers.modbus.codec import Value
from drivers.modbus.datatypes import ByteOrder, DataType, EncodeError
from drivers.modbus.faults import FaultControl, InvalidFaultError
from drivers.modbus.physics import INPUTS, EstatePhysics, PhysicsError
from drivers.modbus.profiles import LIBRARY_DIR, Profile, ProfileLibrary
from drivers.modbus.simulator import (
    InvalidPointError,
    ModbusSimulator,
    SimPoint,
    SimTransport,
    SimulatedDevice,
    SimulatorError,
)
from gateway.clock import Clock, SystemClock

__all__ = [
    "LAYOUT",
    "ROOMS",
    "ControlError",
    "ControlServer",
    "Estate",
    "Placement",
    "Room",
    "main",
    "send_command",
    "sim_device",
]


class ControlError(ValueError):
    """A control command is malformed or names something the estate does not have."""


# --- building devices from profiles ---------------------------------------------------


def _default_value(point: SimPoint) -> Value:
    spec = point.spec
    if spec.type is DataType.BOOL or spec.type is DataType.BIT:
        return False
    if spec.type is DataType.BITFIELD:
        assert spec.bits is not None
        return dict.fromkeys(spec.bits, False)
    if spec.type is DataType.ENUM:
        assert spec.labels is not None
        return spec.labels[min(spec.labels)]
    if spec.type is DataType.STRING:
        return ""
    return spec.offset if spec.offset is not None else 0


def sim_device(
    profile: Profile,
    unit: int,
    *,
    order: ByteOrder | None = None,
    overrides: Mapping[str, Value] = {},  # read only, so a shared default is safe
    lenient: bool = True,
) -> SimulatedDevice:
    """A simulated device that answers ``profile``'s map as unit ``unit``.

    Every point becomes a :class:`SimPoint` (a bitfield is one point) with
    the spec the driver will use (``order`` or the profile's order applied).
    Initial values are zero, false, or the first enum label; ``overrides``
    sets others by point name or by bit name. ``lenient`` devices answer the
    unused registers between points with zeros, as most real devices do (the
    planner reads across small gaps). Raises
    :class:`~drivers.modbus.simulator.InvalidPointError` for an override
    that names no point or does not encode.
    """
    device_order = order if order is not None else profile.order
    bit_owner = {bit: name for name, p in profile.points.items() for bit in (p.bits or {})}
    unknown = sorted(set(overrides) - set(profile.points) - set(bit_owner))
    if unknown:
        raise InvalidPointError(
            f"profile {profile.name}: overrides name no point or bit: {', '.join(unknown)}"
        )
    points: list[SimPoint] = []
    for name, config in profile.points.items():
        spec = config.value_spec(device_order)
        blank = SimPoint(name, config.table, config.address, spec, 0)
        value: Value = overrides.get(name, _default_value(blank))
        if spec.type is DataType.BITFIELD and isinstance(value, dict):
            for bit, state in overrides.items():
                if bit_owner.get(bit) == name:
                    if not isinstance(state, bool):
                        raise InvalidPointError(
                            f"override {bit!r}: a bit takes a bool, got {state!r}"
                        )
                    value[bit] = state
        points.append(SimPoint(name, config.table, config.address, spec, value))
    return SimulatedDevice(unit, points, lenient=lenient)


# --- the layout of the demo estate ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Room:
    """A plant room: one Modbus endpoint (a serial device server or a TCP gateway)."""

    title: str
    transport: SimTransport


@dataclass(frozen=True, slots=True)
class Placement:
    """One device of the estate: where it sits and what the site file says about it."""

    device: str
    profile: str
    room: str
    unit: int
    name: str  # display name in the site file
    params: Mapping[str, float] = field(default_factory=dict)
    points: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # site overrides


ROOMS: Mapping[str, Room] = {
    "power_room": Room("B1 配电房", "rtu_over_tcp"),
    "pump_room": Room("B2 水泵房", "tcp"),
}

_TX_RATED_A = 1443.0  # 1000 kVA at 400 V
_PUMP_RATED_A = 15.0  # 7.5 kW motor at 380 V


def _di(address: int, what: str) -> dict[str, Any]:
    return {"table": "discrete", "address": address, "description": what}


LAYOUT: tuple[Placement, ...] = (
    Placement("tx1", "dry_type_tc", "power_room", 1, "1# 干式变压器"),
    Placement("tx2", "dry_type_tc", "power_room", 2, "2# 干式变压器"),
    Placement(
        "pm1",
        "eastron_sdm630",
        "power_room",
        11,
        "1# 低压进线电表",
        {"rated_current_a": _TX_RATED_A},
    ),
    Placement(
        "pm2",
        "power_meter_3ph",
        "power_room",
        12,
        "2# 低压进线电表",
        {"rated_current_a": _TX_RATED_A},
    ),
    Placement("cap1", "capacitor_bank_controller", "power_room", 21, "1# 无功补偿柜"),
    *(
        Placement(
            f"pump{i}",
            "booster_pump_vfd",
            "pump_room",
            i,
            f"{i}# 生活水泵（{'低' if i <= 2 else '高'}区）",
            {"rated_current_a": _PUMP_RATED_A},
        )
        for i in range(1, 5)
    ),
    Placement(
        "tank1", "level_sensor", "pump_room", 11, "1# 生活水箱（低区）", {"tank_height_m": 3.0}
    ),
    Placement(
        "tank2", "level_sensor", "pump_room", 12, "2# 生活水箱（高区）", {"tank_height_m": 3.0}
    ),
    Placement(
        "dio1",
        "dio_module_16ch",
        "pump_room",
        21,
        "开关量模块",
        points={
            "di_01": _di(0, "B1 power room door (1 = open)"),
            "di_02": _di(1, "B2 pump room door (1 = open)"),
            "di_05": _di(4, "B2 pump room floor leak sensor (1 = water)"),
            "di_09": _di(8, "Fire panel: fire alarm relay (1 = alarm)"),
        },
    ),
)
"""The devices of the demo estate."""

_INITIAL: Mapping[str, Mapping[str, Value]] = {
    "cap1": {"step_count": 12, "auto_mode": True},
    **{p.device: {"remote": True} for p in LAYOUT if p.profile == "booster_pump_vfd"},
}


# --- the estate -----------------------------------------------------------------------


class Estate:
    """The demo estate: devices on Modbus servers, driven by :class:`EstatePhysics`.

    ``ports`` maps a room to the TCP port to listen on (0 or missing: a free
    port; read :attr:`ports` after :meth:`start`). ``now`` is the start of
    the simulated time (default: the wall clock); ``tz`` the site's time
    zone (the daily curves use local time). ``clock`` times the ``slow``
    fault of the servers.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        tz: str = "Asia/Shanghai",
        now: datetime | None = None,
        clock: Clock | None = None,
        library: ProfileLibrary | None = None,
        max_substep_s: float = 5.0,
    ) -> None:
        unknown_rooms = sorted(set(ports or {}) - set(ROOMS))
        if unknown_rooms:
            raise ValueError(f"unknown rooms {unknown_rooms}; rooms: {', '.join(ROOMS)}")
        self.host = host
        self.tz = ZoneInfo(tz)
        self.library = library or ProfileLibrary([LIBRARY_DIR])
        self.placements = {p.device: p for p in LAYOUT}
        self.now = now or datetime.now(UTC)
        self.physics = EstatePhysics(self.tz, self.now, max_substep_s=max_substep_s)
        self.devices: dict[str, SimulatedDevice] = {}
        self._bits: dict[str, dict[str, str]] = {}  # device -> bit name -> bitfield point
        self.pins: dict[str, dict[str, Value]] = {}  # device -> point/bit -> pinned value
        for p in LAYOUT:
            profile = self.library.load(p.profile)
            initial = {**INPUTS.get(p.device, {}), **_INITIAL.get(p.device, {})}
            self.devices[p.device] = sim_device(profile, p.unit, overrides=initial)
            self._bits[p.device] = {
                bit: name for name, point in profile.points.items() for bit in (point.bits or {})
            }
        clock = clock or SystemClock()
        self.simulators = {
            room: ModbusSimulator(
                [self.devices[p.device] for p in LAYOUT if p.room == room],
                host,
                (ports or {}).get(room, 0),
                clock=clock,
                transport=spec.transport,
            )
            for room, spec in ROOMS.items()
        }
        self._write(self.physics.outputs())

    # --- serving -----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on every room's port; on failure nothing stays open."""
        started: list[ModbusSimulator] = []
        try:
            for sim in self.simulators.values():
                await sim.start()
                started.append(sim)
        except BaseException:
            for sim in started:
                await sim.stop()
            raise

    async def stop(self) -> None:
        for sim in self.simulators.values():
            await sim.stop()

    async def __aenter__(self) -> Estate:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def ports(self) -> dict[str, int]:
        """Room -> TCP port (after :meth:`start`)."""
        return {room: sim.port for room, sim in self.simulators.items()}

    def device(self, name: str) -> SimulatedDevice:
        try:
            return self.devices[name]
        except KeyError:
            known = ", ".join(self.devices)
            raise ControlError(f"no device {name!r} (devices: {known})") from None

    def faults(self, name: str) -> FaultControl:
        """The wire-fault switch of device ``name``."""
        return self.device(name).faults

    def locate(self, port: int, unit: int) -> str:
        """The device served as ``unit`` on ``port``."""
        for room, sim in self.simulators.items():
            with contextlib.suppress(SimulatorError):
                if sim.port == port:
                    for p in LAYOUT:
                        if p.room == room and p.unit == unit:
                            return p.device
                    raise ControlError(f"port {port} ({room}) serves no unit {unit}")
        raise ControlError(f"no room listens on port {port}")

    # --- physics -----------------------------------------------------------------------

    def step(self, dt: float, now: datetime) -> None:
        """Advance the physics by ``dt`` seconds to ``now`` and update every register."""
        inputs = {
            name: {point: self.read_point(name, point) for point in points}
            for name, points in INPUTS.items()
        }
        self._write(self.physics.step(dt, now, inputs))
        self.now = now

    async def run(self, clock: Clock, period: float = 1.0) -> None:
        """Step the physics every ``period`` seconds of ``clock`` until cancelled."""
        last = clock.monotonic()
        while True:
            await clock.sleep(period)
            t = clock.monotonic()
            self.step(t - last, clock.now())
            last = t

    def _write(self, outputs: Mapping[str, Mapping[str, Value]]) -> None:
        for name, values in outputs.items():
            device, bits, pins = self.devices[name], self._bits[name], self.pins.get(name, {})
            words: dict[str, dict[str, bool]] = {}
            for point, value in values.items():
                if point in pins:
                    continue
                owner = bits.get(point)
                if owner is not None:
                    words.setdefault(owner, {})[point] = bool(value)
                else:
                    device.set(point, value)
            for owner, word in words.items():
                device.set(owner, word)  # keeps the bits not named (e.g. pinned ones)

    # --- plant faults and pins ----------------------------------------------------------

    def trip_pump(self, name: str, code: int = 2) -> None:
        """The drive of pump ``name`` trips with ``code``; it stays out until reset."""
        self.physics.trip_pump(name, code)
        self._write(self.physics.outputs())

    def reset_pump(self, name: str) -> None:
        """Clear the trip (as pulsing the pump's ``fault_reset`` coil does)."""
        self.physics.reset_pump(name)
        self._write(self.physics.outputs())

    def overheat(self, name: str, celsius: float = 140.0) -> None:
        """Push transformer ``name``'s windings to about ``celsius`` and hold them there."""
        self.physics.overheat(name, celsius)
        self._write(self.physics.outputs())

    def cool(self, name: str) -> None:
        """End an overheat; the windings relax back with their thermal time constant."""
        self.physics.cool(name)

    def set_point(self, name: str, point: str, value: Value) -> None:
        """Set a point (or one bit of a bitfield) and pin it: the physics no longer writes it."""
        device = self.device(name)
        owner = self._bits[name].get(point)
        try:
            if owner is not None:
                device.set(owner, cast(Value, {point: value}))  # the codec checks the bit
            else:
                device.set(point, value)
        except EncodeError as exc:
            raise ControlError(f"{name}.{point}: {exc}") from None
        except SimulatorError as exc:
            raise ControlError(str(exc)) from None
        self.pins.setdefault(name, {})[point] = value

    def release(self, name: str, point: str | None = None) -> list[str]:
        """Unpin one point (or all of the device's); returns the names released.

        The physics writes a released point again from the next step; a point
        it does not drive (a DI channel, a sensor-fault bit) keeps its value.
        """
        self.device(name)
        pins = self.pins.get(name, {})
        names = [point] if point is not None else list(pins)
        for n in names:
            if n not in pins:
                raise ControlError(
                    f"{name}.{n} is not pinned (pinned: {', '.join(pins) or 'none'})"
                )
            del pins[n]
        self._write(self.physics.outputs())
        return names

    def read_point(self, name: str, point: str) -> Value:
        """A point's value as the registers hold it (a bit name reads its bit)."""
        device = self.device(name)
        owner = self._bits[name].get(point)
        try:
            if owner is not None:
                word = device.get(owner)
                assert isinstance(word, dict)
                return word[point]
            return device.get(point)
        except SimulatorError as exc:
            raise ControlError(str(exc)) from None

    # --- site file ---------------------------------------------------------------------

    def driver_block(
        self, driver_id: str = "estate-modbus", host: str | None = None
    ) -> dict[str, Any]:
        """The ``type: modbus`` driver block reading this estate (after :meth:`start`)."""
        connections = []
        for room, spec in ROOMS.items():
            devices: list[dict[str, Any]] = []
            for p in LAYOUT:
                if p.room != room:
                    continue
                entry: dict[str, Any] = {"device": p.device, "unit": p.unit, "profile": p.profile}
                if p.params:
                    entry["params"] = dict(p.params)
                if p.points:
                    entry["points"] = {k: dict(v) for k, v in p.points.items()}
                devices.append(entry)
            connections.append(
                {
                    "id": room.replace("_", "-"),
                    "transport": spec.transport,
                    "host": host or self.host,
                    "port": self.simulators[room].port,
                    "timeout_s": 1.0,
                    "devices": devices,
                }
            )
        return {"type": "modbus", "id": driver_id, "connections": connections}

    def device_entries(self) -> list[dict[str, Any]]:
        """The ``devices:`` entries of the site file for this estate."""
        entries = []
        for p in LAYOUT:
            kind = self.library.load(p.profile).kind.value
            location = ROOMS[p.room].title
            entries.append({"id": p.device, "kind": kind, "name": p.name, "location": location})
        return entries

    def site_fragment(self, driver_id: str = "estate-modbus") -> str:
        """YAML with ``devices:`` and ``drivers:`` for a site file (merge it or include it)."""
        tree = {"devices": self.device_entries(), "drivers": [self.driver_block(driver_id)]}
        return yaml.safe_dump(tree, allow_unicode=True, sort_keys=False, width=100)

    # --- control commands ----------------------------------------------------------------

    def command(self, line: str) -> dict[str, Any]:
        """Execute one control line (see :data:`COMMANDS`); raises :class:`ControlError`."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise ControlError(f"cannot parse {line!r}: {exc}") from None
        if not words:
            raise ControlError("empty command; try 'help'")
        if words[0] == "help":
            return {"commands": COMMANDS}
        if words[0] == "status":
            return self.status()
        if len(words) < 2:
            raise ControlError(f"{line!r}: expected TARGET ACTION [ARGS]; try 'help'")
        name = self._target(words[0])
        action, args = words[1], words[2:]
        try:
            return self._act(name, action, args)
        except (InvalidFaultError, PhysicsError) as exc:
            raise ControlError(str(exc)) from None

    def _target(self, word: str) -> str:
        if "/" in word:
            port, _, unit = word.partition("/")
            if not (port.isdigit() and unit.isdigit()):
                raise ControlError(f"target {word!r}: expected PORT/UNIT or a device name")
            return self.locate(int(port), int(unit))
        self.device(word)
        return word

    def _act(self, name: str, action: str, args: list[str]) -> dict[str, Any]:
        faults = self.faults(name)
        done: dict[str, Any] = {"device": name, "action": action}
        if action in ("silent", "garbage", "clear", "reset", "cool") and args:
            raise ControlError(f"{action} takes no arguments")
        if action == "silent":
            faults.silent()
        elif action == "garbage":
            faults.garbage()
        elif action == "clear":
            faults.clear()
        elif action == "exception":
            faults.exception(_int_arg(args, "exception CODE"))
        elif action == "slow":
            faults.slow(_float_arg(args, "slow SECONDS"))
        elif action == "trip":
            self.trip_pump(name, _int_arg(args, "trip [CODE]") if args else 2)
        elif action == "reset":
            self.reset_pump(name)
        elif action == "overheat":
            self.overheat(name, _float_arg(args, "overheat [CELSIUS]") if args else 140.0)
        elif action == "cool":
            self.cool(name)
        elif action == "set":
            if len(args) != 2:
                raise ControlError("usage: TARGET set POINT VALUE")
            self.set_point(name, args[0], _parse_value(args[1]))
            done["value"] = self.read_point(name, args[0])
        elif action == "release":
            if len(args) > 1:
                raise ControlError("usage: TARGET release [POINT]")
            done["released"] = self.release(name, args[0] if args else None)
        elif action == "get":
            if len(args) != 1:
                raise ControlError("usage: TARGET get POINT")
            done["value"] = self.read_point(name, args[0])
        else:
            raise ControlError(f"unknown action {action!r}; try 'help'")
        done["fault"] = faults.current.kind.value
        return done

    def status(self) -> dict[str, Any]:
        rooms: dict[str, Any] = {}
        for room, sim in self.simulators.items():
            port: int | None
            try:
                port = sim.port
            except SimulatorError:
                port = None
            units = {str(p.unit): p.device for p in LAYOUT if p.room == room}
            rooms[room] = {"port": port, "transport": ROOMS[room].transport, "units": units}
        faults = {
            name: d.faults.current.kind.value
            for name, d in self.devices.items()
            if d.faults.current.kind.value != "none"
        }
        pins = {name: dict(p) for name, p in self.pins.items() if p}
        now = self.now.astimezone(self.tz).isoformat()
        return {"now": now, "rooms": rooms, "faults": faults, "pins": pins}


COMMANDS = [
    "help | status",
    "TARGET silent | garbage | clear | exception CODE | slow SECONDS   (wire faults)",
    "TARGET trip [CODE] | reset            (pumps: the drive trips / is reset)",
    "TARGET overheat [CELSIUS] | cool      (transformers)",
    "TARGET set POINT VALUE | release [POINT] | get POINT   (pin a point or bit; unpin)",
    "TARGET is a device name (pump1) or PORT/UNIT (5021/1)",
]
"""The control commands, one per line."""


def _int_arg(args: Sequence[str], usage: str) -> int:
    if len(args) != 1:
        raise ControlError(f"usage: TARGET {usage}")
    try:
        return int(args[0])
    except ValueError:
        raise ControlError(f"{usage}: {args[0]!r} is not an integer") from None


def _float_arg(args: Sequence[str], usage: str) -> float:
    if len(args) != 1:
        raise ControlError(f"usage: TARGET {usage}")
    try:
        return float(args[0])
    except ValueError:
        raise ControlError(f"{usage}: {args[0]!r} is not a number") from None


def _parse_value(text: str) -> Value:
    lowered = text.lower()
    if lowered in ("true", "on"):
        return True
    if lowered in ("false", "off"):
        return False
    for convert in (int, float):
        with contextlib.suppress(ValueError):
            return convert(text)
    return text


# --- control server and client ----------------------------------------------------------


class ControlServer:
    """Text commands for an :class:`Estate` on a TCP port of 127.0.0.1, one per line."""

    def __init__(self, estate: Estate, host: str = "127.0.0.1", port: int = 0) -> None:
        self.estate = estate
        self.host = host
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the control server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self._requested_port)

    async def stop(self) -> None:
        """Stop listening and hang up on the clients still connected."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for writer in list(self._clients):
                writer.close()
            await server.wait_closed()

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                try:
                    raw = await reader.readline()
                except (ValueError, ConnectionError):  # line too long, peer gone
                    break
                if not raw:
                    break
                writer.write(json.dumps(self.answer(raw), ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._clients.discard(writer)
            writer.close()  # not awaited: the peer may be gone; the transport closes itself

    def answer(self, raw: bytes) -> dict[str, Any]:
        """The JSON answer to one raw line: ``{"ok": true, ...}`` or ``{"ok": false, "error"}``."""
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return {"ok": False, "error": "the command is not UTF-8"}
        try:
            return {"ok": True, **self.estate.command(line)}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}


def send_command(
    port: int, line: str, host: str = "127.0.0.1", timeout: float = 5.0
) -> dict[str, Any]:
    """Send one command to a running estate's control port; returns its JSON answer."""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(line.encode("utf-8") + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise ConnectionError(f"the estate on port {port} closed the connection without answering")
    answer: dict[str, Any] = json.loads(data)
    return answer


# --- CLI -----------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    clock = SystemClock()
    ports = {"power_room": args.power_room_port, "pump_room": args.pump_room_port}
    estate = Estate(host=args.host, ports=ports, tz=args.timezone, clock=clock)
    async with estate, ControlServer(estate, port=args.control_port) as control:
        fragment = estate.site_fragment()
        if args.fragment_out:
            out = Path(args.fragment_out)
            await asyncio.to_thread(out.write_text, fragment, encoding="utf-8")
        for room, port in estate.ports.items():
            print(f"{ROOMS[room].title} ({room}): {ROOMS[room].transport} on {args.host}:{port}")
        print(
            f"control: 127.0.0.1:{control.port} (python -m drivers.modbus.estate inject "
            f"--control {control.port} --device pump1 trip)"
        )
        print("--- site fragment ---")
        print(fragment, flush=True)
        await estate.run(clock)


def _inject(args: argparse.Namespace) -> int:
    if args.device and args.port is not None:
        print("give --device or --port/--unit, not both", file=sys.stderr)
        return 2
    if (args.port is None) != (args.unit is None):
        print("--port and --unit go together", file=sys.stderr)
        return 2
    target = args.device or (f"{args.port}/{args.unit}" if args.port is not None else "")
    line = shlex.join([target, *args.action] if target else args.action)
    try:
        answer = send_command(args.control, line, args.control_host)
    except OSError as exc:
        print(f"cannot reach the estate on port {args.control}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0 if answer.get("ok") else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    parser = argparse.ArgumentParser(
        prog="python -m drivers.modbus.estate", description="The simulated estate of the demo."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the estate until Ctrl-C (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--power-room-port", type=int, default=5020, help="0: a free port")
    serve.add_argument("--pump-room-port", type=int, default=5021, help="0: a free port")
    serve.add_argument("--control-port", type=int, default=5029, help="0: a free port")
    serve.add_argument("--timezone", default="Asia/Shanghai")
    serve.add_argument("--fragment-out", help="also write the site fragment to this file")
    inject = sub.add_parser("inject", help="send one command to a running estate")
    inject.add_argument("--control", type=int, default=5029, help="the estate's control port")
    inject.add_argument("--control-host", default="127.0.0.1")
    inject.add_argument("--device", help="device name, e.g. pump1")
    inject.add_argument("--port", type=int, help="Modbus port of the device's room")
    inject.add_argument("--unit", type=int, help="unit id on that port")
    inject.add_argument("action", nargs="+", help="e.g. silent | exception 6 | trip | set POINT V")
    args = parser.parse_args(argv)
    if args.command == "inject":
        return _inject(args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
