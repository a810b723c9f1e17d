"""Config models of the MQTT ingest (``type: mqtt``) and uplink (``type: mqtt_uplink``).

Everything a message needs is checked here, at load time: topic filters,
templates against the filter's ``+`` levels, JSON path syntax, and which
options each payload format allows (the table is in README.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from drivers.mqtt.mapping import Template, TopicFilter, validate_topic_name
from drivers.mqtt.payload import JsonPath, TimestampFormat, ValueType
from gateway.driver import DriverConfig, PointSpec, StrictModel

__all__ = [
    "AlarmCommandsConfig",
    "BrokerConfig",
    "EventMapping",
    "MqttIngestConfig",
    "MqttUplinkConfig",
    "Subscription",
    "TimestampConfig",
    "TlsConfig",
    "ValueMapping",
]

PayloadFormat = Literal["json", "number", "text", "tasmota"]
_PATH_FORMATS = ("json", "tasmota")
_EVENT_TYPE = r"^[a-z0-9_]+(\.[a-z0-9_]+)+$"


def _check_path(v: str | None) -> str | None:
    if v is not None:
        JsonPath(v)  # raises ValueError with the reason
    return v


class TlsConfig(StrictModel):
    ca_file: Path | None = Field(
        None,
        description="PEM file of the CA that signed the broker's certificate; "
        "empty to use the system's trusted CAs.",
    )
    cert_file: Path | None = Field(
        None, description="PEM client certificate, when the broker requires one (mutual TLS)."
    )
    key_file: Path | None = Field(
        None, description="PEM private key of cert_file (omit if cert_file holds the key)."
    )
    insecure: bool = Field(
        False,
        description="Do not check that the broker's certificate names the host "
        "(like mosquitto_sub --insecure). The certificate chain is still verified.",
    )

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("tls.key_file is set but tls.cert_file is not; set both")
        return self


class BrokerConfig(StrictModel):
    host: str = Field(description="Broker host name or IP address.", min_length=1)
    port: int | None = Field(
        None, ge=1, le=65535, description="TCP port; default 1883, or 8883 with tls."
    )
    username: str | None = Field(None, description="User name, if the broker asks for one.")
    password: SecretStr | None = Field(
        None, description="Password; write it as '${MQTT_PASSWORD}', never in the file."
    )
    client_id: str | None = Field(
        None,
        description="MQTT client id; empty for a random one. Needed with clean_session: false.",
        max_length=128,
    )
    clean_session: bool = Field(
        True,
        description="false keeps the session (subscriptions and QoS 1/2 messages) on the "
        "broker while the gateway is away; needs a fixed client_id.",
    )
    keepalive_s: int = Field(
        30,
        ge=5,
        le=65535,
        description="Seconds between keep-alive pings; a dead link is "
        "noticed after about 1.5 times this.",
    )
    timeout_s: float = Field(
        10,
        gt=0,
        description="Seconds to wait for the broker to answer a connect, "
        "subscribe or QoS 1/2 publish.",
    )
    tls: TlsConfig | None = Field(None, description="Connect over TLS (omit for plain TCP).")
    reconnect_min_s: float = Field(
        0.5, gt=0, description="First wait before reconnecting after the broker is lost."
    )
    reconnect_max_s: float = Field(
        30,
        gt=0,
        description="Longest wait between reconnect attempts (the wait doubles "
        "from reconnect_min_s, with random jitter).",
    )

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883

    @model_validator(mode="after")
    def _consistent(self) -> BrokerConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("broker.reconnect_min_s must not exceed broker.reconnect_max_s")
        if not self.clean_session and not self.client_id:
            raise ValueError("broker.clean_session: false needs a fixed broker.client_id")
        if self.password is not None and self.username is None:
            raise ValueError("broker.password is set but broker.username is not")
        return self


class ValueMapping(StrictModel):
    point: str = Field(
        description="Point name, or a template of topic levels: '{3}' is topic level 3 "
        "(levels count from 0), 'temp_{2}' mixes text and a level."
    )
    path: str | None = Field(
        None,
        description="JSON path of the value (json and tasmota formats only): 'temp', "
        "'$.data.temp', 'items[0].v', 'ENERGY.Power'. Omit for number and text formats.",
    )
    type: ValueType = Field(
        "number",
        description="number (stored as float; numeric strings accepted), bool "
        "(true/false, 1/0, ON/OFF) or text.",
    )
    unit: str = Field("", description="Engineering unit, e.g. '°C', 'kW'.")
    deadband: float = Field(
        0,
        ge=0,
        description="History keeps a number only when it moved more than this "
        "(applied by the time-series writer; 0: the site default).",
    )
    heartbeat_s: float | None = Field(
        None,
        gt=0,
        description="History keeps an unchanged value at least this often (seconds).",
    )
    description: str = Field("", description="What the point measures.")

    @field_validator("path")
    @classmethod
    def _path_syntax(cls, v: str | None) -> str | None:
        return _check_path(v)

    @field_validator("point")
    @classmethod
    def _template_syntax(cls, v: str) -> str:
        Template(v)
        return v


class TimestampConfig(StrictModel):
    path: str = Field(description="JSON path of the message's own time, e.g. 'Time' or 'ts'.")
    format: TimestampFormat = Field(
        description="epoch_s (seconds), epoch_ms (milliseconds) or iso8601 "
        "('2026-11-21T10:00:00+08:00')."
    )
    timezone: str | None = Field(
        None,
        description="IANA zone for ISO times without an offset (Tasmota sends local time), "
        "e.g. 'Asia/Shanghai'. Without it such times are malformed.",
    )

    @field_validator("path")
    @classmethod
    def _path_syntax(cls, v: str) -> str:
        JsonPath(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r}; use e.g. 'Asia/Shanghai'") from None
        return v


class EventMapping(StrictModel):
    type: str = Field(
        description="Dotted event type, e.g. 'door.state' or 'access.granted'.",
        pattern=_EVENT_TYPE,
    )
    source: str | None = Field(
        None,
        description="Event source: a device id or a template like '{2}'; "
        "default: the subscription's device.",
    )
    data: dict[str, str] = Field(
        default_factory=dict,
        description="Event data fields, each a JSON path (json and tasmota formats). "
        "Empty: the whole JSON object (json/tasmota) or {'value': payload text}.",
    )

    @field_validator("data")
    @classmethod
    def _paths(cls, v: dict[str, str]) -> dict[str, str]:
        for name, path in v.items():
            try:
                JsonPath(path)
            except ValueError as e:
                raise ValueError(f"data.{name}: {e}") from None
        return v

    @field_validator("source")
    @classmethod
    def _template_syntax(cls, v: str | None) -> str | None:
        if v is not None:
            Template(v)
        return v


class Subscription(StrictModel):
    topic: str = Field(
        description="MQTT topic filter; '+' matches one level, '#' the rest. "
        "Levels count from 0: in 'tele/+/SENSOR' level 1 is the '+'."
    )
    qos: Literal[0, 1, 2] = Field(0, description="QoS of the subscription.")
    format: PayloadFormat = Field(
        "json",
        description="json (values by path), number (payload is one number), text "
        "(payload is one string), tasmota (Tasmota tele/stat JSON and LWT, see README).",
    )
    device: str = Field(
        description="Device id, or a template of topic levels such as '{1}' "
        "(topic level 1, counting from 0)."
    )
    values: list[ValueMapping] = Field(
        default_factory=list,
        description="Points read from each message. number and text formats take at "
        "most one, without path.",
    )
    timestamp: TimestampConfig | None = Field(
        None,
        description="Where the message carries its own time (json and tasmota "
        "formats); omitted: the time the gateway received it.",
    )
    event: EventMapping | None = Field(
        None, description="Also turn each message into an event (a door contact, a card swipe)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Subscription:
        flt = TopicFilter(self.topic)
        Template(self.device).check(flt, "device")
        if self.format in _PATH_FORMATS:
            for v in self.values:
                if v.path is None:
                    raise ValueError(
                        f"value {v.point!r}: format {self.format} needs a 'path' (e.g. path: temp)"
                    )
        else:
            if len(self.values) > 1:
                raise ValueError(
                    f"format {self.format} carries one value per message; "
                    f"got {len(self.values)} (use format: json for several)"
                )
            for v in self.values:
                if v.path is not None:
                    raise ValueError(
                        f"value {v.point!r}: format {self.format} takes no 'path' "
                        "(the whole payload is the value)"
                    )
            if self.timestamp is not None:
                raise ValueError(f"format {self.format} has no field to read a timestamp from")
            if self.event is not None and self.event.data:
                raise ValueError(f"format {self.format}: event.data needs json or tasmota")
        if self.format == "number" and any(v.type != "number" for v in self.values):
            raise ValueError("format number takes a value of type number")
        seen: set[str] = set()
        for v in self.values:
            Template(v.point).check(flt, "point")
            if v.point in seen:
                raise ValueError(f"point {v.point!r} is mapped twice in this subscription")
            seen.add(v.point)
        if self.event is not None and self.event.source is not None:
            Template(self.event.source).check(flt, "event.source")
        if not self.values and self.event is None and self.format != "tasmota":
            raise ValueError("the subscription maps nothing: add values or an event")
        return self


class MqttIngestConfig(DriverConfig):
    type: Literal["mqtt"] = Field(description="Read sensors from an MQTT broker.")
    broker: BrokerConfig = Field(description="The broker to subscribe to.")
    subscriptions: list[Subscription] = Field(
        min_length=1, description="Topic filters and how to map their messages."
    )
    max_queued_messages: int = Field(
        100_000,
        ge=100,
        description="Messages held while the bus is busy; past this, new ones are dropped "
        "and counted.",
    )

    def devices(self) -> Iterable[str]:
        seen: dict[str, None] = {}
        for s in self.subscriptions:
            t = Template(s.device)
            if t.literal is not None:
                seen[t.literal] = None
        return list(seen)

    def points(self) -> Iterable[PointSpec]:
        out: list[PointSpec] = []
        for s in self.subscriptions:
            dev = Template(s.device).literal or "*"
            for v in s.values:
                out.append(
                    PointSpec(
                        dev,
                        Template(v.point).literal or "*",
                        unit=v.unit,
                        deadband=v.deadband,
                        heartbeat=v.heartbeat_s,
                        description=v.description,
                    )
                )
        return out


class AlarmCommandsConfig(StrictModel):
    """Alarm commands taken from the broker (one-tap acknowledgement from an
    app or a central control room). Who may publish on the command topic is
    decided by the broker's ACL; every command acts with ``role``."""

    role: Literal["guard", "engineer", "supervisor"] = Field(
        "guard",
        description=(
            "Role the commands act with (guard: acknowledge and comment; engineer: also "
            "shelve, reset, out of service; supervisor: everything)."
        ),
    )


