"""Modbus value types, byte orders and the validated value spec.

A :class:`ValueSpec` says how the registers (or bits) of one point become a
value: the data type, the byte and word order, scale/offset/precision and the
type's own options (string length, bit index, bit names, enum labels). It is
checked once, when it is built; an option the type does not use is an error
that names the option and the type (``OPTIONS`` is the table).

Byte and word order
-------------------
Write the value's bytes big-endian as ``A B C D ...`` (``A`` most
significant). The order names how they travel in the registers, 16 bits per
register:

======  ===========  ====================  ==============================
order   32-bit wire  64-bit wire           meaning
======  ===========  ====================  ==============================
ABCD    AB CD        AB CD EF GH           big-endian (Modbus default)
CDAB    CD AB        GH EF CD AB           words reversed, bytes big inside
BADC    BA DC        BA DC FE HG           words in order, bytes swapped
DCBA    DC BA        HG FE DC BA           little-endian
======  ===========  ====================  ==============================

That is two independent switches, word order (first register most or least
significant) and byte order inside a register, and it generalises to any
number of registers. One-register types (int16, uint16, bit, bitfield, enum,
and each register of a string) take ``AB`` (default) or ``BA``;
:func:`order_for_register` maps a device-wide four-letter order onto them.

Value results
-------------
``bitfield`` decodes to ``dict[str, bool]`` (bit name -> state); the driver
emits one reading per name. ``enum`` decodes to the label of the raw uint16;
a code missing from the table decodes to its decimal string (``"7"``) and is
flagged uncertain by :func:`drivers.modbus.codec.decode_with_quality`.
``bool`` is a coil or discrete input (one bit, not a register).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

__all__ = [
    "OPTIONS",
    "ByteOrder",
    "CodecError",
    "DataType",
    "DecodeError",
    "EncodeError",
    "SpecError",
    "ValueSpec",
    "order_for_register",
]


class CodecError(Exception):
    """Base of the Modbus codec errors."""


class SpecError(CodecError, ValueError):
    """A value spec is invalid (a ValueError, so pydantic reports it as a validation error)."""

    def __init__(self, type_: str, option: str, message: str) -> None:
        super().__init__(f"type {type_!r}, option {option!r}: {message}")
        self.type = type_
        self.option = option


class DecodeError(CodecError):
    """Registers cannot be decoded (wrong count, out of 0..65535): a BAD reading."""


class EncodeError(CodecError, ValueError):
    """A value cannot be encoded for the spec (wrong type, out of range, too long)."""


class DataType(enum.StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"
    BIT = "bit"
    BITFIELD = "bitfield"
    ENUM = "enum"
    BOOL = "bool"


class ByteOrder(enum.StrEnum):
    AB = "AB"
    BA = "BA"
    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"

    @property
    def words_reversed(self) -> bool:
        """The first register holds the least significant word."""
        return self in (ByteOrder.CDAB, ByteOrder.DCBA)

    @property
    def bytes_swapped(self) -> bool:
        """Inside each register the low byte comes first."""
        return self in (ByteOrder.BA, ByteOrder.BADC, ByteOrder.DCBA)


def order_for_register(order: ByteOrder) -> ByteOrder:
    """The one-register order (AB/BA) implied by any order: only its byte swap counts."""
    return ByteOrder.BA if order.bytes_swapped else ByteOrder.AB


_NUMERIC = ("order", "scale", "offset", "precision")
_ONE_REGISTER = frozenset({ByteOrder.AB, ByteOrder.BA})
_MULTI_REGISTER = frozenset({ByteOrder.ABCD, ByteOrder.CDAB, ByteOrder.BADC, ByteOrder.DCBA})

OPTIONS: Mapping[DataType, frozenset[str]] = {
    DataType.INT16: frozenset(_NUMERIC),
    DataType.UINT16: frozenset(_NUMERIC),
    DataType.INT32: frozenset(_NUMERIC),
    DataType.UINT32: frozenset(_NUMERIC),
    DataType.INT64: frozenset(_NUMERIC),
    DataType.UINT64: frozenset(_NUMERIC),
    DataType.FLOAT32: frozenset(_NUMERIC),
    DataType.FLOAT64: frozenset(_NUMERIC),
    DataType.STRING: frozenset({"order", "length", "encoding"}),
    DataType.BIT: frozenset({"order", "bit"}),
    DataType.BITFIELD: frozenset({"order", "bits"}),
    DataType.ENUM: frozenset({"order", "labels"}),
    DataType.BOOL: frozenset(),
}
"""Which options each type allows (besides ``type``); any other set option is a SpecError."""

_REQUIRED: Mapping[DataType, str] = {
    DataType.STRING: "length",
    DataType.BIT: "bit",
    DataType.BITFIELD: "bits",
    DataType.ENUM: "labels",
}

_WIDTH: Mapping[DataType, int] = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT64: 4,
    DataType.BIT: 1,
    DataType.BITFIELD: 1,
    DataType.ENUM: 1,
    DataType.BOOL: 1,
}

_FOUR_LETTER = frozenset({t for t, n in _WIDTH.items() if n > 1})
_ENCODINGS = ("ascii", "utf-8")
MAX_STRING_REGISTERS = 125  # one read request


@dataclass(frozen=True, slots=True)
class ValueSpec:
    """How one point's registers become a value. Options left ``None`` are unset.

    ``scale``/``offset`` default to ``None`` (meaning 1 and 0) so that setting
    them on a type that ignores them is caught. Mapping options (``bits``,
    ``labels``) make the spec unhashable; compare specs with ``==``.
    """

    type: DataType
    order: ByteOrder | None = None
    scale: float | None = None
    offset: float | None = None
    precision: int | None = None
    length: int | None = None  # string: number of registers
    encoding: str | None = None  # string: "ascii" (default) or "utf-8"
    bit: int | None = None  # bit: index 0 (least significant) .. 15
    bits: Mapping[str, int] | None = None  # bitfield: name -> bit index
    labels: Mapping[int, str] | None = None  # enum: raw value -> label

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "type", DataType(self.type))
            if self.order is not None:
                object.__setattr__(self, "order", ByteOrder(self.order))
        except ValueError:
            if isinstance(self.type, DataType):
                known, name, got = ", ".join(ByteOrder), "order", self.order
            else:
                known, name, got = ", ".join(DataType), "type", self.type
            raise SpecError(str(self.type), name, f"unknown {got!r}; use one of {known}") from None
        allowed = OPTIONS[self.type]
        for f in fields(self):
            if f.name != "type" and getattr(self, f.name) is not None and f.name not in allowed:
                raise self._error(f.name, f"not allowed; allowed: {', '.join(sorted(allowed))}")
        required = _REQUIRED.get(self.type)
        if required is not None and getattr(self, required) is None:
            raise self._error(required, "required")
        self._check_order()
        self._check_numeric()
        self._check_own_options()

    def _error(self, option: str, message: str) -> SpecError:
        return SpecError(self.type.value, option, message)

    def _check_order(self) -> None:
        if self.order is None:
            return
        valid = _MULTI_REGISTER if self.is_multi_register else _ONE_REGISTER
        if self.order not in valid:
            names = "/".join(sorted(o.value for o in valid))
            raise self._error("order", f"{self.order.value} does not fit; use {names}")

    def _check_numeric(self) -> None:
        if self.scale is not None and (not math.isfinite(self.scale) or self.scale == 0):
            raise self._error("scale", f"must be a finite non-zero number, got {self.scale}")
        if self.offset is not None and not math.isfinite(self.offset):
            raise self._error("offset", f"must be finite, got {self.offset}")
        if self.precision is not None and not 0 <= self.precision <= 15:
            raise self._error("precision", f"must be 0..15 decimals, got {self.precision}")

    def _check_own_options(self) -> None:
        if self.length is not None and not 1 <= self.length <= MAX_STRING_REGISTERS:
            raise self._error("length", f"must be 1..{MAX_STRING_REGISTERS} registers")
        if self.encoding is not None and self.encoding not in _ENCODINGS:
            raise self._error("encoding", f"must be one of {', '.join(_ENCODINGS)}")
        if self.bit is not None and not 0 <= self.bit <= 15:
            raise self._error("bit", f"must be 0..15, got {self.bit}")
        if self.bits is not None:
            if not self.bits:
                raise self._error("bits", "must name at least one bit")
            for name, index in self.bits.items():
                if not name or not 0 <= index <= 15:
                    raise self._error("bits", f"{name!r}: index must be 0..15, got {index}")
            if len(set(self.bits.values())) != len(self.bits):
                raise self._error("bits", "two names share one bit index")
        if self.labels is not None:
            if not self.labels:
                raise self._error("labels", "must have at least one entry")
            for raw, label in self.labels.items():
                if not isinstance(raw, int) or not 0 <= raw <= 0xFFFF:
                    raise self._error("labels", f"raw value {raw} is outside 0..65535")
                if not label:
                    raise self._error("labels", f"raw value {raw} has an empty label")
            if len(set(self.labels.values())) != len(self.labels):
                raise self._error("labels", "two raw values share one label")

    @property
    def count(self) -> int:
        """Registers (or bits, for ``bool``) this value occupies."""
        if self.type == DataType.STRING:
            assert self.length is not None
            return self.length
        return _WIDTH[self.type]

    @property
    def effective_order(self) -> ByteOrder:
        """The order, defaulting to big-endian (AB or ABCD)."""
        if self.order is not None:
            return self.order
        return ByteOrder.ABCD if self.is_multi_register else ByteOrder.AB

    @property
    def is_multi_register(self) -> bool:
        """A number spread over several registers (takes a four-letter order)."""
        return self.type in _FOUR_LETTER

    @property
    def is_bit_table(self) -> bool:
        """Read from coils or discrete inputs rather than registers."""
        return self.type == DataType.BOOL
