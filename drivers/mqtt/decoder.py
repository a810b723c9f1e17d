"""One subscription, compiled: a message in, readings / events / availability out.

A :class:`Decoder` is built once per subscription when the driver is
constructed (paths compiled, formats resolved), so decoding a message does
no parsing of the config. :func:`decode_message` runs every route a topic
matched, parsing a JSON payload once, and collects what could be mapped
plus the reason for what could not: one bad value does not cost the good
ones of the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from drivers.mqtt.config import Subscription
from drivers.mqtt.mapping import Route, Router, Template, TopicFilter
from drivers.mqtt.payload import (
    JsonPath,
    Malformed,
    MissingPath,
    ValueType,
    coerce,
    parse_json,
    parse_lwt,
    parse_timestamp,
)
from gateway.model import Event, Reading, Value

__all__ = ["Availability", "Decoder", "build_router", "decode_message"]

_UNSET: Any = object()
_INF = float("inf")


@dataclass(frozen=True, slots=True)
class Availability:
    """A device announced itself online or offline (Tasmota LWT)."""

    device: str
    online: bool


@dataclass(frozen=True, slots=True)
class _Value:
    path: JsonPath | None
    type: ValueType
    key: str | None  # the path is one key of the top-level object: the fast path
    number: bool


class Decoder:
    """The compiled form of one :class:`~drivers.mqtt.config.Subscription`."""

    def __init__(self, index: int, sub: Subscription) -> None:
        self.index = index
        self.topic = sub.topic
        self.format = sub.format
        self.needs_json = sub.format in ("json", "tasmota")
        self.lenient = sub.format == "tasmota"  # a missing path skips, see README
        values = []
        for v in sub.values:
            path = JsonPath(v.path) if v.path is not None else None
            key = path.steps[0] if path is not None and len(path.steps) == 1 else None
            values.append(
                _Value(
                    path,
                    v.type,
                    key if isinstance(key, str) else None,
                    v.type == "number",
                )
            )
        self.values = tuple(values)
        self.tasmota = sub.format == "tasmota"
        ts = sub.timestamp
        self.ts_path = JsonPath(ts.path) if ts is not None else None
        self.ts_format = ts.format if ts is not None else "epoch_s"
        self.ts_zone = ZoneInfo(ts.timezone) if ts is not None and ts.timezone else None
        ev = sub.event
        self.event_type = ev.type if ev is not None else None
        self.event_data = tuple((k, JsonPath(p)) for k, p in ev.data.items()) if ev else ()
        self.malformed = 0

    def __repr__(self) -> str:
        return f"Decoder({self.index}, {self.topic!r}, {self.format})"

    def decode(
        self,
        route: Route[Decoder],
        payload: bytes,
        doc: Any,
        now_ns: int,
        readings: list[Reading],
        other: list[Event | Availability],
    ) -> str | None:
        """Append what ``payload`` maps to; return the first problem (or None)."""
        if self.tasmota and route.last_level == "LWT":
            try:
                other.append(Availability(route.device, parse_lwt(payload)))
            except Malformed as e:
                return str(e)
            return None
        if self.lenient and type(doc) is not dict:
            return f"expected a JSON object, got {type(doc).__name__}"
        problem: str | None = None
        ts = now_ns
        if self.ts_path is not None:
            try:
                ts = parse_timestamp(self.ts_path.get(doc), self.ts_format, self.ts_zone)
            except MissingPath as e:
                if not self.lenient:
                    return str(e)
            except Malformed as e:
                return str(e)
        is_dict = type(doc) is dict
        for spec, point in zip(self.values, route.points, strict=False):  # same length
            key = spec.key
            raw = doc.get(key, _UNSET) if key is not None and is_dict else _UNSET
            if spec.number and type(raw) is float and -_INF < raw < _INF:
                value: Value = raw  # the common case, without a call
            else:
                try:
                    if raw is _UNSET:
                        raw = payload if spec.path is None else spec.path.get(doc)
                    value = coerce(raw, spec.type)
                except MissingPath as e:
                    if not self.lenient and problem is None:
                        problem = f"{point}: {e}"
                    continue
                except Malformed as e:
                    if problem is None:
                        problem = f"{point}: {e}"
                    continue
            readings.append(Reading(point, value, ts))
        if self.event_type is not None:
            try:
                data = self._event_data(payload, doc)
            except MissingPath as e:
                return problem if self.lenient else problem or str(e)
            except Malformed as e:
                return problem or str(e)
            other.append(Event(self.event_type, route.source, ts, data))
        return problem

    def _event_data(self, payload: bytes, doc: Any) -> dict[str, Any]:
        if self.event_data:
            return {k: p.get(doc) for k, p in self.event_data}
        if not self.needs_json:
            return {"value": coerce(payload, "text")}
        return dict(doc) if type(doc) is dict else {"value": doc}


def build_router(subs: Sequence[Subscription]) -> Router[Decoder]:
    """Compile every subscription (done once, when the driver is built)."""
    entries = []
    for i, s in enumerate(subs):
        flt = TopicFilter(s.topic)
        device = Template(s.device)
        points = [Template(v.point) for v in s.values]
        source = None
        if s.event is not None:
            source = Template(s.event.source) if s.event.source is not None else device
        entries.append((Decoder(i, s), flt, device, points, source))
    return Router(entries)


def decode_message(
    routes: Sequence[Route[Decoder]],
    payload: bytes,
    now_ns: int,
    readings: list[Reading],
    other: list[Event | Availability],
    problems: list[tuple[Decoder, str]],
) -> None:
    """Run every route of one message; JSON is parsed once, and only if needed."""
    doc: Any = _UNSET
    json_error = ""
    for route in routes:
        dec = route.sub
        if dec.needs_json and not (dec.tasmota and route.last_level == "LWT"):
            if doc is _UNSET and not json_error:
                try:
                    doc = parse_json(payload)
                except Malformed as e:
                    json_error = str(e)
            if json_error:
                problems.append((dec, json_error))
                continue
        reason = dec.decode(route, payload, doc, now_ns, readings, other)
        if reason is not None:
            problems.append((dec, reason))