class MqttUplinkConfig(DriverConfig):
    type: Literal["mqtt_uplink"] = Field(
        description="Publish this site's events, alarms, availability (and readings) to MQTT."
    )
    broker: BrokerConfig = Field(description="The broker to publish to.")
    topic_root: str = Field(
        "estate", description="First topic level(s); topics are '<root>/v1/<site>/...'."
    )
    qos_events: Literal[0, 1, 2] = Field(
        1, description="QoS of events, alarms and availability (1: the broker acknowledges)."
    )
    qos_readings: Literal[0, 1] = Field(0, description="QoS of readings.")
    publish_readings: bool = Field(
        False, description="Also publish readings (latest per point while the broker is away)."
    )
    readings_min_interval_s: float = Field(
        0, ge=0, description="Publish each point at most this often (seconds); 0 = every change."
    )
    retain_availability: bool = Field(
        True, description="Publish device availability as retained messages."
    )
    max_in_flight: int = Field(
        32, ge=1, le=1000, description="QoS 1/2 publishes awaiting the broker's ack at once."
    )
    alarm_commands: AlarmCommandsConfig | None = Field(
        None,
        description=(
            "Take alarm commands (acknowledge, comment, shelve ...) from "
            "'<root>/v1/<site>/alarms/command' as JSON {action, alarm, user, note}."
        ),
    )

    @field_validator("topic_root")
    @classmethod
    def _root(cls, v: str) -> str:
        return validate_topic_name(v, "topic_root")
