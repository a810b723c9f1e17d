"""Pushed JSON -> our events: the ``events:`` entries, compiled once.

Pure and synchronous, so both transports (MQTT topics, HTTP paths) share it
and it is tested without a broker. :class:`EventMap` is built when the
driver config is loaded (a bad ``const`` or ``map`` target fails the file,
not the first message). :meth:`EventMap.map` parses a payload once and runs
every entry whose ``match`` fits the topic or path; an entry whose ``when``
does not fit is skipped, and a message no entry wants is *ignored* (a
controller's heartbeat on the event topic), not malformed. A problem in one
entry does not cost the events of the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from drivers.cards import events as ev
from drivers.cards.push_config import FIELD_KINDS, EventEntry, FieldKind, FieldSpec, template_parts
from drivers.mqtt.mapping import ID_PATTERN, TopicFilter
from drivers.mqtt.payload import (
    JsonPath,
    Malformed,
    MissingPath,
    coerce,
    parse_json,
    parse_timestamp,
)
from gateway.access.cards import CardValueError, canonical_plate, canonical_uid
from gateway.model import Command, Event

__all__ = [
    "CompiledEntry",
    "EventMap",
    "MapResult",
    "Transport",
    "command_result",
    "convert",
    "norm",
]

Transport = Literal["mqtt", "http"]
_CACHE_SIZE = 10_000


def norm(v: Any) -> str:
    """A JSON scalar as the text ``when`` and ``map`` compare: 1, 1.0 and "1" agree."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if v is None:
        return "null"
    return str(v)


def _what(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "text"}.get(
        type(v), "a list" if isinstance(v, list) else "an object"
    )


def convert(key: str, kind: FieldKind, raw: Any, *, decimal: bool, scale: float | None) -> Any:
    """One payload value (after ``map``) as our key wants it; raises :class:`Malformed`."""
    if kind == "uid":
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise Malformed(f"{key}: wrong type: expected a card UID, got {_what(raw)}")
        try:
            return canonical_uid(raw, decimal=decimal)
        except CardValueError as e:
            raise Malformed(f"{key}: {e}") from None
    if kind == "plate":
        if not isinstance(raw, str):
            raise Malformed(f"{key}: wrong type: expected a plate text, got {_what(raw)}")
        try:
            return canonical_plate(raw)
        except CardValueError as e:
            raise Malformed(f"{key}: {e}") from None
    if kind == "direction":
        if raw in ("in", "out"):
            return raw
        raise Malformed(f"{key}: expected 'in' or 'out' (translate with map:), got {raw!r}")
    try:
        if kind == "bool":
            return coerce(raw, "bool")
        if kind == "text":
            return coerce(raw, "text")
        if kind == "any" and scale is None:
            return raw
        number = float(coerce(raw, "number")) * (scale if scale is not None else 1.0)
    except Malformed as e:
        raise Malformed(f"{key}: {e}") from None
    if kind == "int":
        if not number.is_integer():
            raise Malformed(f"{key}: expected a whole number, got {number}")
        return int(number)
    if key == "confidence" and not 0.0 <= number <= 1.0:
        raise Malformed(f"confidence {number} is outside 0-1 (percent? set scale: 0.01)")
    return number


@dataclass(frozen=True, slots=True)
class _Field:
    key: str
    kind: FieldKind
    path: JsonPath | None
    const: Any
    decimal: bool
    map: Mapping[str, Any] | None
    scale: float | None
    default: Any

    @classmethod
    def compile(cls, key: str, spec: FieldSpec) -> _Field:
        kind = FIELD_KINDS.get(key, "any")
        decimal = spec.uid_format == "decimal"
        table = {norm(k): v for k, v in spec.map.items()} if spec.map is not None else None
        const = None
        if spec.const is not None:
            const = _checked(key, kind, spec.const, decimal, "const")
        if table is not None:
            for k, v in table.items():
                _checked(key, kind, v, decimal, f"map[{k!r}]")
        default = None
        if spec.default is not None:
            default = _checked(key, kind, spec.default, decimal, "default")
        path = JsonPath(spec.path) if spec.path is not None else None
        return cls(key, kind, path, const, decimal, table, spec.scale, default)

    def read(self, doc: Any) -> Any:
        if self.path is None:
            return self.const
        try:
            raw = self.path.get(doc)
        except MissingPath as e:
            if self.default is not None:
                return self.default
            raise Malformed(f"{self.key}: {e}") from None
        except Malformed as e:
            raise Malformed(f"{self.key}: {e}") from None
        if self.map is not None:
            try:
                raw = self.map[norm(raw)]
            except KeyError:
                known = ", ".join(self.map)
                raise Malformed(f"{self.key}: {raw!r} is not in its map ({known})") from None
        return convert(self.key, self.kind, raw, decimal=self.decimal, scale=self.scale)


def _checked(key: str, kind: FieldKind, value: Any, decimal: bool, what: str) -> Any:
    try:
        return convert(key, kind, value, decimal=decimal, scale=None)
    except Malformed as e:
        raise ValueError(f"fields.{key}.{what}: {e}") from None


_Condition = tuple[JsonPath, frozenset[str]]


def _conditions(spec: Mapping[str, Any]) -> tuple[_Condition, ...]:
    return tuple(
        (JsonPath(p), frozenset(norm(w) for w in (v if isinstance(v, list) else [v])))
        for p, v in spec.items()
    )


def _holds(cond: _Condition, doc: Any) -> bool:
    try:
        return norm(cond[0].get(doc)) in cond[1]
    except Malformed:  # MissingPath too: an absent field holds no value
        return False


