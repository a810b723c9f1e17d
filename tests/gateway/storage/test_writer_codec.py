"""The outbox batch codec: exact round trip, typed errors for anything corrupt."""

from __future__ import annotations

import json
import math

import pytest

from gateway.model import Quality, Reading
from gateway.storage import codec


def test_round_trip_keeps_types_quality_order_and_timestamps() -> None:
    readings = [
        Reading("tx1.temp", 65.5, 1_767_225_600_123_456_789),
        Reading("tx1.count", 7, 2),
        Reading("tx1.count", 7.0, 3),
        Reading("pump.run", True, 4, Quality.UNCERTAIN),
        Reading("泵1.状态", '故障 "E1"\n\\', 5, Quality.BAD),
        Reading("tx1.temp", -0.0, -6),
    ]
    out = codec.decode(codec.encode(readings))
    assert out == readings
    assert [type(r.value) for r in out] == [type(r.value) for r in readings]
    assert [r.quality for r in out] == [r.quality for r in readings]


def test_nan_and_infinities_survive_for_the_sink_to_judge() -> None:
    out = codec.decode(codec.encode([Reading("d.p", math.nan, 1), Reading("d.p", -math.inf, 2)]))
    assert math.isnan(out[0].value) and out[1].value == -math.inf  # type: ignore[arg-type]


def test_empty_batch() -> None:
    assert codec.decode(codec.encode([])) == []


def test_all_good_quality_is_not_stored_per_reading() -> None:
    payload = codec.encode([Reading("d.p", float(i), i) for i in range(100)])
    assert json.loads(payload[1:])[4] == []
    assert len(payload) < 100 * 12


@pytest.mark.parametrize("value", [object(), {"a": 1}, [1, 2], None, b"bytes"])
def test_a_value_that_is_not_a_point_value_is_a_codec_error(value: object) -> None:
    with pytest.raises(codec.CodecError):
        codec.encode([Reading("d.p", 1.0, 1), Reading("d.p", value, 2)])  # type: ignore[arg-type]


GOOD = codec.encode([Reading("d.p", 1.0, 1), Reading("d.q", 2.0, 2)])


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x02" + GOOD[1:],  # a future version
        GOOD[:-5],  # truncated
        GOOD[:1] + b"\xff\xfe",  # not UTF-8
        GOOD[:1] + b'{"a": 1}',
        GOOD[:1] + b'[["d.p"], [0, 1], [1.0], [1], []]',  # columns of different lengths
        GOOD[:1] + b'[["d.p"], [3], [1.0], [1], []]',  # point index out of range
        GOOD[:1] + b'[["d.p"], [-1], [1.0], [1], []]',
        GOOD[:1] + b'[["d.p"], [0], [1.0], [1.5], []]',  # a float timestamp
        GOOD[:1] + b'[["d.p"], [0], [{"x": 1}], [1], []]',
        GOOD[:1] + b'[["d.p"], [0], [1.0], [1], [7]]',  # unknown quality
    ],
)
def test_corrupt_payloads_raise_codec_error(payload: bytes) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(payload)
