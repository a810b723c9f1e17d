"""Compact encoding of a batch of readings for the outbox.

Format version 1: one version byte ``0x01``, then UTF-8 JSON of columns::

    [points, point_index, values, timestamps, qualities]

``points`` lists each distinct point name once; ``point_index[i]`` names the
point of reading ``i``; ``qualities`` is empty when every reading is good,
else one small integer per reading. JSON keeps ``int`` / ``float`` / ``bool``
/ ``str`` apart, and NaN and infinities survive (the sink decides what to do
with them). Columns make both directions list comprehensions plus one C-level
``json`` call, well above 300k points/s each way.

A payload that does not decode (truncated, another version, garbage) raises
:class:`CodecError`; the writer quarantines it instead of retrying forever.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from gateway.model import Quality, Reading

__all__ = ["VERSION", "CodecError", "decode", "encode"]

VERSION = 1
_HEADER = bytes([VERSION])
_QUALITIES = (Quality.GOOD, Quality.UNCERTAIN, Quality.BAD)
_QUALITY_INDEX = {q: i for i, q in enumerate(_QUALITIES)}
_VALUE_TYPES = (float, int, bool, str)
_EXACT_TYPES = frozenset(_VALUE_TYPES)
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


class CodecError(ValueError):
    """A payload is not a batch of readings this version can read."""


def encode(readings: Sequence[Reading]) -> bytes:
    """Readings -> bytes (raises :class:`CodecError` for a value JSON cannot hold)."""
    index: dict[str, int] = {}
    setdefault = index.setdefault
    point_index = [setdefault(r.point, len(index)) for r in readings]
    values = [r.value for r in readings]
    if not all(type(v) in _EXACT_TYPES for v in values):
        for v in values:
            if not isinstance(v, _VALUE_TYPES):
                raise CodecError(f"a reading's value must be float, int, bool or str, not {v!r}")
    stamps = [r.ts for r in readings]
    good = Quality.GOOD
    if all(r.quality is good for r in readings):
        qualities: list[int] = []
    else:
        qualities = [_QUALITY_INDEX[r.quality] for r in readings]
    try:
        text = _encoder.encode([list(index), point_index, values, stamps, qualities])
    except (TypeError, ValueError) as e:
        raise CodecError(f"cannot encode readings: {e}") from e
    return _HEADER + text.encode()


def decode(payload: bytes) -> list[Reading]:
    """Bytes -> readings, or :class:`CodecError`."""
    if not payload:
        raise CodecError("empty payload")
    if payload[0] != VERSION:
        raise CodecError(f"unknown outbox payload version {payload[0]}")
    try:
        points, point_index, values, stamps, qualities = json.loads(payload[1:])
    except (ValueError, TypeError) as e:  # UnicodeDecodeError and JSONDecodeError included
        raise CodecError(f"corrupt outbox payload: {e}") from e
    n = len(point_index) if isinstance(point_index, list) else -1
    if not (
        isinstance(points, list)
        and isinstance(values, list)
        and isinstance(stamps, list)
        and isinstance(qualities, list)
        and len(values) == n
        and len(stamps) == n
        and len(qualities) in (0, n)
    ):
        raise CodecError("corrupt outbox payload: columns of different lengths")
    if not (
        all(type(p) is str for p in points)
        and all(type(t) is int for t in stamps)
        and all(isinstance(v, _VALUE_TYPES) for v in values)
    ):
        raise CodecError("corrupt outbox payload: wrong types")
    try:
        if (n and min(point_index) < 0) or (qualities and min(qualities) < 0):
            raise IndexError("negative index")
        names = [points[i] for i in point_index]
        if not qualities:
            return [Reading(p, v, t) for p, v, t in zip(names, values, stamps, strict=True)]
        quals = [_QUALITIES[q] for q in qualities]
    except (IndexError, TypeError) as e:
        raise CodecError(f"corrupt outbox payload: {e}") from e
    return [Reading(*row) for row in zip(names, values, stamps, quals, strict=True)]
