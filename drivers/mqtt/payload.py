"""Payload decoding: JSON paths, value coercion, timestamps, Tasmota LWT.

Everything here is pure and synchronous. Paths are compiled once (when the
config is loaded); a bad message raises :class:`Malformed` with a short
reason that ends up in the ``mqtt.malformed`` event and the log.

JSON path syntax (a small, predictable subset of JSONPath)::

    temp              key "temp" of the top-level object
    $.data.temp       the same with the optional "$." prefix
    items[0].v        index 0 of the list "items", then key "v"
    items[-1]         the last element
    $["a.b"]          a key that contains dots or brackets
    $                 the whole document (a bare JSON number, say)
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeAlias

from gateway.model import Value, from_datetime

__all__ = [
    "JSON_LIBRARY",
    "JsonPath",
    "Malformed",
    "MissingPath",
    "TimestampFormat",
    "ValueType",
    "coerce",
    "excerpt",
    "parse_json",
    "parse_lwt",
    "parse_timestamp",
]

ValueType: TypeAlias = Literal["number", "bool", "text"]
TimestampFormat: TypeAlias = Literal["epoch_s", "epoch_ms", "iso8601"]
Step: TypeAlias = str | int

_TRUE = frozenset({"on", "true", "1", "yes", "online"})
_FALSE = frozenset({"off", "false", "0", "no", "offline"})
_SEGMENT = re.compile(
    r"""\.(?P<name>[^.\[\]"']+)"""  # .name
    r"""|\[(?P<index>-?\d+)\]"""  # [3]
    r"""|\[(?P<q>["'])(?P<key>.*?)(?P=q)\]"""  # ["a.b"]
)


def _pick_json() -> tuple[str, Callable[[bytes], Any]]:
    """orjson when it is installed (a quarter of the stdlib's time on a
    150-byte message), else the stdlib decoding a str (json.loads(bytes)
    sniffs the encoding first and is a third slower)."""
    try:
        fast = importlib.import_module("orjson")
    except ImportError:
        decode = json.JSONDecoder().decode
        return "json", lambda payload: decode(payload.decode())
    loads: Callable[[bytes], Any] = fast.loads
    return "orjson", loads


JSON_LIBRARY, _loads = _pick_json()


def parse_json(payload: bytes) -> Any:
    """A JSON payload, parsed; raises :class:`Malformed` for anything else."""
    try:
        return _loads(payload)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, orjson's errors
        raise Malformed(f"bad JSON: {e}") from None
    except RecursionError:
        raise Malformed("bad JSON: nested too deeply") from None


class Malformed(ValueError):
    """A message cannot be mapped; ``str(exc)`` is the reason, for people."""


class MissingPath(Malformed):
    """A JSON path leads nowhere in this message."""


class JsonPath:
    """A compiled JSON path. Raises :class:`ValueError` on bad syntax."""

    __slots__ = ("_single", "steps", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.steps: tuple[Step, ...] = _compile(text)
        first = self.steps[0] if len(self.steps) == 1 else None
        self._single = first if isinstance(first, str) else None

    def __repr__(self) -> str:
        return f"JsonPath({self.text!r})"

    def get(self, doc: Any) -> Any:
        """The value at this path in ``doc`` (parsed JSON)."""
        key = self._single
        if key is not None and type(doc) is dict:  # the common case: one key
            try:
                return doc[key]
            except KeyError:
                raise MissingPath(f"no {self.text!r} in the message") from None
        cur = doc
        for step in self.steps:
            if isinstance(step, str):
                if type(cur) is not dict:
                    raise Malformed(
                        f"path {self.text!r}: expected an object at {step!r}, got {_kind(cur)}"
                    )
                try:
                    cur = cur[step]
                except KeyError:
                    raise MissingPath(f"no {self.text!r} in the message") from None
            else:
                if type(cur) is not list:
                    raise Malformed(
                        f"path {self.text!r}: expected a list at [{step}], got {_kind(cur)}"
                    )
                try:
                    cur = cur[step]
                except IndexError:
                    raise MissingPath(
                        f"path {self.text!r}: index {step} out of range ({len(cur)} items)"
                    ) from None
        return cur


def _compile(text: str) -> tuple[Step, ...]:
    s = text.strip()
    if s != text or not s:
        raise ValueError(f"JSON path {text!r} is empty or has surrounding spaces")
    if s.startswith("$"):
        s = s[1:]
    elif not s.startswith("["):
        s = "." + s  # "temp" == "$.temp"
    steps: list[Step] = []
    pos = 0
    while pos < len(s):
        m = _SEGMENT.match(s, pos)
        if m is None:
            raise ValueError(
                f"JSON path {text!r}: cannot read {s[pos:]!r}; write keys as 'a.b', "
                "indexes as 'a[0]' and keys with dots as '$[\"a.b\"]'"
            )
        if m.group("name") is not None:
            steps.append(m.group("name"))
        elif m.group("index") is not None:
            steps.append(int(m.group("index")))
        else:
            steps.append(m.group("key"))
        pos = m.end()
    return tuple(steps)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def coerce(raw: Any, kind: ValueType) -> Value:
    """Turn a decoded JSON value (or payload text) into a point value.

    ``number``: JSON numbers and numeric strings, always as ``float`` (a
    historian field keeps one type); booleans, NaN and infinities are errors.
    ``bool``: JSON booleans, 0/1 and the strings ON/OFF, true/false, 1/0,
    yes/no, online/offline (any case). ``text``: strings, numbers, booleans.
    """
    t = type(raw)
    if kind == "number":
        if t is float:
            if math.isfinite(raw):
                return raw  # type: ignore[no-any-return]
            raise Malformed(f"not a finite number: {raw}")
        if t is int:
            return float(raw)
        if t is str or t is bytes:
            try:
                v = float(raw)
            except ValueError:
                raise Malformed(f"not a number: {_short(raw)}") from None
            if not math.isfinite(v):
                raise Malformed(f"not a finite number: {_short(raw)}")
            return v
        raise Malformed(f"wrong type: expected a number, got {_kind(raw)}")
    if kind == "bool":
        if t is bool:
            return raw  # type: ignore[no-any-return]
        if (t is int or t is float) and raw in (0, 1):
            return bool(raw)
        if t is str or t is bytes:
            word = (raw.decode("utf-8", "replace") if t is bytes else raw).strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
            raise Malformed(f"not a boolean (ON/OFF, true/false, 1/0): {_short(raw)}")
        raise Malformed(f"wrong type: expected a boolean, got {_kind(raw)}")
    # text
    if t is str:
        return raw  # type: ignore[no-any-return]
    if t is bytes:
        try:
            return raw.decode("utf-8").strip()  # type: ignore[no-any-return]
        except UnicodeDecodeError:
            raise Malformed("payload is not UTF-8 text") from None
    if t is bool or t is int or t is float:
        return str(raw).lower() if t is bool else str(raw)
    raise Malformed(f"wrong type: expected text, got {_kind(raw)}")


def parse_timestamp(raw: Any, fmt: TimestampFormat, naive_tz: tzinfo | None) -> int:
    """A message's own timestamp as UTC ns. ``naive_tz`` applies to ISO times
    without an offset (Tasmota sends local time); without it they are errors."""
    if fmt == "iso8601":
        if type(raw) is not str:
            raise Malformed(f"timestamp: expected an ISO 8601 string, got {_kind(raw)}")
        try:
            dt = datetime.fromisoformat(raw)
        except ValueError:
            raise Malformed(f"timestamp: not ISO 8601: {_short(raw)}") from None
        if dt.tzinfo is None:
            if naive_tz is None:
                raise Malformed(f"timestamp {raw!r} has no UTC offset; set timestamp.timezone")
            dt = dt.replace(tzinfo=naive_tz)
        return from_datetime(dt)
    scale = 1_000_000_000 if fmt == "epoch_s" else 1_000_000
    t = type(raw)
    if t is int:
        return raw * scale  # type: ignore[no-any-return]
    if t is float or t is str:
        # Decimal of the text keeps 1790000000.123 exact (a float product would not).
        try:
            d = Decimal(str(raw).strip())
        except InvalidOperation:
            raise Malformed(f"timestamp: not a number: {_short(str(raw))}") from None
        if d.is_finite():
            return int((d * scale).to_integral_value())
        raise Malformed(f"timestamp: not a finite number: {_short(str(raw))}")
    raise Malformed(f"timestamp: expected a number, got {_kind(raw)}")


def parse_lwt(payload: bytes) -> bool:
    """Tasmota's LWT payload: ``Online`` -> True, ``Offline`` -> False (any case)."""
    word = payload.strip().lower()
    if word == b"online":
        return True
    if word == b"offline":
        return False
    raise Malformed(f"LWT payload is neither 'Online' nor 'Offline': {_short(payload)}")


def excerpt(payload: bytes, limit: int = 80) -> str:
    """The start of a payload, readable, for logs and events."""
    text = payload[:limit].decode("utf-8", "replace")
    return text + "…" if len(payload) > limit else text


def _short(raw: str | bytes) -> str:
    if isinstance(raw, bytes):
        return repr(excerpt(raw, 40))
    return repr(raw[:40] + "…" if len(raw) > 40 else raw)
