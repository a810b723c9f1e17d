"""Registers <-> values, pure Python (struct), no pymodbus.

:func:`decode` turns the registers of one point (or the one bit of a coil or
discrete input) into a value; :func:`encode` is its inverse, for writes. The
layout rules (byte and word order, which options each type takes) are in
:mod:`drivers.modbus.datatypes`.

Scaling: ``value = raw * scale + offset``, then rounded to ``precision``
decimals. An integer stays an ``int`` when scale is 1 and offset 0; any other
scale or offset gives a ``float``. :func:`encode` undoes it and rounds to the
nearest integer for integer types.

Bad input: a wrong register count, a register outside 0..65535, a bit not
0/1 or undecodable string bytes raise :class:`DecodeError` (the driver makes
it a BAD reading). NaN and infinity decoded from float registers are
returned as they are; :func:`decode_with_quality` flags them
``Quality.UNCERTAIN``, and so an enum code missing from the label table.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import NamedTuple, TypeAlias

from drivers.modbus.datatypes import (
    ByteOrder,
    CodecError,
    DataType,
    DecodeError,
    EncodeError,
    SpecError,
    ValueSpec,
)
from gateway.model import Quality

__all__ = [
    "CodecError",
    "DecodeError",
    "Decoded",
    "EncodeError",
    "SpecError",
    "Value",
    "decode",
    "decode_with_quality",
    "encode",
]

Value: TypeAlias = int | float | bool | str | dict[str, bool]
"""A decoded value; ``dict`` only for ``bitfield`` (bit name -> state)."""

# struct format (big-endian) and, for integers, the inclusive range.
_FORMATS: Mapping[DataType, str] = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}
_INT_RANGE: Mapping[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}


class Decoded(NamedTuple):
    value: Value
    quality: Quality


# --- layout ------------------------------------------------------------------


def _to_bytes(registers: Sequence[int], order: ByteOrder) -> bytes:
    """Registers on the wire -> the value's bytes, most significant first."""
    words = reversed(registers) if order.words_reversed else registers
    out = bytearray()
    for word in words:
        pair = word.to_bytes(2, "big")
        out += pair[::-1] if order.bytes_swapped else pair
    return bytes(out)


def _from_bytes(data: bytes, order: ByteOrder) -> list[int]:
    """The value's bytes, most significant first -> registers on the wire."""
    pairs = [data[i : i + 2] for i in range(0, len(data), 2)]
    if order.words_reversed:
        pairs.reverse()
    return [int.from_bytes(p[::-1] if order.bytes_swapped else p, "big") for p in pairs]


def _check_registers(registers: Sequence[int], spec: ValueSpec) -> None:
    if len(registers) != spec.count:
        unit = "bit" if spec.is_bit_table else "register"
        raise DecodeError(f"{spec.type}: expected {spec.count} {unit}(s), got {len(registers)}")
    top = 1 if spec.is_bit_table else 0xFFFF
    for i, reg in enumerate(registers):
        if not isinstance(reg, int) or not 0 <= reg <= top:
            raise DecodeError(f"{spec.type}: value {reg!r} at position {i} is outside 0..{top}")


# --- decode ------------------------------------------------------------------


def decode(registers: Sequence[int], spec: ValueSpec) -> Value:
    """The value of ``registers`` (bits, for ``bool``) under ``spec``; raises DecodeError."""
    _check_registers(registers, spec)
    t = spec.type
    if t == DataType.BOOL:
        return bool(registers[0])
    order = spec.effective_order
    if t in _FORMATS:
        (raw,) = struct.unpack(_FORMATS[t], _to_bytes(registers, order))
        return _scale(raw, spec)
    if t == DataType.STRING:
        return _decode_string(registers, spec)
    word = _from_wire_word(registers[0], order)
    if t == DataType.BIT:
        assert spec.bit is not None
        return bool(word >> spec.bit & 1)
    if t == DataType.BITFIELD:
        assert spec.bits is not None
        return {name: bool(word >> index & 1) for name, index in spec.bits.items()}
    assert t == DataType.ENUM and spec.labels is not None
    return spec.labels.get(word, str(word))


def decode_with_quality(registers: Sequence[int], spec: ValueSpec) -> Decoded:
    """Like :func:`decode`, with UNCERTAIN for NaN/infinity and for an unknown enum code."""
    value = decode(registers, spec)
    if spec.type == DataType.ENUM:
        assert spec.labels is not None
        uncertain = _from_wire_word(registers[0], spec.effective_order) not in spec.labels
    else:
        uncertain = isinstance(value, float) and not math.isfinite(value)
    return Decoded(value, Quality.UNCERTAIN if uncertain else Quality.GOOD)


def _from_wire_word(register: int, order: ByteOrder) -> int:
    return int.from_bytes(_to_bytes([register], order), "big")


