"""Write commands: start/stop a pump, reset a controller alarm, switch a relay.

A :class:`~gateway.model.Command` ``write`` (``args: {point, value}``)
addressed to a Modbus device is executed here, in this order:

1. the point must exist and be declared writable (``write:`` in its map);
2. the command's ``role`` must be one the point's ``write.roles`` allows
   (the API sets ``user``/``role`` from the session; a command with no role
   is refused, so nothing on the bus writes anonymously);
3. the value must encode for the point and lie within ``write.min``/``max``;
4. the registers (or coil) are written; a ``bit`` point is read first and
   only its bit is changed (read-modify-write);
5. the point is read back until it shows the value or
   ``write.confirm_timeout_s`` passes (some devices take a cycle to apply
   it); ``pulse_s`` writes the opposite state after that many seconds.

Every command, refused or done, leaves one audit event ``command.write``
(who, role, origin, device, point, requested value, previous value, read
back value, result and reason). The recorder stores events in the event
store, so the audit trail survives restarts. Results: ``confirmed``,
``unconfirmed`` (written, but the read-back did not show it in time),
``refused`` (validation or role) and ``failed`` (the device did not answer
or answered an exception).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from drivers.modbus.codec import decode, encode
from drivers.modbus.config import ModbusPointConfig, ResolvedDevice
from drivers.modbus.datatypes import DataType, EncodeError, ValueSpec
from drivers.modbus.device_values import DeviceValues
from drivers.modbus.link import LinkError, ModbusLink
from drivers.modbus.planner import Table
from gateway.driver import DriverContext
from gateway.model import Command, Event, Reading, Value

__all__ = ["CONFIRM_POLL_S", "DeviceWriter", "WriteOutcome"]

CONFIRM_POLL_S = 0.2  # read-back interval while waiting for confirmation


class WriteOutcome:
    CONFIRMED = "confirmed"
    UNCONFIRMED = "unconfirmed"
    REFUSED = "refused"
    FAILED = "failed"


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DeviceWriter:
    """Executes the write commands of one device."""

    def __init__(
        self,
        device: ResolvedDevice,
        link: ModbusLink,
        values: DeviceValues,
        ctx: DriverContext,
        *,
        driver: str = "modbus",
    ) -> None:
        self.device = device
        self.link = link
        self.values = values
        self.ctx = ctx
        self.driver = driver

    async def execute(self, command: Command) -> Event:
        """Run one command; returns (and emits) its audit event."""
        data: dict[str, Any] = {
            "command_id": command.id,
            "action": command.action,
            "user": command.user,
            "role": command.role,
            "origin": command.origin,
            "driver": self.driver,
            "point": command.args.get("point"),
            "value": command.args.get("value"),
        }
        try:
            name, point, value = self._check(command)
            spec = self.device.specs[name]
            previous, registers = await self._prepare(point, spec, value)
            data["previous"] = previous
            await self.link.write(point.table, point.address, registers, self.device.unit)
            readback = await self._confirm(point, spec, value)
            data["readback"] = readback
            data["result"] = (
                WriteOutcome.CONFIRMED if _same(readback, value, spec) else WriteOutcome.UNCONFIRMED
            )
            if readback is not None:
                await self.ctx.emit(
                    Reading(f"{self.device.device}.{name}", readback, self.ctx.clock.time_ns())
                )
            assert point.write is not None
            if point.write.pulse_s and isinstance(value, bool):
                await self.ctx.clock.sleep(point.write.pulse_s)
                _, back = await self._prepare(point, spec, not value)
                await self.link.write(point.table, point.address, back, self.device.unit)
                data["pulse_s"] = point.write.pulse_s
        except _Refused as exc:
            data.update(result=WriteOutcome.REFUSED, reason=exc.reason, error=str(exc))
        except LinkError as exc:
            data.update(result=WriteOutcome.FAILED, reason=type(exc).__name__, error=str(exc))
        event = Event("command.write", self.device.device, self.ctx.clock.time_ns(), data)
        level = logging.INFO if data["result"] == WriteOutcome.CONFIRMED else logging.WARNING
        self.ctx.log.log(
            level,
            "write %s.%s = %r by %s (%s): %s %s",
            self.device.device,
            data["point"],
            data["value"],
            command.user or "?",
            command.role or "no role",
            data["result"],
            data.get("error", ""),
        )
        await self.ctx.emit(event)
        return event

    def _check(self, command: Command) -> tuple[str, ModbusPointConfig, Value]:
        if command.action != "write":
            raise _Refused("unknown_action", f"action {command.action!r}: only 'write' is known")
        name = command.args.get("point")
        if not isinstance(name, str) or name not in self.device.points:
            raise _Refused("unknown_point", f"{self.device.device} has no point {name!r}")
        point = self.device.points[name]
        if point.write is None:
            raise _Refused("not_writable", f"point {name!r} is read-only")
        if not command.role or command.role not in point.write.roles:
            allowed = ", ".join(point.write.roles)
            raise _Refused(
                "role_not_allowed",
                f"role {command.role or '(none)'!r} may not write {name!r} (allowed: {allowed})",
            )
        if "value" not in command.args:
            raise _Refused("bad_value", "args.value is missing")
        value = command.args["value"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = point.write.min, point.write.max
            if (low is not None and value < low) or (high is not None and value > high):
                raise _Refused("out_of_range", f"{value} is outside {low}..{high}")
        if not isinstance(value, bool | int | float | str):
            raise _Refused("bad_value", f"value {value!r} is not a number, bool or text")
        return name, point, value

    async def _prepare(
        self, point: ModbusPointConfig, spec: ValueSpec, value: Value
    ) -> tuple[Value | None, list[int] | list[bool]]:
        """(previous value, what to write). Bits of a register are read-modify-write."""
        if point.table is Table.COIL:
            current = await self.link.read(Table.COIL, point.address, 1, self.device.unit)
            if not isinstance(value, bool | int) or (
                isinstance(value, int) and value not in (0, 1)
            ):
                raise _Refused("bad_value", f"a coil takes true/false, got {value!r}")
            return bool(current[0]), [bool(value)]
        current = await self.link.read(point.table, point.address, spec.count, self.device.unit)
        words = [int(v) for v in current]
        previous = _decoded(words, spec)
        try:
            registers = encode(value, spec, base=words[0] if spec.count == 1 else 0)
        except EncodeError as exc:
            raise _Refused("bad_value", str(exc)) from None
        return previous, registers

    async def _confirm(
        self, point: ModbusPointConfig, spec: ValueSpec, value: Value
    ) -> Value | None:
        assert point.write is not None
        clock = self.ctx.clock
        deadline = clock.monotonic() + point.write.confirm_timeout_s
        readback: Value | None = None
        while True:
            raw = await self.link.read(point.table, point.address, spec.count, self.device.unit)
            readback = bool(raw[0]) if point.table.is_bit else _decoded([int(v) for v in raw], spec)
            if _same(readback, value, spec) or clock.monotonic() >= deadline:
                return readback
            await clock.sleep(CONFIRM_POLL_S)


def _decoded(words: list[int], spec: ValueSpec) -> Value | None:
    value = decode(words, spec)
    return None if isinstance(value, dict) else value


def _same(readback: Value | None, wanted: Value, spec: ValueSpec) -> bool:
    if readback is None:
        return False
    if isinstance(readback, bool) or isinstance(wanted, bool):
        return bool(readback) == bool(wanted)
    if isinstance(readback, int | float) and isinstance(wanted, int | float):
        scale = abs(spec.scale or 1.0)
        if spec.type in (DataType.FLOAT32, DataType.FLOAT64):
            tolerance = max(abs(float(wanted)) * 1e-6, 1e-9) * scale
        else:
            tolerance = scale / 2  # half a raw step
        if spec.precision is not None:
            tolerance = max(tolerance, 0.5 * 10**-spec.precision)
        return math.isclose(float(readback), float(wanted), abs_tol=tolerance + 1e-12)
    return str(readback) == str(wanted)