class CompiledEntry:
    """One ``events:`` entry, ready to test and map a parsed payload."""

    __slots__ = (
        "_devices",
        "_fields",
        "_literal",
        "_parts",
        "_ts",
        "_unless",
        "_when",
        "emit",
        "label",
    )

    def __init__(self, entry: EventEntry, devices: Mapping[str, str]) -> None:
        self.label = entry.match
        self.emit = entry.emit
        self._when = _conditions(entry.when)
        self._unless = _conditions(entry.unless)
        self._parts = template_parts(entry.source)
        first = self._parts[0]
        self._literal = first if len(self._parts) == 1 and isinstance(first, str) else None
        self._devices = devices
        fields = []
        for key, spec in entry.fields.items():
            try:
                fields.append(_Field.compile(key, spec))
            except ValueError as e:
                raise ValueError(f"events ({entry.match}, {entry.emit}): {e}") from None
        self._fields = tuple(fields)
        ts = entry.ts
        self._ts = (
            (JsonPath(ts.path), ts.format, ZoneInfo(ts.timezone) if ts.timezone else None)
            if ts is not None
            else None
        )

    def wants(self, doc: Any) -> bool:
        """Every ``when`` condition holds and no ``unless`` one (an absent path does not)."""
        return all(_holds(c, doc) for c in self._when) and not any(
            _holds(c, doc) for c in self._unless
        )

    def build(self, doc: Any, levels: Sequence[str], now_ns: int) -> Event:
        """The event for one message; raises :class:`Malformed` with the reason."""
        data: dict[str, Any] = {f.key: f.read(doc) for f in self._fields}
        if self.emit in (ev.CARD_PRESENTED, ev.CARD_DECISION) and "format" not in data:
            data["format"] = "plate" if "plate" in data and "uid" not in data else "controller"
        elif self.emit == ev.GATE_PASSAGE:
            data.setdefault("count", 1)
        ts = now_ns
        if self._ts is not None:
            path, fmt, zone = self._ts
            try:
                ts = parse_timestamp(path.get(doc), fmt, zone)
            except Malformed as e:
                raise Malformed(f"ts: {e}") from None
        return Event(self.emit, self.source(doc, levels), ts, data)

    def source(self, doc: Any, levels: Sequence[str]) -> str:
        if self._literal is not None:
            return self._literal
        out: list[str] = []
        for p in self._parts:
            if isinstance(p, str):
                out.append(p)
            elif p[0] == "topic":
                if p[1] >= len(levels):
                    raise Malformed(f"source: the topic has no level {p[1]}")
                out.append(levels[p[1]])
            else:
                raw = p[1].get(doc)
                if isinstance(raw, bool) or not isinstance(raw, str | int):
                    raise Malformed(f"source: expected text or a number, got {_what(raw)}")
                out.append(str(raw))
        name = "".join(out)
        if self._devices:
            dev = self._devices.get(name)
            if dev is None:
                raise Malformed(f"source: unknown device {name!r} (not in the devices table)")
            return dev
        if not ID_PATTERN.match(name):
            raise Malformed(f"source: {name!r} is not a valid device id")
        return name


@dataclass(slots=True)
class MapResult:
    """What one message gave: events, and (entry label, reason) per problem."""

    events: list[Event] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ignored(self) -> bool:
        return not self.events and not self.problems


class EventMap:
    """Every ``events:`` entry of one driver, by topic filter or by URL path."""

    def __init__(
        self, entries: Sequence[EventEntry], devices: Mapping[str, str], transport: Transport
    ) -> None:
        self.transport = transport
        self._compiled = tuple((e, CompiledEntry(e, dict(devices))) for e in entries)
        self._filters = (
            tuple((TopicFilter(e.match), c) for e, c in self._compiled)
            if transport == "mqtt"
            else ()
        )
        self._by_path: dict[str, tuple[CompiledEntry, ...]] = {}
        if transport == "http":
            for e, c in self._compiled:
                self._by_path[e.match] = (*self._by_path.get(e.match, ()), c)
        self._cache: dict[str, tuple[CompiledEntry, ...]] = {}

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(self._by_path)

    def entries_for(self, key: str) -> tuple[CompiledEntry, ...]:
        """The entries whose ``match`` fits a topic (MQTT) or a URL path (HTTP)."""
        if self.transport == "http":
            return self._by_path.get(key, ())
        hit = self._cache.get(key)
        if hit is None:
            levels = key.split("/")
            hit = tuple(c for flt, c in self._filters if flt.match(levels))
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()  # a flood of distinct topics: start over
            self._cache[key] = hit
        return hit

    def map(self, key: str, payload: bytes, now_ns: int) -> MapResult:
        """Map one message on topic / path ``key`` (no entry: an empty result)."""
        result = MapResult()
        entries = self.entries_for(key)
        if not entries:
            return result
        try:
            doc = parse_json(payload)
        except Malformed as e:
            result.problems.append((entries[0].label, str(e)))
            return result
        levels = key.split("/") if self.transport == "mqtt" else ()
        for c in entries:
            if not c.wants(doc):
                continue
            try:
                result.events.append(c.build(doc, levels, now_ns))
            except Malformed as e:
                result.problems.append((c.label, str(e)))
        return result


def command_result(cmd: Command, result: str, reason: str, ts: int) -> Event:
    """The ``command.result`` answer to ``cmd`` (``done``, ``refused``, ``failed``)."""
    return Event(
        ev.COMMAND_RESULT,
        cmd.target,
        ts,
        {
            "id": cmd.id,
            "target": cmd.target,
            "action": cmd.action,
            "result": result,
            "reason": reason,
        },
    )