def _scale(raw: int | float, spec: ValueSpec) -> int | float:
    scale = 1.0 if spec.scale is None else spec.scale
    offset = 0.0 if spec.offset is None else spec.offset
    if scale == 1 and offset == 0:
        if isinstance(raw, int):
            return raw
        value = raw  # no arithmetic: -0.0 stays -0.0
    else:
        value = raw * scale + offset
    if spec.precision is not None:
        value = round(value, spec.precision)
    return value


def _decode_string(registers: Sequence[int], spec: ValueSpec) -> str:
    order = spec.effective_order
    data = b"".join(_to_bytes([reg], order) for reg in registers)
    data = data.split(b"\x00", 1)[0].rstrip(b" ")
    try:
        return data.decode(spec.encoding or "ascii")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"string: bytes are not {exc.encoding}: {data!r}") from None


# --- encode ------------------------------------------------------------------


def encode(value: Value, spec: ValueSpec, *, base: int = 0) -> list[int]:
    """Registers (bits, for ``bool``) that hold ``value``; raises EncodeError.

    ``base`` is the register's current value as read from the device (wire
    order) for ``bit`` and ``bitfield``: the bits not written are kept from
    it, for a read-modify-write. Other types ignore it.
    """
    t = spec.type
    if t == DataType.BOOL:
        return [int(_as_bool(value, spec))]
    order = spec.effective_order
    if t in _FORMATS:
        try:
            data = struct.pack(_FORMATS[t], _unscale(value, spec))
        except (OverflowError, struct.error) as exc:
            raise EncodeError(f"{t}: {value!r} does not fit: {exc}") from None
        return _from_bytes(data, order)
    if t == DataType.STRING:
        return _encode_string(value, spec)
    if not isinstance(base, int) or not 0 <= base <= 0xFFFF:
        raise EncodeError(f"{t}: base register {base!r} is outside 0..65535")
    if t == DataType.BIT:
        assert spec.bit is not None
        word = _set_bit(_from_wire_word(base, order), spec.bit, _as_bool(value, spec))
    elif t == DataType.BITFIELD:
        word = _encode_bitfield(value, spec, _from_wire_word(base, order))
    else:
        word = _encode_enum(value, spec)
    return _from_bytes(word.to_bytes(2, "big"), order)


def _as_bool(value: Value, spec: ValueSpec) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise EncodeError(f"{spec.type}: expected a bool (or 0/1), got {value!r}")


def _set_bit(word: int, index: int, on: bool) -> int:
    return word | (1 << index) if on else word & ~(1 << index)


def _unscale(value: Value, spec: ValueSpec) -> int | float:
    t = spec.type
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(f"{t}: expected a number, got {value!r}")
    raw: int | float = value
    if spec.scale is not None or spec.offset is not None:
        scale = 1.0 if spec.scale is None else spec.scale
        raw = (value - (spec.offset or 0.0)) / scale
    if t in (DataType.FLOAT32, DataType.FLOAT64):
        return float(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise EncodeError(f"{t}: {value!r} is not a finite number")
        if spec.scale is None and spec.offset is None and not raw.is_integer():
            raise EncodeError(f"{t}: {value!r} is not an integer")
        raw = round(raw)
    low, high = _INT_RANGE[t]
    if not low <= raw <= high:
        raise EncodeError(f"{t}: raw value {raw} is outside {low}..{high}")
    return raw


def _encode_string(value: Value, spec: ValueSpec) -> list[int]:
    if not isinstance(value, str):
        raise EncodeError(f"string: expected a str, got {value!r}")
    encoding = spec.encoding or "ascii"
    try:
        data = value.encode(encoding)
    except UnicodeEncodeError:
        raise EncodeError(f"string: {value!r} cannot be encoded as {encoding}") from None
    size = spec.count * 2
    if len(data) > size or b"\x00" in data:
        raise EncodeError(f"string: {value!r} needs {len(data)} bytes, room for {size}, no NUL")
    data = data.ljust(size, b"\x00")
    order = spec.effective_order
    return [_from_bytes(data[i : i + 2], order)[0] for i in range(0, size, 2)]


def _encode_bitfield(value: Value, spec: ValueSpec, base: int) -> int:
    assert spec.bits is not None
    if not isinstance(value, Mapping):
        raise EncodeError(f"bitfield: expected a mapping of bit name -> bool, got {value!r}")
    word = base
    for name, state in value.items():
        if name not in spec.bits:
            raise EncodeError(f"bitfield: unknown bit {name!r}; known: {', '.join(spec.bits)}")
        word = _set_bit(word, spec.bits[name], _as_bool(state, spec))
    return word


def _encode_enum(value: Value, spec: ValueSpec) -> int:
    assert spec.labels is not None
    for raw, label in spec.labels.items():
        if value == label:
            return raw
    if isinstance(value, str) and value.isdigit() and value.isascii():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF:
        return value
    labels = ", ".join(spec.labels.values())
    raise EncodeError(f"enum: {value!r} is not a label ({labels}) nor a code 0..65535")
