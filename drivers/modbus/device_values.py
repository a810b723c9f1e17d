"""Turn the answer to one planned read into readings (and derived readings).

For every point a request serves, its slice of the answer is decoded with the
point's :class:`~drivers.modbus.datatypes.ValueSpec`:

- a number, string, bit or enum becomes one :class:`~gateway.model.Reading`
  named ``<device>.<point>``; NaN/infinity and an enum code missing from the
  table are ``UNCERTAIN`` (the codec's :func:`decode_with_quality`);
- a bitfield becomes one reading per named bit (``<device>.<bit name>``);
- coils and discrete inputs are ``bool``.

A slice that cannot be decoded (it should not happen: the link checks the
answer's length) is not silently dropped: it becomes a ``device.bad_value``
event with the raw registers, so the fault is seen and nothing is lost.

The fresh values then feed the device's derived points
(:class:`~drivers.modbus.derived.DerivedPoints`), whose readings and events
follow the raw ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from drivers.modbus.codec import decode_with_quality
from drivers.modbus.config import ResolvedDevice
from drivers.modbus.datatypes import ByteOrder, CodecError, DataType
from drivers.modbus.derived import DerivedPoints
from drivers.modbus.planner import Request
from gateway.model import Event, Quality, Reading, Value

__all__ = ["DeviceValues"]

GOOD = Quality.GOOD


class DeviceValues:
    """Decoder of one device's answers."""

    def __init__(self, device: ResolvedDevice, derived: DerivedPoints | None = None) -> None:
        self.device = device
        self.derived = derived
        self._prefix = f"{device.device}."
        self._feeds = derived.inputs if derived is not None else frozenset()
        self.last: dict[str, tuple[Value, Quality]] = {}  # latest decoded value per point
        # Plain 16-bit integers (AB order, no scale/offset/precision), point -> signed, are
        # decoded inline: the codec's general path costs ~5x more (bench/modbus_poll.py).
        self._plain16 = {
            name: spec.type is DataType.INT16
            for name, spec in device.specs.items()
            if spec.type in (DataType.UINT16, DataType.INT16)
            and spec.effective_order is ByteOrder.AB
            and spec.scale is None
            and spec.offset is None
            and spec.precision is None
        }

    def messages(
        self, request: Request, values: Sequence[int] | Sequence[bool], ts: int
    ) -> list[Reading | Event]:
        out: list[Reading | Event] = []
        fresh: dict[str, tuple[Value, Quality]] = {}
        is_bit = request.table.is_bit
        plain16 = self._plain16
        for served in request.points:
            chunk = values[served.offset : served.offset + served.count]
            signed = plain16.get(served.name)
            if signed is not None and len(chunk) == 1:
                raw = int(chunk[0])
                if 0 <= raw <= 0xFFFF:  # else the codec's path reports it
                    fresh[served.name] = (raw - 0x10000 if signed and raw & 0x8000 else raw, GOOD)
                    continue
            spec = self.device.specs[served.name]
            if is_bit:
                if len(chunk) != 1:
                    out.append(self._bad(served.name, list(chunk), "missing bit", ts))
                    continue
                fresh[served.name] = (bool(chunk[0]), Quality.GOOD)
                continue
            try:
                decoded = decode_with_quality([int(v) for v in chunk], spec)
            except CodecError as exc:
                out.append(self._bad(served.name, [int(v) for v in chunk], str(exc), ts))
                continue
            if spec.type is DataType.BITFIELD:
                assert isinstance(decoded.value, dict)
                for bit, state in decoded.value.items():
                    fresh[bit] = (bool(state), decoded.quality)
            else:
                assert not isinstance(decoded.value, dict)
                fresh[served.name] = (decoded.value, decoded.quality)
        for name, (value, quality) in fresh.items():
            out.append(Reading(self._prefix + name, value, ts, quality))
        self.last.update(fresh)
        if self.derived is not None and not self._feeds.isdisjoint(fresh):
            out.extend(self.derived.feed(fresh, ts))
        return out

    def _bad(self, name: str, raw: list[int] | list[bool], why: str, ts: int) -> Event:
        return Event(
            "device.bad_value",
            self.device.device,
            ts,
            {"point": name, "raw": list(raw), "error": why},
        )
