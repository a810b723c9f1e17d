"""Config models of the Modbus driver (``type: modbus``).

One driver block holds connections (a TCP socket, a serial line, or a
serial device server spoken to in RTU over TCP); each connection holds the
devices (unit ids) behind it; each device takes its register map from a
profile (``config/profiles/<name>.yaml``), from its own ``points:``, or
both (the device's points add to and replace the profile's).

Everything a poll needs is checked here, at load time: which options each
data type allows (the :class:`~drivers.modbus.datatypes.ValueSpec` check),
that a point's type fits its table, that it can be planned within the
request limits, that names do not collide (bit names and derived points
share the device's point namespace), that derived points name existing
inputs, and that profile limits refer to existing points.

Profiles are found through the validation context (``base_dir``: the site
file's directory, given by the loader): ``profiles_dir`` relative to it,
then the library shipped in ``config/profiles/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from drivers.modbus.datatypes import ByteOrder, DataType, SpecError, ValueSpec, order_for_register
from drivers.modbus.derived import DerivedSpec, resolve_rating
from drivers.modbus.planner import Plan, PlanError, PlanLimits, PlanPoint, Table, build_plan
from gateway.driver import DriverConfig, PointSpec, RuleSpec, StrictModel
from gateway.model import Priority

if TYPE_CHECKING:
    from drivers.modbus.profiles import ProfileLibrary

__all__ = [
    "DeviceWorkarounds",
    "LimitConfig",
    "LimitOverride",
    "LinkWorkarounds",
    "ModbusConnectionConfig",
    "ModbusDeviceConfig",
    "ModbusDriverConfig",
    "ModbusPointConfig",
    "ResolvedDevice",
    "WriteConfig",
]

_ID = r"^[A-Za-z0-9_-]+$"
_NAME = r"^[a-z][a-z0-9_]*$"
_MULTI = frozenset(
    {
        DataType.INT32,
        DataType.UINT32,
        DataType.FLOAT32,
        DataType.INT64,
        DataType.UINT64,
        DataType.FLOAT64,
    }
)
_WRITABLE_TABLES = (Table.HOLDING, Table.COIL)


class WriteConfig(StrictModel):
    """A point that commands may write (start a pump, reset an alarm, switch a relay)."""

    roles: list[str] = Field(
        min_length=1,
        description="Roles allowed to write, e.g. [engineer, supervisor]; anyone else is refused.",
    )
    min: float | None = Field(None, description="Smallest value accepted (numbers only).")
    max: float | None = Field(None, description="Largest value accepted (numbers only).")
    confirm_timeout_s: float = Field(
        3.0, gt=0, description="How long the read-back may take to show the written value."
    )
    pulse_s: float | None = Field(
        None,
        gt=0,
        description="Write the value, then the opposite (bool) after this many seconds: "
        "a momentary contact such as 'reset alarm'.",
    )

    @model_validator(mode="after")
    def _range(self) -> WriteConfig:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"write.min ({self.min}) is above write.max ({self.max})")
        return self


class ModbusPointConfig(StrictModel):
    """Where one point lives in the device and how its registers become a value."""

    table: Table = Field(
        Table.HOLDING, description="holding, input (registers), coil or discrete (bits)."
    )
    address: int = Field(ge=0, le=65535, description="0-based address (register 40001 is 0).")
    type: DataType | None = Field(
        None,
        description="int16, uint16, int32, uint32, int64, uint64, float32, float64, string, "
        "bit, bitfield, enum (registers) or bool (coils and discrete inputs). "
        "Default: uint16 in registers, bool in bits.",
    )
    order: ByteOrder | None = Field(
        None,
        description="Byte/word order: ABCD (default), CDAB, BADC, DCBA for multi-register "
        "types; AB or BA for one register. Default: the device's order.",
    )
    scale: float | None = Field(None, description="Value = raw * scale + offset.")
    offset: float | None = Field(None, description="Added after scale.")
    precision: int | None = Field(None, description="Round to this many decimals.")
    length: int | None = Field(None, description="string: number of registers.")
    encoding: str | None = Field(None, description="string: ascii (default) or utf-8.")
    bit: int | None = Field(None, description="bit: index 0 (least significant) to 15.")
    bits: dict[str, int] | None = Field(
        None,
        description="bitfield: point name -> bit index; each bit becomes a point of its own.",
    )
    labels: dict[int, str] | None = Field(None, description="enum: raw value -> label.")
    unit: str = Field("", description="Engineering unit, e.g. '°C', 'kW'.")
    description: str = Field("", description="What the point measures.")
    deadband: float | None = Field(
        None, ge=0, description="Report by exception: ignore smaller changes."
    )
    heartbeat_s: float | None = Field(
        None, gt=0, description="Write an unchanged value at least this often (seconds)."
    )
    interval_s: float | None = Field(
        None, gt=0, description="Poll interval of this point; default: the device's."
    )
    write: WriteConfig | None = Field(None, description="Allow commands to write this point.")

    _spec: ValueSpec | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self) -> ModbusPointConfig:
        if self.type is not None and (self.type is DataType.BOOL) != self.table.is_bit:
            raise ValueError(
                f"type {self.type} does not fit table {self.table}: coil and discrete points "
                "are bool; holding and input points are any other type"
            )
        self._spec = self.value_spec(None)
        if self.write is not None:
            if self.table not in _WRITABLE_TABLES:
                raise ValueError(
                    f"a {self.table} point cannot be written; only holding registers and coils"
                )
            if self.spec.type in (DataType.STRING, DataType.BITFIELD) and self.write.pulse_s:
                raise ValueError("write.pulse_s needs a bool, bit or number point")
        return self

    def value_spec(self, device_order: ByteOrder | None) -> ValueSpec:
        """The codec spec, with the device-wide order applied when the point has none."""
        kind = self.type or (DataType.BOOL if self.table.is_bit else DataType.UINT16)
        order = self.order
        try:
            if order is None and device_order is not None and kind is not DataType.BOOL:
                order = device_order if kind in _MULTI else order_for_register(device_order)
            return ValueSpec(
                kind,
                order=order,
                scale=self.scale,
                offset=self.offset,
                precision=self.precision,
                length=self.length,
                encoding=self.encoding,
                bit=self.bit,
                bits=self.bits,
                labels=self.labels,
            )
        except SpecError as exc:
            raise ValueError(str(exc)) from None

    @property
    def spec(self) -> ValueSpec:
        assert self._spec is not None
        return self._spec

    def names(self, name: str) -> list[str]:
        """The point names this entry produces: the bit names of a bitfield, else itself."""
        return list(self.bits) if self.bits and self.spec.type is DataType.BITFIELD else [name]


class LimitConfig(StrictModel):
    """A default alarm limit shipped with a profile (evaluated by the alarm engine)."""

    point: str = Field(description="Point of the device watched (a derived point too).")
    high: float | None = Field(None, description="Alarm at or above this value.")
    low: float | None = Field(None, description="Alarm at or below this value.")
    priority: Priority = Field(Priority.MEDIUM, description="critical, high, medium or low.")
    description: str = Field("", description="What the alarm means, for the operator.")

    @model_validator(mode="after")
    def _bounds(self) -> LimitConfig:
        if self.high is None and self.low is None:
            raise ValueError("a limit needs high, low or both")
        if self.high is not None and self.low is not None and self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class LimitOverride(StrictModel):
    """A site's change to one of a profile's limits."""

    enabled: bool = Field(True, description="false drops the limit for this device.")
    high: float | None = Field(None, description="New high limit.")
    low: float | None = Field(None, description="New low limit.")
    priority: Priority | None = Field(None, description="New priority.")


class DeviceWorkarounds(StrictModel):
    read_coils_from_zero: bool = Field(
        False, description="The device answers coil reads only when they start at address 0."
    )
    max_registers: int = Field(
        125, ge=1, le=125, description="Largest register read the device accepts."
    )
    max_bits: int = Field(2000, ge=1, le=2000, description="Largest coil/discrete read.")


class LinkWorkarounds(StrictModel):
    pause_after_connect_s: float = Field(
        0, ge=0, description="Wait this long after opening the connection before the first request."
    )
    close_after_cycle: bool = Field(
        False,
        description="Close the connection after each poll cycle (devices that hang otherwise).",
    )
    close_after_timeouts: int = Field(
        3, ge=1, description="Reopen the connection after this many timeouts in a row."
    )


class ModbusDeviceConfig(StrictModel):
    device: str = Field(description="Device id from 'devices:'.", pattern=_ID)
    unit: int = Field(1, ge=0, le=255, description="Modbus unit id (slave id).")
    profile: str | None = Field(
        None, description="Name of a register map in config/profiles/ (without .yaml)."
    )
    interval_s: float = Field(1.0, gt=0, description="Poll interval of the device's points.")
    order: ByteOrder | None = Field(
        None, description="Default byte/word order of the device's points."
    )
    params: dict[str, float] = Field(
        default_factory=dict,
        description="Device parameters the profile asks for, e.g. rated_current_a: 1443.",
    )
    points: dict[str, ModbusPointConfig] = Field(
        default_factory=dict, description="Points, added to (or replacing) the profile's."
    )
    derived: dict[str, DerivedSpec] = Field(
        default_factory=dict,
        description="Points computed in the gateway from this device's points.",
    )
    limits: dict[str, LimitOverride] = Field(
        default_factory=dict, description="Changes to the profile's default alarm limits, by name."
    )
    max_gap_registers: int = Field(
        8,
        ge=0,
        le=125,
        description="Read across up to this many unused registers to save a request.",
    )
    max_gap_bits: int = Field(16, ge=0, le=2000, description="The same for coils/discrete inputs.")
    workarounds: DeviceWorkarounds = Field(
        default_factory=DeviceWorkarounds, description="Quirks of this device."
    )

    @field_validator("points", "derived")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not re.match(_NAME, name):
                raise ValueError(
                    f"point name {name!r}: use lower-case letters, digits and '_', "
                    "starting with a letter"
                )
        return v


class ModbusConnectionConfig(StrictModel):
    id: str | None = Field(
        None,
        description="Name in logs and health; default host:port or the serial port.",
        pattern=_ID,
    )
    transport: Literal["tcp", "rtu", "rtu_over_tcp"] = Field(
        "tcp", description="tcp (Modbus TCP), rtu (serial line), rtu_over_tcp (serial server)."
    )
    host: str | None = Field(None, description="tcp, rtu_over_tcp: host name or IP address.")
    port: int | None = Field(None, ge=1, le=65535, description="tcp, rtu_over_tcp: TCP port (502).")
    serial_port: str | None = Field(None, description="rtu: serial device, e.g. /dev/ttyUSB0.")
    baudrate: int = Field(9600, gt=0, description="rtu: bits per second.")
    parity: Literal["N", "E", "O"] = Field("N", description="rtu: N, E or O.")
    stopbits: Literal[1, 2] = Field(1, description="rtu: 1 or 2.")
    bytesize: Literal[7, 8] = Field(8, description="rtu: 7 or 8.")
    timeout_s: float = Field(1.0, gt=0, description="Wait this long for each answer.")
    retries: int = Field(1, ge=0, le=5, description="Extra attempts after a timeout or garbage.")
    pause_s: float | None = Field(
        None,
        ge=0,
        description="Quiet time between two requests; default 0 on TCP, 3.5 character "
        "times (at least 2 ms) on a serial line.",
    )
    workarounds: LinkWorkarounds = Field(
        default_factory=LinkWorkarounds, description="Quirks of the connection."
    )
    devices: list[ModbusDeviceConfig] = Field(min_length=1, description="Devices behind it.")

    @model_validator(mode="after")
    def _endpoint(self) -> ModbusConnectionConfig:
        if self.transport == "rtu":
            if not self.serial_port:
                raise ValueError("transport rtu needs serial_port (e.g. /dev/ttyUSB0)")
            if self.host is not None or self.port is not None:
                raise ValueError("transport rtu uses serial_port, not host/port")
        else:
            if not self.host:
                raise ValueError(f"transport {self.transport} needs host")
            if self.serial_port is not None:
                raise ValueError(f"transport {self.transport} uses host/port, not serial_port")
        units: dict[int, str] = {}
        for d in self.devices:
            if d.unit in units:
                raise ValueError(
                    f"unit {d.unit} is used by both {units[d.unit]} and {d.device} "
                    "on one connection"
                )
            units[d.unit] = d.device
        return self

    @property
    def name(self) -> str:
        if self.id:
            return self.id
        if self.transport == "rtu":
            return str(self.serial_port)
        return f"{self.host}:{self.effective_port}"

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else 502

    @property
    def effective_pause_s(self) -> float:
        if self.pause_s is not None:
            return self.pause_s
        if self.transport == "tcp":
            return 0.0
        # 3.5 characters of 11 bits; the spec fixes 1.75 ms above 19200 baud.
        return max(0.002, 3.5 * 11 / self.baudrate)


@dataclass(frozen=True)
class ResolvedDevice:
    """A device with its profile merged in: what the driver polls."""

    device: str
    unit: int
    profile: str | None
    points: Mapping[str, ModbusPointConfig]
    specs: Mapping[str, ValueSpec]  # by point entry name, device order applied
    derived: Mapping[str, DerivedSpec]
    params: Mapping[str, float]
    limits: Mapping[str, LimitConfig]  # effective: profile defaults with the site's overrides
    plan: Plan  # the reads that poll it, planned once at load time

    def output_names(self) -> list[str]:
        """Every point name the device publishes (bit names, then derived)."""
        out: list[str] = []
        for name, p in self.points.items():
            out.extend(p.names(name))
        out.extend(self.derived)
        return out


class ModbusDriverConfig(DriverConfig):
    type: Literal["modbus"] = Field(description="Reads devices over Modbus TCP or RTU.")
    profiles_dir: str = Field(
        "profiles",
        description="Where site-specific profiles live, relative to the site file; "
        "the shipped library (config/profiles/) is searched after it.",
    )
    connections: list[ModbusConnectionConfig] = Field(
        min_length=1, description="Connections (TCP, serial line or serial server)."
    )
    offline_min_s: float = Field(
        1.0, gt=0, description="First wait before probing a device that stopped answering."
    )
    offline_max_s: float = Field(60.0, gt=0, description="Longest wait between probes.")
    state_flush_s: float = Field(
        10.0, gt=0, description="Save run-hours, start counts and energy baselines this often."
    )

    _resolved: tuple[ResolvedDevice, ...] = PrivateAttr(())

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> ModbusDriverConfig:
        from drivers.modbus.profiles import ProfileLibrary

        if self.offline_min_s > self.offline_max_s:
            raise ValueError("offline_min_s must not exceed offline_max_s")
        base = (info.context or {}).get("base_dir") if info.context else None
        library = ProfileLibrary.for_site(Path(base) if base else None, self.profiles_dir)
        seen: dict[str, str] = {}
        resolved: list[ResolvedDevice] = []
        problems: list[str] = []
        for ci, conn in enumerate(self.connections):
            for di, dev in enumerate(conn.devices):
                where = f"connections[{ci}].devices[{di}] ({dev.device})"
                if dev.device in seen:
                    problems.append(f"{where}: device is also polled by {seen[dev.device]}")
                    continue
                seen[dev.device] = where
                try:
                    resolved.append(_resolve_device(dev, library))
                except ValueError as exc:
                    problems.append(f"{where}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        self._resolved = tuple(resolved)
        return self

    @property
    def resolved(self) -> tuple[ResolvedDevice, ...]:
        return self._resolved

    def devices(self) -> Iterable[str]:
        return [d.device for c in self.connections for d in c.devices]

    def points(self) -> Iterable[PointSpec]:
        for dev in self._resolved:
            for name, p in dev.points.items():
                for out in p.names(name):
                    yield PointSpec(
                        device=dev.device,
                        name=out,
                        unit=p.unit if out == name else "",
                        deadband=p.deadband or 0.0,
                        heartbeat=p.heartbeat_s,
                        description=p.description,
                    )
            for name, d in dev.derived.items():
                yield PointSpec(
                    device=dev.device,
                    name=name,
                    unit=d.unit,
                    deadband=d.deadband or 0.0,
                    heartbeat=d.heartbeat_s,
                    description=d.description,
                )

    def rules(self) -> Iterable[RuleSpec]:
        for dev in self._resolved:
            for name, limit in dev.limits.items():
                yield RuleSpec(
                    id=f"{dev.device}-{name}",
                    point=f"{dev.device}.{limit.point}",
                    high=limit.high,
                    low=limit.low,
                    priority=limit.priority,
                    description=limit.description,
                    origin=f"profile {dev.profile}" if dev.profile else "",
                )


def _resolve_device(dev: ModbusDeviceConfig, library: ProfileLibrary) -> ResolvedDevice:
    profile = library.load(dev.profile) if dev.profile else None
    points: dict[str, ModbusPointConfig] = dict(profile.points) if profile else {}
    points.update(dev.points)
    if not points:
        raise ValueError("no points: give a profile or points")
    order = dev.order or (profile.order if profile else None)
    specs = {name: p.value_spec(order) for name, p in points.items()}
    derived: dict[str, DerivedSpec] = dict(profile.derived) if profile else {}
    derived.update(dev.derived)
    params = {**(profile.defaults() if profile else {}), **dev.params}

    names: dict[str, str] = {}
    for name, p in points.items():
        for out in p.names(name):
            if out in names:
                raise ValueError(f"point name {out!r} is produced twice ({names[out]} and {name})")
            names[out] = name
    for name, d in derived.items():
        if name in names:
            raise ValueError(f"derived point {name!r} has the name of a read point")
        for source in d.inputs:
            if source not in names:
                raise ValueError(
                    f"derived point {name!r}: input {source!r} is not a point of the device"
                )
        resolve_rating(d, params)  # raises naming the missing parameter
        names[name] = "derived"

    limits: dict[str, LimitConfig] = dict(profile.limits) if profile else {}
    for name, override in dev.limits.items():
        if name not in limits:
            known = ", ".join(sorted(limits)) or "none"
            raise ValueError(f"limits: {name!r} is not a limit of the profile (it has: {known})")
        if not override.enabled:
            del limits[name]
            continue
        base = limits[name]
        limits[name] = LimitConfig(
            point=base.point,
            high=override.high if override.high is not None else base.high,
            low=override.low if override.low is not None else base.low,
            priority=override.priority or base.priority,
            description=base.description,
        )
    for name, limit in limits.items():
        if limit.point not in names:
            raise ValueError(f"limit {name!r} watches {limit.point!r}, not a point of the device")

    plan_limits = PlanLimits(
        max_registers=dev.workarounds.max_registers,
        max_bits=dev.workarounds.max_bits,
        max_gap_registers=min(dev.max_gap_registers, dev.workarounds.max_registers),
        max_gap_bits=min(dev.max_gap_bits, dev.workarounds.max_bits),
        read_coils_from_zero=dev.workarounds.read_coils_from_zero,
    )
    plan_points = [
        PlanPoint(name, p.table, p.address, specs[name].count, p.interval_s or dev.interval_s)
        for name, p in points.items()
    ]
    try:
        plan = build_plan(plan_points, plan_limits)
    except PlanError as exc:
        raise ValueError(str(exc)) from None
    return ResolvedDevice(
        device=dev.device,
        unit=dev.unit,
        profile=dev.profile,
        points=points,
        specs=specs,
        derived=derived,
        params=params,
        limits=limits,
        plan=plan,
    )
