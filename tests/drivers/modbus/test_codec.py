"""The Modbus register codec against golden vectors, plus bad specs and bad registers.

Numeric golden vectors are cross-checked here with ``struct`` and an explicit
byte-letter pattern per order (not with the codec), so a wrong vector file
or a wrong codec cannot agree by construction.
"""

from __future__ import annotations

import math
import string
import struct
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from drivers.modbus.codec import (
    DecodeError,
    EncodeError,
    SpecError,
    decode,
    decode_with_quality,
    encode,
)
from drivers.modbus.datatypes import OPTIONS, ByteOrder, DataType, ValueSpec, order_for_register
from gateway.model import Quality
from tests.drivers.modbus import golden_vectors as gv

STRUCT = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "int64": ">q",
    "uint64": ">Q",
    "float32": ">f",
    "float64": ">d",
}
# Wire byte pattern per order and register count; letters name the value's big-endian bytes.
PATTERN = {
    1: {None: "AB", "AB": "AB", "BA": "BA"},
    2: {None: "ABCD", "ABCD": "ABCD", "CDAB": "CDAB", "BADC": "BADC", "DCBA": "DCBA"},
    4: {
        None: "ABCDEFGH",
        "ABCD": "ABCDEFGH",
        "CDAB": "GHEFCDAB",
        "BADC": "BADCFEHG",
        "DCBA": "HGFEDCBA",
    },
}


def _load() -> list[Any]:
    cases = []
    for path in gv.files():
        for i, vector in enumerate(gv.vectors(path)):
            cases.append(pytest.param(vector, id=f"{path.stem}-{i}-{vector['type']}"))
    return cases


VECTORS = _load()


def _struct_value(vector: dict[str, Any]) -> Any:
    """The value of the registers computed with struct only (no codec)."""
    fmt = STRUCT[vector["type"]]
    registers = gv.registers(vector)
    wire = b"".join(r.to_bytes(2, "big") for r in registers)
    pattern = PATTERN[len(registers)][vector["order"]]
    canonical = bytearray(len(wire))
    for position, letter in enumerate(pattern):
        canonical[string.ascii_uppercase.index(letter)] = wire[position]
    (raw,) = struct.unpack(fmt, bytes(canonical))
    assert "raw" not in vector or raw == vector["raw"]
    options = vector.get("options", {})
    scale, offset = options.get("scale", 1), options.get("offset", 0)
    if scale == 1 and offset == 0:
        if isinstance(raw, int):
            return raw
        value = raw
    else:
        value = raw * scale + offset
    return round(value, options["precision"]) if "precision" in options else value


def test_golden_files_cover_every_type_and_order() -> None:
    seen = {(v.values[0]["type"], v.values[0]["order"]) for v in VECTORS}
    for data_type in DataType:
        assert any(t == data_type for t, _ in seen), data_type
    for type_ in ("int32", "uint32", "float32", "int64", "uint64", "float64"):
        for order in ("ABCD", "CDAB", "BADC", "DCBA"):
            assert (type_, order) in seen
    for type_ in ("int16", "uint16", "string", "bit", "bitfield", "enum"):
        assert (type_, "BA") in seen


@pytest.mark.parametrize("vector", VECTORS)
def test_golden_vector_decodes(vector: dict[str, Any]) -> None:
    spec = gv.spec(vector)
    expected = gv.expected(vector)
    if vector["type"] in STRUCT:
        assert gv.same(_struct_value(vector), expected), "golden file disagrees with struct"
    value, quality = decode_with_quality(gv.registers(vector), spec)
    assert gv.same(value, expected)
    assert quality == Quality(vector.get("quality", "good"))


@pytest.mark.parametrize("vector", VECTORS)
def test_golden_vector_round_trips(vector: dict[str, Any]) -> None:
    spec = gv.spec(vector)
    registers = gv.registers(vector)
    value = decode(registers, spec)
    assert gv.same(decode(encode(value, spec, base=registers[0]), spec), value)
    if not vector.get("lossy"):
        assert encode(value, spec, base=registers[0]) == registers


def test_ints_stay_ints_unless_scaled() -> None:
    assert decode([0xFFFF], ValueSpec(DataType.INT16)) == -1
    assert isinstance(decode([7], ValueSpec(DataType.UINT16, scale=1, offset=0)), int)
    assert isinstance(decode([7], ValueSpec(DataType.UINT16, scale=2)), float)
    assert decode([0x4049, 0x0FDB], ValueSpec(DataType.FLOAT32, precision=2)) == 3.14


def test_encode_undoes_scale_and_rounds_to_integer() -> None:
    spec = ValueSpec(DataType.INT16, scale=0.1, offset=-40.0)
    assert encode(-12.35, spec) == [276]  # (-12.35 + 40) / 0.1 = 276.49999999999994
    assert encode(21.5, spec) == [615]


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"type": "int16", "order": "ABCD"}, "order"),
        ({"type": "float32", "order": "AB"}, "order"),
        ({"type": "string", "length": 2, "order": "CDAB"}, "order"),
        ({"type": "int16", "bit": 3}, "bit"),
        ({"type": "int32", "length": 2}, "length"),
        ({"type": "string", "length": 2, "scale": 0.1}, "scale"),
        ({"type": "bit", "bit": 1, "precision": 1}, "precision"),
        ({"type": "enum", "labels": {0: "a"}, "offset": 1.0}, "offset"),
        ({"type": "bool", "order": "AB"}, "order"),
        ({"type": "string"}, "length"),
        ({"type": "string", "length": 0}, "length"),
        ({"type": "string", "length": 2, "encoding": "latin-1"}, "encoding"),
        ({"type": "bit"}, "bit"),
        ({"type": "bit", "bit": 16}, "bit"),
        ({"type": "bitfield", "bits": {}}, "bits"),
        ({"type": "bitfield", "bits": {"a": 1, "b": 1}}, "bits"),
        ({"type": "bitfield", "bits": {"a": -1}}, "bits"),
        ({"type": "enum"}, "labels"),
        ({"type": "enum", "labels": {70000: "x"}}, "labels"),
        ({"type": "enum", "labels": {0: "x", 1: "x"}}, "labels"),
        ({"type": "int16", "scale": 0}, "scale"),
        ({"type": "float32", "scale": math.inf}, "scale"),
        ({"type": "float32", "offset": math.nan}, "offset"),
        ({"type": "int32", "precision": 16}, "precision"),
        ({"type": "int128"}, "type"),
        ({"type": "int32", "order": "DBCA"}, "order"),
    ],
)
def test_invalid_spec_names_option_and_type(options: dict[str, Any], option: str) -> None:
    with pytest.raises(SpecError) as info:
        ValueSpec(**options)
    assert info.value.option == option
    assert info.value.type == options["type"]
    assert repr(option) in str(info.value) and repr(options["type"]) in str(info.value)


