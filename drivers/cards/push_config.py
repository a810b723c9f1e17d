"""The event mapping shared by the push drivers (``card_mqtt``, ``card_http``).

Networked access controllers and ANPR cameras push JSON, each vendor in its
own shape. Rather than one driver per vendor, an ``events:`` list in the site
file says which message becomes which of our events (drivers/cards/events.py)
and where each of our data keys is in the payload. Everything a message needs
is checked here, when the file is loaded: paths, templates, which keys each
event type needs and which conversions a key allows. The transport checks
(topic filters or URL paths) are :func:`check_mqtt_entries` and
:func:`check_http_entries`, called by each driver's config.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from drivers.cards import events as ev
from drivers.mqtt.config import TimestampConfig
from drivers.mqtt.mapping import ID_PATTERN, TopicFilter
from drivers.mqtt.payload import JsonPath
from gateway.driver import DriverConfig, StrictModel

__all__ = [
    "EMIT_TYPES",
    "FIELD_KINDS",
    "EmitType",
    "EventEntry",
    "FieldKind",
    "FieldSpec",
    "PushDriverConfig",
    "check_devices_table",
    "check_http_entries",
    "check_mqtt_entries",
    "literal_sources",
    "template_parts",
]

EmitType = Literal[
    "card.presented",
    "card.decision",
    "plate.read",
    "door.contact",
    "door.exit_request",
    "gate.passage",
    "barrier.loop",
    "reader.tamper",
    "reader.tamper_cleared",
]
EMIT_TYPES: tuple[str, ...] = (
    ev.CARD_PRESENTED,
    ev.CARD_DECISION,
    ev.PLATE_READ,
    ev.DOOR_CONTACT,
    ev.DOOR_EXIT_REQUEST,
    ev.GATE_PASSAGE,
    ev.BARRIER_LOOP,
    ev.READER_TAMPER,
    ev.READER_TAMPER_CLEARED,
)

FieldKind = Literal["uid", "plate", "text", "bool", "number", "int", "direction", "any"]
FIELD_KINDS: Mapping[str, FieldKind] = {
    "uid": "uid",
    "plate": "plate",
    "value": "text",
    "format": "text",
    "reason": "text",
    "loop": "text",
    "direction": "direction",
    "granted": "bool",
    "open": "bool",
    "occupied": "bool",
    "confidence": "number",
    "count": "int",
    "bits": "int",
    "facility": "int",
    "number": "int",
    "reader_no": "int",
}
"""The type of each data key of our events; any other key is copied as it is."""

# emit type -> alternatives, each a set of keys that together suffice
_REQUIRED: Mapping[str, tuple[frozenset[str], ...]] = {
    ev.CARD_PRESENTED: (frozenset({"uid"}), frozenset({"value", "format"})),
    ev.CARD_DECISION: (
        frozenset({"granted", "uid"}),
        frozenset({"granted", "plate"}),
        frozenset({"granted", "value"}),
    ),
    ev.PLATE_READ: (frozenset({"plate"}),),
    ev.DOOR_CONTACT: (frozenset({"open"}),),
    ev.BARRIER_LOOP: (frozenset({"occupied"}),),
}
_PLACEHOLDER = re.compile(r"\{(json|topic)\.([^{}]+)\}")
_HTTP_PATH = re.compile(r"^(/[A-Za-z0-9._~!$&'()*,;=:@%-]+)+/?$|^/$")

Part = str | tuple[Literal["json"], JsonPath] | tuple[Literal["topic"], int]


def template_parts(text: str) -> tuple[Part, ...]:
    """``"rd_{json.reader.id}"`` -> ``("rd_", ("json", JsonPath("reader.id")))``.

    Raises :class:`ValueError` on stray braces, a bad JSON path or a topic
    level that is not a number.
    """
    parts: list[Part] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        if m.group(1) == "json":
            parts.append(("json", JsonPath(m.group(2))))
        else:
            if not m.group(2).isdigit():
                raise ValueError(f"template {text!r}: '{{topic.N}}' needs a level number")
            parts.append(("topic", int(m.group(2))))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    for p in parts:
        if isinstance(p, str) and ("{" in p or "}" in p):
            raise ValueError(
                f"template {text!r}: use '{{json.<path>}}' or '{{topic.<level>}}' in braces"
            )
    return tuple(parts)


class FieldSpec(StrictModel):
    """Where one of our data keys comes from, and how it is converted.

    Written either as a bare JSON path (``uid: card.no``) or as a mapping.
    """

    path: str | None = Field(
        None, description="JSON path in the payload: 'card.no', '$.data[0].uid', '$[\"a.b\"]'."
    )
    const: Any = Field(
        None, description="A fixed value instead of a path (e.g. direction: {const: in})."
    )
    uid_format: Literal["hex", "decimal"] = Field(
        "hex",
        description="uid only: how a string UID is written (hex '00BC614E' or decimal "
        "'12345678'); a JSON number is taken as the card number itself.",
    )
    map: dict[str, Any] | None = Field(
        None,
        description="Translate payload values first, e.g. {OPEN: true, CLOSE: false}; keys are "
        "the values as text (1, true, 'OPEN'). A value not listed is malformed.",
    )
    scale: float | None = Field(
        None, description="Multiply a number by this (confidence 93 with scale 0.01 -> 0.93)."
    )
    default: Any = Field(
        None, description="Value when the path is absent (otherwise the message is malformed)."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        if (self.path is None) == (self.const is None):
            raise ValueError("give either 'path' or 'const'")
        if self.path is not None:
            JsonPath(self.path)
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        return self


class EventEntry(StrictModel):
    """One ``events:`` entry: which messages, which event, where its data is."""

    match: str = Field(
        description="card_mqtt: an MQTT topic filter ('ctrl/+/event'; levels count from 0); "
        "card_http: the URL path the device posts to ('/anpr/vzenith')."
    )
    when: dict[str, Any] = Field(
        default_factory=dict,
        description="Only messages whose JSON has these values, e.g. {type: swipe} or "
        "{'event.code': [1, 2]} (a list: any of them). A message that fits no entry is ignored.",
    )
    unless: dict[str, Any] = Field(
        default_factory=dict,
        description="Skip messages with any of these values, e.g. a camera's no-plate "
        "marker {'AlarmInfoPlate.result.PlateResult.license': '_无_'}.",
    )
    emit: EmitType = Field(description="Our event type (see drivers/cards/events.py).")
    source: str = Field(
        description="Device id of the reader, door or camera, or a template: '{json.reader_id}', "
        "'{topic.1}' (MQTT level 1), 'rd_{json.sn}'; a template's text is looked up in "
        "the driver's devices table."
    )
    fields: dict[str, FieldSpec] = Field(
        default_factory=dict,
        description="Our data key -> JSON path (or {path, uid_format, map, scale, default, "
        "const}). uid -> canonical hex UID, plate -> canonical plate.",
    )
    ts: TimestampConfig | None = Field(
        None,
        description="Where the payload carries its own time ({path, format: epoch_s | "
        "epoch_ms | iso8601, timezone}); omitted: the gateway's clock at arrival.",
    )

    @field_validator("when", "unless")
    @classmethod
    def _condition_paths(cls, v: dict[str, Any]) -> dict[str, Any]:
        for path, want in v.items():
            JsonPath(path)
            for w in want if isinstance(want, list) else [want]:
                if not isinstance(w, str | int | float | bool):
                    raise ValueError(f"{path}: compare with text, numbers or booleans")
        return v

    @field_validator("source")
    @classmethod
    def _source_syntax(cls, v: str) -> str:
        parts = template_parts(v)
        if len(parts) == 1 and isinstance(parts[0], str) and not ID_PATTERN.match(v):
            raise ValueError(f"source {v!r}: letters, digits, '_' and '-' only")
        return v

    @model_validator(mode="after")
    def _fields_fit(self) -> EventEntry:
        keys = set(self.fields)
        needs = _REQUIRED.get(self.emit)
        if needs and not any(alt <= keys for alt in needs):
            options = " or ".join("+".join(sorted(a)) for a in needs)
            raise ValueError(f"emit {self.emit} needs fields {options}")
        for key, spec in self.fields.items():
            kind = FIELD_KINDS.get(key, "any")
            if spec.uid_format != "hex" and kind != "uid":
                raise ValueError(f"fields.{key}: uid_format applies to uid only")
            if spec.scale is not None and kind not in ("number", "int", "any"):
                raise ValueError(f"fields.{key}: scale applies to numbers only")
        return self


def _topic_levels(entry: EventEntry) -> list[int]:
    return [p[1] for p in template_parts(entry.source) if isinstance(p, tuple) and p[0] == "topic"]


def check_mqtt_entries(entries: Sequence[EventEntry]) -> None:
    """Topic filters are valid and ``{topic.N}`` names a wildcard level."""
    for i, e in enumerate(entries):
        try:
            flt = TopicFilter(e.match)
        except ValueError as exc:
            raise ValueError(f"events[{i}].match: {exc}") from None
        hash_at = len(e.match.split("/")) - 1 if e.match.endswith("#") else None
        for n in _topic_levels(e):
            if n not in flt.plus_levels and (hash_at is None or n < hash_at):
                raise ValueError(
                    f"events[{i}].source {e.source!r}: topic level {n} is not a '+' or '#' "
                    f"level of {e.match!r} (levels count from 0)"
                )


def check_http_entries(entries: Sequence[EventEntry]) -> None:
    """Match texts are URL paths, and no source refers to a topic."""
    for i, e in enumerate(entries):
        if not _HTTP_PATH.match(e.match):
            raise ValueError(
                f"events[{i}].match {e.match!r}: a URL path such as '/anpr/vzenith' "
                "(no query string, no wildcards)"
            )
        if _topic_levels(e):
            raise ValueError(f"events[{i}].source {e.source!r}: HTTP has no topic levels")


def check_devices_table(devices: Mapping[str, str]) -> None:
    for key, dev in devices.items():
        if not ID_PATTERN.match(dev):
            raise ValueError(f"devices[{key!r}] = {dev!r}: letters, digits, '_' and '-' only")


def literal_sources(entries: Iterable[EventEntry], devices: Mapping[str, str]) -> list[str]:
    """The device ids a push driver owns: literal sources and the table's ids."""
    seen: dict[str, None] = {}
    for e in entries:
        parts = template_parts(e.source)
        if len(parts) == 1 and isinstance(parts[0], str):
            seen[parts[0]] = None
    for dev in devices.values():
        seen[dev] = None
    return list(seen)


class PushDriverConfig(DriverConfig):
    """What ``card_mqtt`` and ``card_http`` have in common: the mapping."""

    events: list[EventEntry] = Field(
        min_length=1, description="Which messages become which events (see push_README.md)."
    )
    device_table: dict[str, str] = Field(
        default_factory=dict,
        alias="devices",
        description="The controller's names -> our device ids, for templated sources "
        "({R1: gate_n1_in}); with a table, a name not in it is malformed.",
    )

    @field_validator("device_table")
    @classmethod
    def _table_ids(cls, v: dict[str, str]) -> dict[str, str]:
        check_devices_table(v)
        return v

    def devices(self) -> Iterable[str]:
        return literal_sources(self.events, self.device_table)