def test_options_table_is_what_validation_enforces() -> None:
    assert OPTIONS[DataType.INT16] == {"order", "scale", "offset", "precision"}
    assert OPTIONS[DataType.BIT] == {"order", "bit"}
    assert OPTIONS[DataType.BOOL] == frozenset()
    with pytest.raises(SpecError, match="allowed: offset, order, precision, scale"):
        ValueSpec(DataType.FLOAT64, bits={"a": 0})


def test_spec_counts_and_default_orders() -> None:
    assert ValueSpec(DataType.FLOAT64).count == 4
    assert ValueSpec(DataType.STRING, length=10).count == 10
    assert ValueSpec(DataType.INT32).effective_order == ByteOrder.ABCD
    assert ValueSpec(DataType.STRING, length=3).effective_order == ByteOrder.AB
    assert ValueSpec(DataType.BOOL).is_bit_table
    assert order_for_register(ByteOrder.CDAB) == ByteOrder.AB
    assert order_for_register(ByteOrder.DCBA) == ByteOrder.BA


@pytest.mark.parametrize(
    ("spec", "registers"),
    [
        (ValueSpec(DataType.FLOAT32), [0x42F6]),  # too few
        (ValueSpec(DataType.INT16), [1, 2]),  # too many
        (ValueSpec(DataType.UINT64), []),
        (ValueSpec(DataType.INT16), [65536]),
        (ValueSpec(DataType.INT32), [0, -1]),
        (ValueSpec(DataType.BOOL), [2]),
        (ValueSpec(DataType.STRING, length=1), [0xFFFF]),  # not ASCII
        (ValueSpec(DataType.STRING, length=1, encoding="utf-8"), [0xC328]),  # bad UTF-8
    ],
)
def test_bad_registers_raise_decode_error(spec: ValueSpec, registers: list[int]) -> None:
    with pytest.raises(DecodeError):
        decode(registers, spec)


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        (ValueSpec(DataType.INT16), 32768),
        (ValueSpec(DataType.UINT16), -1),
        (ValueSpec(DataType.UINT16, scale=0.1), 6553.6),
        (ValueSpec(DataType.INT32), 1.5),
        (ValueSpec(DataType.INT32), True),
        (ValueSpec(DataType.INT32), "12"),
        (ValueSpec(DataType.INT16, scale=0.5), math.inf),
        (ValueSpec(DataType.FLOAT32), 1e39),
        (ValueSpec(DataType.STRING, length=1), "ABC"),
        (ValueSpec(DataType.STRING, length=2), "°C"),  # not ASCII
        (ValueSpec(DataType.STRING, length=2), "A\x00B"),
        (ValueSpec(DataType.STRING, length=2), 12),
        (ValueSpec(DataType.BIT, bit=2), 2),
        (ValueSpec(DataType.BITFIELD, bits={"run": 0}), {"stop": True}),
        (ValueSpec(DataType.BITFIELD, bits={"run": 0}), True),
        (ValueSpec(DataType.ENUM, labels={0: "off"}), "on"),
        (ValueSpec(DataType.ENUM, labels={0: "off"}), 70000),
        (ValueSpec(DataType.BOOL), "yes"),
    ],
)
def test_bad_values_raise_encode_error(spec: ValueSpec, value: Any) -> None:
    with pytest.raises(EncodeError):
        encode(value, spec)


def test_bit_write_keeps_the_other_bits() -> None:
    spec = ValueSpec(DataType.BIT, bit=4)
    assert encode(True, spec, base=0x0F01) == [0x0F11]
    assert encode(False, spec, base=0xFFFF) == [0xFFEF]
    swapped = ValueSpec(DataType.BITFIELD, bits={"a": 0, "b": 8}, order=ByteOrder.BA)
    assert encode({"b": True}, swapped, base=0x0000) == [0x0001]
    with pytest.raises(EncodeError):
        encode(True, spec, base=0x10000)


def test_enum_accepts_label_code_or_code_text() -> None:
    spec = ValueSpec(DataType.ENUM, labels={0: "off", 1: "on"})
    assert encode("on", spec) == [1]
    assert encode(7, spec) == [7]
    assert encode("7", spec) == [7]


def test_spec_works_as_a_pydantic_field() -> None:
    class Point(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        value: ValueSpec

    point = Point.model_validate({"value": {"type": "enum", "labels": {"0": "off"}, "order": "BA"}})
    assert point.value == ValueSpec(DataType.ENUM, order=ByteOrder.BA, labels={0: "off"})
    with pytest.raises(ValidationError, match="option 'order': ABCD does not fit"):
        Point.model_validate({"value": {"type": "int16", "order": "ABCD"}})
